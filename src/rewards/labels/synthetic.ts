// A synthetic StepGenerator for the arithmetic task whose error rate is known exactly: each step it writes is
// the correct operation applied to the current value with probability p, else a slip (result too high by 1..10).
// From a prefix whose last value is right and j of M steps written, a rollout reaches the answer with probability
// exactly p^(M-j): slips only add, and +, -, * keep a positive offset positive (with "/" truncation can merge
// values, so the closed form holds only without "/"). A prefix with a wrong value never recovers with p = 1.
// This is a test double and a lab baseline, not a model.

import { type ArithmeticProblem, answerLine, applyOp, stepLine } from "../../data/tasks/arithmetic.js";
import { Rng } from "../../nn/rng.js";
import type { StepGenerator } from "../interfaces.js";
import { LabelError, parseArithmeticPrompt } from "./steps.js";

export interface SyntheticGeneratorOptions {
  /** Probability that each generated step is correct given the current value. */
  p: number;
  /** Seed of the slip stream. */
  seed?: number;
}

const STEP_RE = /=\s*(-?\d+)\s*$/;
const ANSWER_RE = /^\s*The answer is/;

export class ArithmeticChainGenerator implements StepGenerator {
  private generated = 0;
  private readonly rng: Rng;
  readonly p: number;

  constructor(opts: SyntheticGeneratorOptions) {
    if (!(opts.p >= 0 && opts.p <= 1)) throw new LabelError(`[ArithmeticChainGenerator] p must be in [0, 1], got ${opts.p}`);
    this.p = opts.p;
    this.rng = new Rng(opts.seed ?? 0);
  }

  get stepsGenerated(): number {
    return this.generated;
  }

  private problem(prompt: string): ArithmeticProblem {
    const pr = parseArithmeticPrompt(prompt);
    if (pr === null) throw new LabelError(`[ArithmeticChainGenerator] not an arithmetic prompt: ${JSON.stringify(prompt.slice(0, 80))}`);
    return pr;
  }

  /** Current value after a prefix (the last stated result), or null when the prefix already has its answer line. */
  private state(pr: ArithmeticProblem, prefix: readonly string[]): number | null {
    if (prefix.length === 0) return pr.start;
    const last = prefix[prefix.length - 1]!;
    if (ANSWER_RE.test(last)) return null;
    const m = STEP_RE.exec(last);
    if (!m) throw new LabelError(`[ArithmeticChainGenerator] cannot read a value from step ${JSON.stringify(last)}`);
    return Number(m[1]);
  }

  /** One step at position `pos` from value v: [text, new value, isAnswer]. */
  private step(pr: ArithmeticProblem, pos: number, v: number): [string, number, boolean] {
    const ok = this.rng.next() < this.p;
    const slip = ok ? 0 : 1 + this.rng.int(10);
    this.generated++;
    if (pos >= pr.steps.length) return [answerLine(v + slip), v + slip, true];
    const s = pr.steps[pos]!;
    const r = applyOp(v, s.op, s.operand) + slip;
    return [stepLine(v, s.op, s.operand, r), r, false];
  }

  async nextSteps(prompt: string, prefix: readonly string[], n: number): Promise<string[]> {
    const pr = this.problem(prompt);
    const v = this.state(pr, prefix);
    if (v === null) return [];
    return Array.from({ length: n }, () => this.step(pr, prefix.length, v)[0]);
  }

  async complete(prompt: string, prefix: readonly string[], n: number): Promise<string[][]> {
    const pr = this.problem(prompt);
    const v0 = this.state(pr, prefix);
    const out: string[][] = [];
    for (let k = 0; k < n; k++) {
      const steps: string[] = [];
      if (v0 !== null) {
        let v = v0;
        for (let pos = prefix.length; ; pos++) {
          const [text, nv, done] = this.step(pr, pos, v);
          steps.push(text);
          v = nv;
          if (done) break;
        }
      }
      out.push(steps);
    }
    return out;
  }
}
