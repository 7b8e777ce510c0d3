// A trivially small verifiable task for tests: the sum of two digits. Prompt "3+5=", solution "8\n" (one step,
// ending in "\n" like every step in the lab's tasks). Same interface as the arithmetic task: seeded disjoint
// splits (only 100 problems exist, so ask for few) and a checker. Not a benchmark of anything.

import {
  type CheckResult,
  DEFAULT_SPLIT_FRACTIONS,
  type Split,
  type SplitFractions,
  sampleSplit,
  splitSteps,
  type VerifiableTask,
} from "./task.js";

export interface DigitSumProblem {
  a: number;
  b: number;
}

export const digitSumKey = (p: DigitSumProblem): string => `${p.a}+${p.b}`;
export const digitSumPrompt = (p: DigitSumProblem): string => `${p.a}+${p.b}=`;
export const digitSumAnswer = (p: DigitSumProblem): number => p.a + p.b;
export const digitSumSolution = (p: DigitSumProblem): string => `${p.a + p.b}\n`;

/** `n` distinct problems of one split, disjoint from the other splits for every seed. */
export function generateDigitSum(
  split: Split,
  n: number,
  seed: number,
  fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS,
): DigitSumProblem[] {
  return sampleSplit("digit_sum", (rng) => ({ a: rng.int(0, 9), b: rng.int(0, 9) }), digitSumKey, split, n, seed, fractions);
}

/** One step: the number written. Correct iff it is the sum; format is digits and an optional final "\n". */
export function checkDigitSum(p: DigitSumProblem, text: string): CheckResult {
  const lines = splitSteps(text);
  const first = lines[0];
  const finalAnswer = first !== undefined && /^\s*-?\d+\s*$/.test(first) ? Number(first) : null;
  const gold = `${p.a + p.b}`;
  const steps = lines.map((t, i) => ({ text: t, correct: i === 0 && finalAnswer === p.a + p.b, ...(i === 0 ? { expected: gold } : {}) }));
  const firstErrorIndex = steps.findIndex((s) => !s.correct);
  return { steps, firstErrorIndex, finalAnswer, answerCorrect: finalAnswer === p.a + p.b, formatOk: /^\d+\n?$/.test(text) };
}

export const DIGIT_SUM_TASK: VerifiableTask<DigitSumProblem> = Object.freeze({
  name: "digit_sum",
  key: digitSumKey,
  prompt: digitSumPrompt,
  solution: digitSumSolution,
  answer: digitSumAnswer,
  checkSolution: checkDigitSum,
});
