// The lab's synthetic reasoning task: a start number and a chain of operations, applied left to right.
//   prompt    "Start at 17. Add 25. Multiply by 3. Subtract 8.\n"      (words, so no precedence question)
//   solution  "17 + 25 = 42\n42 * 3 = 126\n126 - 8 = 118\nThe answer is 118.\n"
// One line per step, each ending in "\n" (the step end a char-level PRM reads), then the answer line, which
// counts as the last step. Every value stays an integer in [0, maxValue); "/" appears only when exact.
// Also here: seeded disjoint splits, the step checker, and controlled flawed solutions. Not here: tokenisation.

import type { Mulberry32 } from "./rng.js";
import {
  type CheckResult,
  DEFAULT_SPLIT_FRACTIONS,
  joinSteps,
  type Split,
  type SplitFractions,
  type StepCheck,
  sampleSplit,
  splitSteps,
  TaskError,
  type VerifiableTask,
} from "./task.js";

export type ArithOp = "+" | "-" | "*" | "/";
export interface ArithmeticStep {
  op: ArithOp;
  operand: number;
}
export interface ArithmeticProblem {
  start: number;
  steps: ArithmeticStep[];
}

export interface ArithmeticConfig {
  /** Fewest operations in a chain. */
  minSteps: number;
  /** Most operations in a chain. */
  maxSteps: number;
  /** Start value and +/- operands have 1..operandDigits digits. */
  operandDigits: number;
  /** Multipliers and divisors have 1..mulDigits digits (and are at least 2); products also stay below maxValue. */
  mulDigits: number;
  /** Operations to draw from; "/" is used only where it divides exactly. */
  ops: readonly ArithOp[];
  /** Every value (start, intermediates, answer) is an integer in [0, maxValue). */
  maxValue: number;
}

export const ARITHMETIC_DEFAULTS: Readonly<ArithmeticConfig> = Object.freeze({
  minSteps: 2,
  maxSteps: 4,
  operandDigits: 2,
  mulDigits: 1,
  ops: Object.freeze(["+", "-", "*"] as ArithOp[]),
  maxValue: 1000,
});

const ALL_OPS: readonly ArithOp[] = ["+", "-", "*", "/"];

/** Merge over the defaults, reject unknown keys and check cross-field rules. */
export function resolveArithmeticConfig(partial: Partial<ArithmeticConfig> = {}): ArithmeticConfig {
  for (const k of Object.keys(partial)) {
    if (!(k in ARITHMETIC_DEFAULTS)) throw new TaskError(`[arithmetic] unknown config key "${k}"`);
  }
  const c: ArithmeticConfig = { ...ARITHMETIC_DEFAULTS, ...partial };
  const int = (v: number) => Number.isInteger(v);
  if (!int(c.minSteps) || c.minSteps < 1) throw new TaskError(`[arithmetic] minSteps must be an integer >= 1, got ${c.minSteps}`);
  if (!int(c.maxSteps) || c.maxSteps < c.minSteps)
    throw new TaskError(`[arithmetic] maxSteps must be an integer >= minSteps (${c.minSteps}), got ${c.maxSteps}`);
  if (!int(c.operandDigits) || c.operandDigits < 1 || c.operandDigits > 6)
    throw new TaskError(`[arithmetic] operandDigits must be 1..6, got ${c.operandDigits}`);
  if (!int(c.mulDigits) || c.mulDigits < 1 || c.mulDigits > 6)
    throw new TaskError(`[arithmetic] mulDigits must be 1..6, got ${c.mulDigits}`);
  if (c.ops.length === 0 || c.ops.some((o) => !ALL_OPS.includes(o)))
    throw new TaskError(`[arithmetic] ops must be a non-empty subset of + - * /, got [${c.ops.join(", ")}]`);
  if (!int(c.maxValue) || c.maxValue < 10 || c.maxValue > 2 ** 31)
    throw new TaskError(`[arithmetic] maxValue must be an integer in [10, 2^31], got ${c.maxValue}`);
  if (!c.ops.includes("+") && !c.ops.includes("-")) {
    // * and / alone can dead-end (a prime, or a value too large to multiply); sampling restarts, which is fine,
    // but with only "*" every chain needs start * 2^steps < maxValue.
    if (2 ** c.minSteps >= c.maxValue)
      throw new TaskError(`[arithmetic] ops [${c.ops.join(", ")}] cannot make ${c.minSteps} steps below ${c.maxValue}`);
  }
  return { ...c, ops: [...c.ops] };
}

// ---- text ------------------------------------------------------------------------------------------------

const VERB: Readonly<Record<ArithOp, string>> = Object.freeze({ "+": "Add", "-": "Subtract", "*": "Multiply by", "/": "Divide by" });

/** Every character the prompt and solution formats can use (for a character-level vocabulary). */
export const ARITHMETIC_CHARSET = [...new Set("0123456789 +-*/=.\nStart at Add Subtract Multiply by Divide by The answer is")]
  .sort()
  .join("");

export function applyOp(v: number, op: ArithOp, b: number): number {
  switch (op) {
    case "+":
      return v + b;
    case "-":
      return v - b;
    case "*":
      return v * b;
    case "/":
      return Math.trunc(v / b);
  }
}

/** Values along the chain: [start, after step 1, ..., answer]. */
export function chainValues(p: ArithmeticProblem): number[] {
  const vs = [p.start];
  for (const s of p.steps) vs.push(applyOp(vs[vs.length - 1]!, s.op, s.operand));
  return vs;
}

export const stepLine = (a: number, op: ArithOp, b: number, r: number): string => `${a} ${op} ${b} = ${r}`;
export const answerLine = (x: number): string => `The answer is ${x}.`;

export function arithmeticKey(p: ArithmeticProblem): string {
  return `${p.start}${p.steps.map((s) => `${s.op}${s.operand}`).join("")}`;
}

export function arithmeticPrompt(p: ArithmeticProblem): string {
  return `Start at ${p.start}.${p.steps.map((s) => ` ${VERB[s.op]} ${s.operand}.`).join("")}\n`;
}

/** Gold step lines, the answer line last, without separators. */
export function goldLines(p: ArithmeticProblem): string[] {
  const vs = chainValues(p);
  return [...p.steps.map((s, i) => stepLine(vs[i]!, s.op, s.operand, vs[i + 1]!)), answerLine(vs[vs.length - 1]!)];
}

export function arithmeticSolution(p: ArithmeticProblem): string {
  return joinSteps(goldLines(p));
}

export function arithmeticAnswer(p: ArithmeticProblem): number {
  return chainValues(p).at(-1)!;
}

// ---- generation ------------------------------------------------------------------------------------------

function divisors(v: number, max: number): number[] {
  const out: number[] = [];
  for (let d = 2; d <= Math.min(v, max); d++) if (v % d === 0) out.push(d);
  return out;
}

/** One problem from the config's distribution (not split-filtered). Ops are drawn among those feasible at each value. */
export function sampleArithmeticProblem(rng: Mulberry32, config: ArithmeticConfig): ArithmeticProblem {
  const opMax = 10 ** config.operandDigits - 1;
  const mulMax = 10 ** config.mulDigits - 1;
  const M = config.maxValue;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const n = rng.int(config.minSteps, config.maxSteps);
    const start = rng.int(1, Math.min(opMax, M - 1));
    const steps: ArithmeticStep[] = [];
    let v = start;
    for (let i = 0; i < n; i++) {
      const feasible = config.ops.filter(
        (op) =>
          (op === "+" && v + 1 < M) ||
          (op === "-" && v >= 1) ||
          (op === "*" && v >= 1 && v * 2 < M) ||
          (op === "/" && v >= 2 && divisors(v, mulMax).length > 0),
      );
      if (feasible.length === 0) break;
      const op = rng.pick(feasible);
      let b: number;
      if (op === "+") b = rng.int(1, Math.min(opMax, M - 1 - v));
      else if (op === "-") b = rng.int(1, Math.min(opMax, v));
      else if (op === "*") b = rng.int(2, Math.min(mulMax, Math.floor((M - 1) / v)));
      else b = rng.pick(divisors(v, mulMax));
      steps.push({ op, operand: b });
      v = applyOp(v, op, b);
    }
    if (steps.length === n) return { start, steps };
  }
  throw new TaskError(
    `[arithmetic] could not sample a ${config.minSteps}-${config.maxSteps} step chain with ops [${config.ops.join(", ")}]`,
  );
}

/** `n` distinct problems of one split; splits are disjoint for every seed (assignment hashes the problem). */
export function generateArithmetic(
  config: ArithmeticConfig,
  split: Split,
  n: number,
  seed: number,
  fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS,
): ArithmeticProblem[] {
  return sampleSplit("arithmetic", (rng) => sampleArithmeticProblem(rng, config), arithmeticKey, split, n, seed, fractions);
}

/** Convenience: a prompt-completion row (TRL format) with the gold answer as an extra column. */
export function arithmeticRow(p: ArithmeticProblem): { prompt: string; completion: string; answer: number } {
  return { prompt: arithmeticPrompt(p), completion: arithmeticSolution(p), answer: arithmeticAnswer(p) };
}

// ---- checking --------------------------------------------------------------------------------------------

const STEP_RE = /^\s*(-?\d+)\s*([-+*/])\s*(-?\d+)\s*=\s*(-?\d+)\s*$/;
const ANSWER_RE = /^\s*The answer is\s*(-?\d+)\s*\.?\s*$/;
const STRICT_STEP_RE = /^-?\d+ [-+*/] \d+ = -?\d+$/;
const STRICT_ANSWER_RE = /^The answer is -?\d+\.$/;
/** The whole solution format (step lines, then the answer line, optional final newline), for format rewards. */
export const ARITHMETIC_SOLUTION_RE = /^(?:-?\d+ [-+*/] \d+ = -?\d+\n)*The answer is -?\d+\.\n?$/;

export interface ArithmeticStepCheck extends StepCheck {
  /** For an equation line: whether `a op b = r` is true as written (exact division for "/"); null otherwise. */
  arithmeticOk: boolean | null;
}
export interface ArithmeticCheckResult extends CheckResult {
  steps: ArithmeticStepCheck[];
}

/**
 * Judge a solution line by line against the gold chain. Convention (Math-Shepherd hard labels, PRM800K,
 * ProcessBench): a step is correct iff it is the gold step at its position (right left value, operation,
 * operand and result) and no earlier step is wrong. A later step that correctly applies its operation to an
 * earlier wrong value is therefore incorrect (its `arithmeticOk` is true): once the process has an error, no
 * later step repairs it, and `firstErrorIndex` is the label that matters. The answer line is the last step; lines
 * after it are incorrect. `firstErrorIndex` is -1 when no written step is wrong, which includes a truncated
 * solution (then `finalAnswer` is null and `formatOk` false). `finalAnswer` comes from the first answer line.
 */
export function checkArithmetic(p: ArithmeticProblem, text: string): ArithmeticCheckResult {
  const vs = chainValues(p);
  const gold = goldLines(p);
  const n = p.steps.length;
  const lines = splitSteps(text);
  const steps: ArithmeticStepCheck[] = [];
  let firstErrorIndex = -1;
  let finalAnswer: number | null = null;
  lines.forEach((line, i) => {
    const m = STEP_RE.exec(line);
    const am = ANSWER_RE.exec(line);
    let arithmeticOk: boolean | null = null;
    let right = false;
    if (m) {
      const [a, op, b, r] = [Number(m[1]), m[2] as ArithOp, Number(m[3]), Number(m[4])];
      arithmeticOk = op === "/" ? b !== 0 && a % b === 0 && a / b === r : applyOp(a, op, b) === r;
      const s = p.steps[i];
      right = i < n && s !== undefined && a === vs[i] && op === s.op && b === s.operand && r === vs[i + 1];
    } else if (am) {
      if (finalAnswer === null) finalAnswer = Number(am[1]);
      right = i === n && Number(am[1]) === vs[n];
    }
    const correct = right && firstErrorIndex === -1;
    if (!correct && firstErrorIndex === -1) firstErrorIndex = i;
    const check: ArithmeticStepCheck = { text: line, correct, arithmeticOk };
    if (i < gold.length) check.expected = gold[i]!;
    steps.push(check);
  });
  const formatOk =
    lines.length > 0 &&
    lines.slice(0, -1).every((l) => STRICT_STEP_RE.test(l)) &&
    STRICT_ANSWER_RE.test(lines[lines.length - 1]!) &&
    !text.endsWith("\n\n");
  return { steps, firstErrorIndex, finalAnswer, answerCorrect: finalAnswer === vs[n], formatOk };
}

/** The arithmetic task behind the common interface. */
export const ARITHMETIC_TASK: VerifiableTask<ArithmeticProblem> = Object.freeze({
  name: "arithmetic",
  key: arithmeticKey,
  prompt: arithmeticPrompt,
  solution: arithmeticSolution,
  answer: arithmeticAnswer,
  checkSolution: checkArithmetic,
});

/** PRM stepwise-supervision row (TRL format): the solution's lines as steps, labels from the checker. */
export function stepwiseRow(p: ArithmeticProblem, text: string): { prompt: string; completions: string[]; labels: boolean[] } {
  const r = checkArithmetic(p, text);
  return { prompt: arithmeticPrompt(p), completions: r.steps.map((s) => s.text), labels: r.steps.map((s) => s.correct) };
}

// ---- flawed solutions ------------------------------------------------------------------------------------

/**
 * Controlled errors, each made at one step and then carried forward as a model would (later steps apply their
 * operation correctly to the wrong value; "/" on a wrong value truncates):
 *   slip    - step k's result is off by a nonzero amount in [-10, 10] (kept >= 0)
 *   operand - step k uses a different operand (off by a nonzero amount, kept >= 1), computed correctly
 *   skip    - step k is left out; the chain continues from the value before it
 *   answer  - all steps right, the answer line states a different number (k = number of steps)
 */
export type NoiseKind = "slip" | "operand" | "skip" | "answer";
export const NOISE_KINDS: readonly NoiseKind[] = Object.freeze(["slip", "operand", "skip", "answer"]);

export interface FlawedSolution {
  text: string;
  kind: NoiseKind | null;
  /** The step the error was made at (null for a clean solution). */
  step: number | null;
  /** From the checker. Equals `step` except for a skip whose next step is identical (then the error shows later). */
  firstErrorIndex: number;
}

function nonzeroDelta(rng: Mulberry32, base: number, min: number): number {
  for (;;) {
    const d = rng.int(-10, 10);
    if (d !== 0 && base + d >= min) return base + d;
  }
}

/** Corrupt the gold solution with `kind` at `step` (random step when omitted). */
export function corruptSolution(p: ArithmeticProblem, kind: NoiseKind, rng: Mulberry32, step?: number): FlawedSolution {
  const n = p.steps.length;
  const k = kind === "answer" ? n : (step ?? rng.int(0, n - 1));
  if (kind !== "answer" && (k < 0 || k >= n)) throw new TaskError(`[arithmetic] ${kind} error step must be in [0, ${n - 1}], got ${k}`);
  if (kind === "answer" && step !== undefined && step !== n)
    throw new TaskError(`[arithmetic] an answer error is at step ${n}, got ${step}`);
  const vs = chainValues(p);
  const lines: string[] = [];
  for (let i = 0; i < k; i++) lines.push(stepLine(vs[i]!, p.steps[i]!.op, p.steps[i]!.operand, vs[i + 1]!));
  let v = vs[k]!;
  let rest = p.steps.slice(k);
  if (kind === "slip" || kind === "operand") {
    const s = p.steps[k]!;
    const b = kind === "operand" ? nonzeroDelta(rng, s.operand, 1) : s.operand;
    const r = kind === "slip" ? nonzeroDelta(rng, applyOp(v, s.op, b), 0) : applyOp(v, s.op, b);
    lines.push(stepLine(v, s.op, b, r));
    v = r;
    rest = rest.slice(1);
  } else if (kind === "skip") {
    rest = rest.slice(1);
  }
  for (const s of rest) {
    const r = applyOp(v, s.op, s.operand);
    lines.push(stepLine(v, s.op, s.operand, r));
    v = r;
  }
  lines.push(answerLine(kind === "answer" ? nonzeroDelta(rng, v, 0) : v));
  const text = joinSteps(lines);
  return { text, kind, step: k, firstErrorIndex: checkArithmetic(p, text).firstErrorIndex };
}

export interface NoiseConfig {
  /** Probability that a solution is flawed. */
  rate: number;
  /** Error kinds to draw from (uniformly). */
  kinds: readonly NoiseKind[];
}

/** A solution for SFT data: gold with probability 1 - rate, else one controlled error at a uniform step. */
export function sampleSolution(p: ArithmeticProblem, rng: Mulberry32, noise: NoiseConfig): FlawedSolution {
  if (!(noise.rate >= 0 && noise.rate <= 1)) throw new TaskError(`[arithmetic] noise rate must be in [0, 1], got ${noise.rate}`);
  if (noise.rate > 0 && noise.kinds.length === 0) throw new TaskError("[arithmetic] noise kinds must be non-empty when rate > 0");
  if (rng.next() >= noise.rate) return { text: arithmeticSolution(p), kind: null, step: null, firstErrorIndex: -1 };
  return corruptSolution(p, rng.pick(noise.kinds), rng);
}
