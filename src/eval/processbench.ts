// ProcessBench metric (Zheng et al. 2412.06559, official run_eval scripts): each row has the gold first-error
// index (label, -1 = correct solution) and a predicted index, given directly or read from per-step scores as the
// first step scoring below a threshold (-1 if none). accErr = exact-match accuracy on erroneous rows, accCor =
// accuracy on correct rows (predicted -1), F1 = their harmonic mean. Reported as fractions in [0, 1], not percent;
// an empty subset gives NaN. The threshold can be fitted on one split (grid search for the best F1).

import { MetricError } from "./errors.js";

export interface ProcessBenchRow {
  id?: string;
  problem?: string;
  steps?: string[];
  /** Gold first-error index, -1 for an error-free solution. */
  label: number;
  /** Per-step scores (P(step correct)); used with a threshold. */
  scores?: number[];
  /** A predicted first-error index (-1 for none), used when there are no scores. */
  prediction?: number;
}

export interface ProcessBenchMetric {
  /** Accuracy on rows with an error (prediction === label). */
  accErr: number;
  /** Accuracy on error-free rows (prediction === -1). */
  accCor: number;
  /** Harmonic mean of accErr and accCor (0 when both are 0). */
  f1: number;
  nErr: number;
  nCor: number;
}

/** First step whose score is below the threshold, -1 if none. */
export function predictFirstError(scores: readonly number[], threshold: number): number {
  for (let i = 0; i < scores.length; i++) if (scores[i]! < threshold) return i;
  return -1;
}

/** The metric from gold labels and predicted first-error indices. */
export function processBenchMetric(labels: readonly number[], predictions: readonly number[]): ProcessBenchMetric {
  if (labels.length !== predictions.length) {
    throw new MetricError(`[processbench] ${labels.length} labels but ${predictions.length} predictions`);
  }
  let nErr = 0;
  let nCor = 0;
  let hitErr = 0;
  let hitCor = 0;
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < -1) throw new MetricError(`[processbench] row ${i}: label must be -1 or a step index, got ${l}`);
    const p = predictions[i]!;
    if (l === -1) {
      nCor++;
      if (p === -1) hitCor++;
    } else {
      nErr++;
      if (p === l) hitErr++;
    }
  });
  const accErr = nErr === 0 ? Number.NaN : hitErr / nErr;
  const accCor = nCor === 0 ? Number.NaN : hitCor / nCor;
  const f1 = accErr + accCor === 0 ? 0 : (2 * accErr * accCor) / (accErr + accCor);
  return { accErr, accCor, f1, nErr, nCor };
}

/** Predicted indices for rows: from scores and a threshold when the row has scores, else its `prediction`. */
export function rowPredictions(rows: readonly ProcessBenchRow[], threshold: number | null): number[] {
  return rows.map((r, i) => {
    if (r.scores !== undefined) {
      if (threshold === null) throw new MetricError(`[processbench] row ${i} has scores but no threshold was given or fitted`);
      return predictFirstError(r.scores, threshold);
    }
    if (r.prediction !== undefined) return r.prediction;
    throw new MetricError(`[processbench] row ${i} has neither scores nor prediction`);
  });
}

/** The metric over rows (threshold applies to rows with scores). */
export function evaluateProcessBench(rows: readonly ProcessBenchRow[], threshold: number | null = null): ProcessBenchMetric {
  return processBenchMetric(
    rows.map((r) => r.label),
    rowPredictions(rows, threshold),
  );
}

/**
 * Candidate thresholds that produce every distinct prediction pattern on these scores: the smallest score (flags
 * nothing), midpoints between consecutive distinct scores, and the largest score + 1 (flags everything).
 */
export function thresholdCandidates(rows: readonly ProcessBenchRow[]): number[] {
  const u = [...new Set(rows.flatMap((r) => r.scores ?? []))].sort((a, b) => a - b);
  if (u.length === 0) return [0.5];
  const out = [u[0]!];
  for (let i = 0; i + 1 < u.length; i++) out.push((u[i]! + u[i + 1]!) / 2);
  out.push(u[u.length - 1]! + 1);
  return out;
}

/**
 * Fit the threshold on rows with scores: the candidate (default thresholdCandidates, or a given grid) with the
 * highest F1; ties go to the smallest threshold (the fewest steps flagged). NaN F1 counts as -1.
 */
export function fitThreshold(
  rows: readonly ProcessBenchRow[],
  grid?: readonly number[],
): { threshold: number; metric: ProcessBenchMetric } {
  if (rows.some((r) => r.scores === undefined))
    throw new MetricError("[processbench] threshold fitting needs per-step scores on every row");
  const cands = [...(grid ?? thresholdCandidates(rows))].sort((a, b) => a - b);
  if (cands.length === 0) throw new MetricError("[processbench] empty threshold grid");
  let best: { threshold: number; metric: ProcessBenchMetric } | null = null;
  for (const t of cands) {
    const m = evaluateProcessBench(rows, t);
    const f = Number.isNaN(m.f1) ? -1 : m.f1;
    if (best === null || f > (Number.isNaN(best.metric.f1) ? -1 : best.metric.f1)) best = { threshold: t, metric: m };
  }
  return best!;
}
