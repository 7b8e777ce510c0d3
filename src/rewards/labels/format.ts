// Labelled solutions as TRL stepwise-supervision rows ({prompt, completions, labels}) for the PRM trainer:
// labels are true before the first error and false at and after it, or, with `truncate`, the row ends at the
// first false step (the Qwen 2501.07301 / Math-Shepherd practice of dropping steps after the first error).
// Not here: producing the labels (mc.ts, omega.ts, judge.ts, consensus.ts).

import type { StepwiseSupervisionRow } from "../../data/formats.js";
import { LabelError, labelsFromFirstError } from "./steps.js";

export interface StepwiseOptions {
  /** End the row at the first false step (inclusive). Default false. */
  truncate?: boolean;
}

/** A TRL stepwise row from steps and their first-error index (-1: all correct). Extra columns are copied in. */
export function stepwiseFromFirstError(
  prompt: string,
  steps: readonly string[],
  firstError: number,
  opts: StepwiseOptions = {},
  extra: Record<string, unknown> = {},
): StepwiseSupervisionRow {
  if (steps.length === 0) throw new LabelError("[stepwiseFromFirstError] solution has no steps");
  const labels = labelsFromFirstError(steps.length, firstError);
  const end = opts.truncate && firstError >= 0 ? firstError + 1 : steps.length;
  return { ...extra, prompt, completions: steps.slice(0, end), labels: labels.slice(0, end) };
}

/** A TRL stepwise row from per-step labels as given (e.g. MC hard labels, which need not be monotone). */
export function stepwiseFromLabels(
  prompt: string,
  steps: readonly string[],
  labels: readonly boolean[],
  opts: StepwiseOptions = {},
  extra: Record<string, unknown> = {},
): StepwiseSupervisionRow {
  if (labels.length !== steps.length) {
    throw new LabelError(`[stepwiseFromLabels] expected ${steps.length} labels (one per step), got ${labels.length}`);
  }
  const first = labels.indexOf(false);
  const end = opts.truncate && first >= 0 ? first + 1 : steps.length;
  return { ...extra, prompt, completions: steps.slice(0, end), labels: labels.slice(0, end) };
}
