// OmegaPRM-style binary search for the first error (Luo et al. 2406.06592, §3): a prefix is "good" if any of k
// rollouts from it reaches the gold answer; in a wrong-answer solution of M steps, bisect prefix lengths for the
// longest good prefix, which puts the first error right after it: O(k log M) rollouts instead of Math-Shepherd's kM.
// Differences: only the binary search, not OmegaPRM's rollout pool / tree (Q, U, c_puct); a solution whose
// final answer is correct is returned as error-free with no rollouts; the empty prefix is assumed good (OmegaPRM
// filters out unsolvable questions first). Exactly ceil or floor of log2(M) checks: for M a power of two, log2(M).

import type { StepGenerator } from "../interfaces.js";
import { rolloutValue } from "./mc.js";
import { LabelError, type StepCheckableAnswer } from "./steps.js";

export interface OmegaOptions {
  /** Rollouts per checked prefix (k; OmegaPRM uses 8). */
  rollouts: number;
}

export interface OmegaCheck {
  /** Number of steps in the checked prefix. */
  prefixLength: number;
  /** MC(prefix): fraction of the k rollouts that reached the answer. */
  mc: number;
}

export interface OmegaResult {
  /** Index of the first wrong step, -1 when the final answer is correct. */
  firstError: number;
  /** Total rollouts sampled: k × checks.length. */
  rollouts: number;
  /** Every prefix the search rolled out from, in order. */
  checks: OmegaCheck[];
  /** Steps the generator produced. */
  stepsGenerated: number;
}

/** Number of prefix checks the search makes for M steps and a first error at e (no rollouts needed to know it). */
export function omegaCheckCount(numSteps: number, firstError: number): number {
  if (firstError < 0) return 0;
  let lo = 0;
  let hi = numSteps;
  let n = 0;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    n++;
    if (mid <= firstError) lo = mid;
    else hi = mid;
  }
  return n;
}

/**
 * Binary search for the first error. Invariant: the prefix of length lo is good (lo = 0 by assumption) and the
 * prefix of length hi is bad (hi = M: the whole solution has a wrong answer). The first error is step lo.
 */
export async function omegaFirstError(
  generator: StepGenerator,
  checker: StepCheckableAnswer,
  prompt: string,
  steps: readonly string[],
  opts: OmegaOptions,
): Promise<OmegaResult> {
  if (!Number.isInteger(opts.rollouts) || opts.rollouts < 1) {
    throw new LabelError(`[omegaFirstError] rollouts must be an integer >= 1, got ${opts.rollouts}`);
  }
  if (steps.length === 0) throw new LabelError("[omegaFirstError] solution has no steps");
  const before = generator.stepsGenerated;
  const checks: OmegaCheck[] = [];
  if (checker.answerCorrect(prompt, steps)) return { firstError: -1, rollouts: 0, checks, stepsGenerated: 0 };
  let lo = 0;
  let hi = steps.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const mc = await rolloutValue(generator, checker, prompt, steps.slice(0, mid), opts.rollouts);
    checks.push({ prefixLength: mid, mc });
    if (mc > 0) lo = mid;
    else hi = mid;
  }
  return { firstError: lo, rollouts: checks.length * opts.rollouts, checks, stepsGenerated: generator.stepsGenerated - before };
}
