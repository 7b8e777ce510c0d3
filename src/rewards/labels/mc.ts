// Monte Carlo step labels (Math-Shepherd, Wang et al. 2312.08935): for each step prefix s_1..s_i a completer
// samples N continuations; the hard label is 1 if any reaches the gold answer, the soft label the fraction that do.
// Differences: the last step is labelled by checking the solution itself (its only "continuation"), with no
// rollouts; with `truncateAfterFirstNegative` (Qwen 2501.07301) steps after the first hard-negative get label 0
// and are not rolled out. The label is a value of the prefix under the completer, not the step's correctness.

import type { StepGenerator } from "../interfaces.js";
import { LabelError, type StepCheckableAnswer } from "./steps.js";

export interface McOptions {
  /** Continuations per step prefix (N; Math-Shepherd and Qwen use 8). */
  rollouts: number;
  /** Stop rolling out after the first hard-negative step; later steps get soft 0 / hard false. Default false. */
  truncateAfterFirstNegative?: boolean;
}

export interface McLabels {
  /** Per step: fraction of continuations reaching the answer (Math-Shepherd SE). */
  soft: number[];
  /** Per step: any continuation reached the answer (Math-Shepherd HE). */
  hard: boolean[];
  /** First hard-negative step, -1 when none. */
  firstError: number;
  /** Continuations sampled (N per rolled-out prefix). */
  rollouts: number;
  /** Steps the generator produced for this solution. */
  stepsGenerated: number;
}

function checkRollouts(n: number, tag: string): void {
  if (!Number.isInteger(n) || n < 1) throw new LabelError(`[${tag}] rollouts must be an integer >= 1, got ${n}`);
}

/** Fraction of `n` continuations of `prefix` that reach the answer. */
export async function rolloutValue(
  generator: StepGenerator,
  checker: StepCheckableAnswer,
  prompt: string,
  prefix: readonly string[],
  n: number,
): Promise<number> {
  const conts = await generator.complete(prompt, prefix, n);
  if (conts.length !== n) throw new LabelError(`[rollout] generator returned ${conts.length} continuations, asked for ${n}`);
  let hits = 0;
  for (const c of conts) if (checker.answerCorrect(prompt, [...prefix, ...c])) hits++;
  return hits / n;
}

/** Math-Shepherd labels for every step of one solution. */
export async function mcLabels(
  generator: StepGenerator,
  checker: StepCheckableAnswer,
  prompt: string,
  steps: readonly string[],
  opts: McOptions,
): Promise<McLabels> {
  checkRollouts(opts.rollouts, "mcLabels");
  if (steps.length === 0) throw new LabelError("[mcLabels] solution has no steps");
  const m = steps.length;
  const soft = new Array<number>(m).fill(0);
  const hard = new Array<boolean>(m).fill(false);
  const before = generator.stepsGenerated;
  let rollouts = 0;
  let firstError = -1;
  for (let i = 0; i < m; i++) {
    if (firstError >= 0 && opts.truncateAfterFirstNegative) break;
    const prefix = steps.slice(0, i + 1);
    let v: number;
    if (i === m - 1) v = checker.answerCorrect(prompt, steps) ? 1 : 0;
    else {
      v = await rolloutValue(generator, checker, prompt, prefix, opts.rollouts);
      rollouts += opts.rollouts;
    }
    soft[i] = v;
    hard[i] = v > 0;
    if (!hard[i] && firstError < 0) firstError = i;
  }
  return { soft, hard, firstError, rollouts, stepsGenerated: generator.stepsGenerated - before };
}
