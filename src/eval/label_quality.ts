// How good a step labeller is against gold step labels (Math-Shepherd §5.2 compares its MC labels with human
// ones; here gold comes from the exact checker). The positive class of precision / recall / F1 is the NEGATIVE
// step (label false), because finding wrong steps is the labeller's job. Also step accuracy and first-error
// agreement (both labellings name the same first false step, or both none). Every step counts, none is masked.

import { MetricError } from "./errors.js";

export interface LabelQuality {
  /** Of the steps labelled negative, the fraction that are gold-negative (NaN when none is labelled negative). */
  precision: number;
  /** Of the gold-negative steps, the fraction labelled negative (NaN when there are none). */
  recall: number;
  /** Harmonic mean of precision and recall (0 when both are 0; NaN when either is NaN). */
  f1: number;
  /** Fraction of steps whose label equals the gold label. */
  accuracy: number;
  /** Fraction of solutions whose first false step (-1: none) equals the gold one. */
  firstErrorAgreement: number;
  steps: number;
  solutions: number;
}

/** Compare predicted with gold labels, solution by solution (equal lengths required). */
export function labelQuality(predicted: readonly (readonly boolean[])[], gold: readonly (readonly boolean[])[]): LabelQuality {
  if (predicted.length !== gold.length)
    throw new MetricError(`[labelQuality] ${predicted.length} predicted solutions, ${gold.length} gold`);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let same = 0;
  let steps = 0;
  let agree = 0;
  predicted.forEach((p, s) => {
    const g = gold[s]!;
    if (p.length !== g.length) throw new MetricError(`[labelQuality] solution ${s}: ${p.length} predicted labels, ${g.length} gold`);
    for (let i = 0; i < p.length; i++) {
      const pn = !p[i];
      const gn = !g[i];
      if (pn && gn) tp++;
      else if (pn) fp++;
      else if (gn) fn++;
      if (p[i] === g[i]) same++;
    }
    steps += p.length;
    if (p.indexOf(false) === g.indexOf(false)) agree++;
  });
  const precision = tp + fp === 0 ? Number.NaN : tp / (tp + fp);
  const recall = tp + fn === 0 ? Number.NaN : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  const n = predicted.length;
  return {
    precision,
    recall,
    f1,
    accuracy: steps === 0 ? Number.NaN : same / steps,
    firstErrorAgreement: n === 0 ? Number.NaN : agree / n,
    steps,
    solutions: n,
  };
}

/** Hard labels from soft (MC) values: positive iff value > threshold (Qwen recommends threshold 0). */
export function hardFromSoft(values: readonly number[], threshold = 0): boolean[] {
  return values.map((v) => v > threshold);
}
