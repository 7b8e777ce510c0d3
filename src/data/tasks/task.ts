// The interface every synthetic verifiable task shares: seeded problem generation into disjoint splits, the
// prompt and gold solution text, and a step-level checker. Not here: any particular task (arithmetic.ts,
// digit_sum.ts) or the reward functions that wrap checkers (rewards/rule.ts).

import { deriveSeed, hash32, Mulberry32 } from "./rng.js";

export type Split = "train" | "validation" | "test";
export const SPLITS: readonly Split[] = Object.freeze(["train", "validation", "test"]);

/** Fractions of the problem space assigned to each split by hash; must sum to 1. */
export type SplitFractions = Readonly<Record<Split, number>>;
export const DEFAULT_SPLIT_FRACTIONS: SplitFractions = Object.freeze({ train: 0.8, validation: 0.1, test: 0.1 });

export class TaskError extends Error {
  override name = "TaskError";
}

/** The verdict on one step (one line) of a solution. */
export interface StepCheck {
  /** The step's text, without its trailing separator. */
  text: string;
  /** On the gold chain and no earlier step wrong (see the task's convention). */
  correct: boolean;
  /** The gold text for this position, when the gold solution has a step here. */
  expected?: string;
}

export interface CheckResult {
  steps: StepCheck[];
  /** Index of the first incorrect step, -1 when no written step is wrong (ProcessBench label). */
  firstErrorIndex: number;
  /** The stated final answer, null when none can be read. */
  finalAnswer: number | null;
  answerCorrect: boolean;
  /** Every line has the task's shape and the text ends with a final-answer line. */
  formatOk: boolean;
}

/** A verifiable task over problems of type P. */
export interface VerifiableTask<P> {
  readonly name: string;
  /** Canonical string of a problem: equal keys ⇔ equal problems (used for dedupe and split assignment). */
  key(problem: P): string;
  prompt(problem: P): string;
  /** Gold solution text (every step ends with "\n"). */
  solution(problem: P): string;
  answer(problem: P): number;
  checkSolution(problem: P, text: string): CheckResult;
}

/** Which split a problem belongs to: a pure function of its key, so splits never overlap, whatever the seed. */
export function splitOf(key: string, fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS): Split {
  const u = hash32(key) / 4294967296;
  if (u < fractions.train) return "train";
  if (u < fractions.train + fractions.validation) return "validation";
  return "test";
}

export function checkFractions(f: SplitFractions, tag: string): void {
  const sum = f.train + f.validation + f.test;
  if ([f.train, f.validation, f.test].some((x) => !(x >= 0)) || Math.abs(sum - 1) > 1e-9) {
    throw new TaskError(`[${tag}] split fractions must be non-negative and sum to 1, got ${f.train}/${f.validation}/${f.test}`);
  }
}

/**
 * Draw `n` distinct problems of one split: sample from a stream seeded by (seed, split), keep a problem only if its
 * key hashes into `split` and was not drawn before. Throws TaskError when the problem space runs out.
 */
export function sampleSplit<P>(
  tag: string,
  sample: (rng: Mulberry32) => P,
  key: (p: P) => string,
  split: Split,
  n: number,
  seed: number,
  fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS,
): P[] {
  checkFractions(fractions, tag);
  if (!Number.isInteger(n) || n < 0) throw new TaskError(`[${tag}] number of problems must be a non-negative integer, got ${n}`);
  const rng = new Mulberry32(deriveSeed(seed, split));
  const seen = new Set<string>();
  const out: P[] = [];
  const maxDraws = 200 * n + 10_000;
  for (let draws = 0; out.length < n; draws++) {
    if (draws >= maxDraws) {
      throw new TaskError(
        `[${tag}] found only ${out.length} of ${n} distinct ${split} problems in ${maxDraws} draws: the problem space is too small for this config`,
      );
    }
    const p = sample(rng);
    const k = key(p);
    if (seen.has(k) || splitOf(k, fractions) !== split) continue;
    seen.add(k);
    out.push(p);
  }
  return out;
}

/** Split solution text into steps on `separator`; a trailing separator does not make an empty last step. */
export function splitSteps(text: string, separator = "\n"): string[] {
  if (separator === "") throw new TaskError("[splitSteps] separator is empty");
  if (text === "") return [];
  const parts = text.split(separator);
  if (parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/** Join steps so that every step, the last included, ends with `separator`. Inverse of `splitSteps`. */
export function joinSteps(steps: readonly string[], separator = "\n"): string {
  return steps.map((s) => s + separator).join("");
}

/**
 * Offsets (in UTF-16 units of `text`) of the separator that ends each step; with a character-level tokenizer and
 * the prompt of length P in front, the step-end token positions are `P + offset`. A final step with no
 * separator ends at `text.length - 1`.
 */
export function stepEndOffsets(text: string, separator = "\n"): number[] {
  const out: number[] = [];
  let from = 0;
  while (from < text.length) {
    const i = text.indexOf(separator, from);
    if (i < 0) {
      out.push(text.length - 1);
      break;
    }
    out.push(i + separator.length - 1);
    from = i + separator.length;
  }
  return out;
}
