// Steps for PRM labelling: splitting/joining with a configurable separator (wrapping the data helpers), the
// first-error convention (ProcessBench: index of the first wrong step, -1 when none), and answer checkers that
// say whether prompt + steps reaches the gold answer. Not here: rollouts (mc.ts, omega.ts) or judges (judge.ts).

import { type ArithmeticProblem, type ArithOp, checkArithmetic } from "../../data/tasks/arithmetic.js";
import { type AnswerExtractor, DEFAULT_ANSWER } from "../answer.js";
import type { AnswerChecker } from "../interfaces.js";

export class LabelError extends Error {
  override name = "LabelError";
}

/** Default step separator (the arithmetic task's: one line per step). Qwen/ProcessBench data use "\n\n". */
export const DEFAULT_SEPARATOR = "\n";

import { joinSteps } from "../../data/tasks/task.js";

export { joinSteps, splitSteps } from "../../data/tasks/task.js";

/** Whether prompt + steps (a finished solution) reaches the gold answer. */
export interface StepCheckableAnswer {
  answerCorrect(prompt: string, steps: readonly string[]): boolean;
}

/** The interfaces.ts function form of a StepCheckableAnswer. */
export const asAnswerChecker =
  (c: StepCheckableAnswer): AnswerChecker =>
  (prompt, steps) =>
    c.answerCorrect(prompt, steps);

/** Index of the first false label, -1 when all are true (the ProcessBench label of a labelled solution). */
export function firstErrorOf(labels: readonly boolean[]): number {
  const i = labels.indexOf(false);
  return i;
}

/** Labels of M steps whose first error is `firstError` (-1: none): true before it, false at and after. */
export function labelsFromFirstError(numSteps: number, firstError: number): boolean[] {
  if (!Number.isInteger(firstError) || firstError < -1 || firstError >= numSteps) {
    throw new LabelError(`[labelsFromFirstError] first error must be -1 or in [0, ${numSteps - 1}], got ${firstError}`);
  }
  return Array.from({ length: numSteps }, (_, i) => firstError === -1 || i < firstError);
}

// ---- checkers ----------------------------------------------------------------------------------------------

const PROMPT_RE = /^Start at (\d+)\.((?: (?:Add|Subtract|Multiply by|Divide by) \d+\.)*)\s*$/;
const OP_RE = / (Add|Subtract|Multiply by|Divide by) (\d+)\./g;
const OPS: Record<string, ArithOp> = { Add: "+", Subtract: "-", "Multiply by": "*", "Divide by": "/" };

/** Read an arithmetic-task prompt ("Start at 17. Add 25. Multiply by 3.\n") back into its problem; null if not one. */
export function parseArithmeticPrompt(prompt: string): ArithmeticProblem | null {
  const m = PROMPT_RE.exec(prompt);
  if (!m) return null;
  const steps = [...m[2]!.matchAll(OP_RE)].map((o) => ({ op: OPS[o[1]!]!, operand: Number(o[2]) }));
  return { start: Number(m[1]), steps };
}

/** Arithmetic-task checker: the prompt is parsed, the steps are checked with checkArithmetic (final answer only). */
export const ARITHMETIC_ANSWER: StepCheckableAnswer = {
  answerCorrect(prompt, steps) {
    const p = parseArithmeticPrompt(prompt);
    if (p === null) throw new LabelError(`[arithmetic checker] not an arithmetic prompt: ${JSON.stringify(prompt.slice(0, 80))}`);
    return checkArithmetic(p, joinSteps(steps, "\n")).answerCorrect;
  },
};

/**
 * Gold-answer checker: the answer of the joined steps, as `answer` reads it (default: last \boxed{}, "####",
 * "answer is", else last number), equals the gold answer of the prompt as an exact rational. `gold` maps a
 * prompt to its gold answer.
 */
export function goldAnswerChecker(
  gold: (prompt: string) => unknown,
  separator = DEFAULT_SEPARATOR,
  answer: AnswerExtractor = DEFAULT_ANSWER,
): StepCheckableAnswer {
  return {
    answerCorrect(prompt, steps) {
      const ok = answer.correct(joinSteps(steps, separator), gold(prompt));
      if (ok === null) throw new LabelError(`[gold checker] no numeric gold answer for prompt ${JSON.stringify(prompt.slice(0, 80))}`);
      return ok;
    },
  };
}
