// Training data and fine-tuning for the generative verifier (ThinkPRM, Khalifa et al. 2504.16828): a teacher
// writes verification chains for policy solutions, a chain is kept only if its step verdicts equal the gold step
// labels (from the exact checker) and its final decision equals the gold outcome, optionally balanced on
// outcome; the verifier is then SFT'd (trainSft, completion-only loss) on prompt → chain.
// Differs from the paper: the teacher is any function (e.g. a noisy line-local checker or a verifier model), not
// QwQ-32B; no length filter beyond the caller's; chains are the short format of rewards/verifier.ts.

import { type ArithmeticProblem, arithmeticPrompt, checkArithmetic } from "../data/tasks/arithmetic.js";
import { Mulberry32 } from "../data/tasks/rng.js";
import { splitSteps } from "../data/tasks/task.js";
import { buildVerificationChain, parseVerification, verifierPrompt } from "../rewards/verifier.js";
import { type SftConfig, type SftResult, trainSft } from "./sft.js";
import type { TrainerOptions } from "./trainer_io.js";

/** Proposes verification chains for a solution (several samples); the filter decides which survive. */
export type ChainTeacher = (problem: ArithmeticProblem, steps: readonly string[], n: number) => string[];

/**
 * A teacher that judges each line on its own (is `a op b = r` true? does the answer line repeat the previous
 * result?) and flips each verdict with probability `flip`. It misses carried-forward and wrong-operand errors,
 * as a weak judge would, so filtering against gold labels has something to remove.
 */
export function localCheckTeacher(flip: number, seed = 0): ChainTeacher {
  const rng = new Mulberry32(seed);
  return (problem, steps, n) => {
    const check = checkArithmetic(problem, steps.map((s) => `${s}\n`).join(""));
    const local = check.steps.map((s, i) => {
      if (s.arithmeticOk !== null) return s.arithmeticOk;
      const m = /The answer is (-?\d+)/.exec(s.text);
      const prev = i > 0 ? /= (-?\d+)$/.exec(check.steps[i - 1]!.text) : null;
      return m !== null && (prev === null ? i === 0 : m[1] === prev[1]);
    });
    return Array.from({ length: n }, () =>
      buildVerificationChain(
        steps,
        local.map((v) => (rng.next() < flip ? !v : v)),
      ),
    );
  };
}

/**
 * ThinkPRM's process filter: well-formed, the verdicts equal the gold labels up to and including the first
 * incorrect step (all steps when none is), and the decision equals "every step correct".
 */
export function chainMatchesGold(chain: string, gold: readonly boolean[]): boolean {
  const p = parseVerification(chain);
  const firstBad = gold.indexOf(false);
  const expected = firstBad < 0 ? gold : gold.slice(0, firstBad + 1);
  if (!p.wellFormed || p.verdicts.length !== expected.length) return false;
  if (!p.verdicts.every((v, i) => v === expected[i])) return false;
  return p.decision === firstBad < 0;
}

export interface PolicySolution {
  problem: ArithmeticProblem;
  /** The policy's solution text (lines). */
  text: string;
}

export interface VerifierDataOptions {
  solutions: readonly PolicySolution[];
  teacher: ChainTeacher;
  /** Chains asked from the teacher per solution (paper: 4). Default 4. */
  samplesPerSolution?: number;
  /** Keep at most this many chains per solution (deduplicated). Default 1. */
  keepPerSolution?: number;
  /** Downsample the majority outcome so correct and incorrect solutions are equally represented. Default true. */
  balance?: boolean;
  seed?: number;
}

export interface VerifierData {
  /** SFT rows: the verifier prompt and the kept chain. */
  rows: { prompt: string; completion: string; solutionCorrect: boolean }[];
  /** Chains proposed and chains that passed the gold filter (before balancing). */
  proposed: number;
  passed: number;
}

/** Teacher chains for every solution, filtered against the checker's gold labels, optionally balanced. */
export function buildVerifierData(opts: VerifierDataOptions): VerifierData {
  const k = opts.samplesPerSolution ?? 4;
  const keep = opts.keepPerSolution ?? 1;
  let proposed = 0;
  let passed = 0;
  const rows: VerifierData["rows"] = [];
  for (const sol of opts.solutions) {
    const steps = splitSteps(sol.text);
    if (steps.length === 0) continue;
    const gold = checkArithmetic(sol.problem, sol.text).steps.map((s) => s.correct);
    const chains = opts.teacher(sol.problem, steps, k);
    proposed += chains.length;
    const good = [...new Set(chains.filter((c) => chainMatchesGold(c, gold)))];
    passed += chains.filter((c) => chainMatchesGold(c, gold)).length;
    const prompt = verifierPrompt(arithmeticPrompt(sol.problem), steps);
    for (const c of good.slice(0, keep)) rows.push({ prompt, completion: c, solutionCorrect: gold.every((g) => g) });
  }
  if (opts.balance ?? true) {
    const pos = rows.filter((r) => r.solutionCorrect);
    const neg = rows.filter((r) => !r.solutionCorrect);
    const n = Math.min(pos.length, neg.length);
    const rng = new Mulberry32(opts.seed ?? 0);
    const pickN = <T>(xs: T[]) => {
      const a = [...xs];
      for (let i = a.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      return a.slice(0, n);
    };
    if (n > 0) return { rows: [...pickN(pos), ...pickN(neg)], proposed, passed };
  }
  return { rows, proposed, passed };
}

/** SFT the verifier on filtered chains (completion-only loss on the chain and its decision). */
export async function trainVerifier(
  opts: Omit<TrainerOptions<SftConfig>, "data"> & { data: VerifierData | readonly { prompt: string; completion: string }[] },
): Promise<SftResult> {
  const rows = "rows" in opts.data ? opts.data.rows : opts.data;
  if (rows.length === 0) throw new Error("[verifier] no verification chain passed the filter; nothing to train on");
  return trainSft({ ...opts, data: rows.map((r) => ({ prompt: r.prompt, completion: r.completion })) });
}
