// Generative verifier after ThinkPRM (Khalifa et al., "Process Reward Models That Think", 2504.16828): the
// verifier LM writes a verification chain with one verdict per step ("Step 2: 42 * 3 = 126 correct"), stopping at
// the first "incorrect"; then the fixed question "Is the solution correct? " is forced and the score is
// P(yes) / (P(yes) + P(no)) of the next token, averaged over K sampled chains. Step scores come from the verdicts.
// Differs from the paper: short plain-text chains (no <think> block, no \boxed{}), one token each for "yes"/"no"
// (the first token of each word), no sequential "let me double check" rounds. Training data: verifier_trainer.ts.

import { ARITHMETIC_CHARSET } from "../data/tasks/arithmetic.js";
import { splitSteps } from "../data/tasks/task.js";
import { type GenerativeLM, generate } from "../generate/generate.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { linear, noGrad, slice, type Tensor, tensor } from "../tensor/index.js";
import type { OutcomeScorer, StepScorer } from "./interfaces.js";
import { namedReward, RewardError, type RewardFn } from "./types.js";

/** The question forced after every chain; the next token is read as yes / no. */
export const VERIFIER_QUESTION = "Is the solution correct? ";
export const VERDICT_CORRECT = "correct";
export const VERDICT_INCORRECT = "incorrect";

/** Characters of the verifier format, for a CharTokenizer over the arithmetic task. */
export const VERIFIER_CHARSET: string = [
  ...new Set([...ARITHMETIC_CHARSET, ..."Solution:Verify:Step Is the solution correct? yes no incorrect\n0123456789"]),
].join("");

/** The verifier's input: problem, numbered-by-line solution, then the cue that starts the chain. */
export function verifierPrompt(problem: string, steps: readonly string[]): string {
  const p = problem.endsWith("\n") ? problem : `${problem}\n`;
  return `${p}Solution:\n${steps.map((s) => `${s}\n`).join("")}Verify:\n`;
}

/** One chain line. */
export function verdictLine(i: number, step: string, correct: boolean): string {
  return `Step ${i + 1}: ${step} ${correct ? VERDICT_CORRECT : VERDICT_INCORRECT}\n`;
}

/**
 * A chain from per-step verdicts: lines up to and including the first "incorrect" (ThinkPRM stops there), then
 * the question and its answer (yes iff every step was judged correct).
 */
export function buildVerificationChain(steps: readonly string[], verdicts: readonly boolean[]): string {
  if (verdicts.length !== steps.length) throw new RewardError(`[verifier] ${steps.length} steps but ${verdicts.length} verdicts`);
  let out = "";
  for (let i = 0; i < steps.length; i++) {
    out += verdictLine(i, steps[i]!, verdicts[i]!);
    if (!verdicts[i]) break;
  }
  return `${out}${VERIFIER_QUESTION}${verdicts.every((v) => v) ? "yes" : "no"}\n`;
}

export interface ParsedVerification {
  /** Verdicts of the leading well-formed "Step k:" lines (k = 1, 2, ... in order). */
  verdicts: boolean[];
  /** The yes/no after the question, null when absent. */
  decision: boolean | null;
  /** Every line before the question is a numbered verdict line in order. */
  wellFormed: boolean;
}

const LINE_RE = /^Step (\d+): (.*) (correct|incorrect)$/;

export function parseVerification(chain: string): ParsedVerification {
  const q = chain.indexOf(VERIFIER_QUESTION.trimEnd());
  const body = q < 0 ? chain : chain.slice(0, q);
  const verdicts: boolean[] = [];
  let wellFormed = true;
  for (const line of splitSteps(body)) {
    const m = LINE_RE.exec(line);
    if (m === null || Number(m[1]) !== verdicts.length + 1) {
      wellFormed = false;
      break;
    }
    verdicts.push(m[3] === VERDICT_CORRECT);
  }
  let decision: boolean | null = null;
  if (q >= 0) {
    const after = chain.slice(q + VERIFIER_QUESTION.trimEnd().length).trim();
    decision = after.startsWith("yes") ? true : after.startsWith("no") ? false : null;
  }
  return { verdicts, decision, wellFormed };
}

/** What the verifier needs: generation (CausalLM fits) and final hidden states for the yes/no read-out. */
export type VerifierLM = GenerativeLM;

export interface VerifierOptions {
  /** Chains sampled per solution (ThinkPRM's parallel scaling), scores averaged. Default 4. */
  numSamples?: number;
  /** Sampling temperature of the chains (paper 0.4–0.6). Default 0.6. */
  temperature?: number;
  /** Chain budget in tokens. Default 256. */
  maxNewTokens?: number;
  seed?: number;
  /** Answer words; the first token of each is read. */
  yes?: string;
  no?: string;
}

export interface Verification {
  chains: string[];
  /** P(yes)/(P(yes)+P(no)) per chain. */
  yesProbs: number[];
  /** Mean of yesProbs. */
  score: number;
  parsed: ParsedVerification[];
}

/** ThinkPRM-style generative verifier over a causal LM and its tokenizer. */
export class GenerativeVerifier implements StepScorer, OutcomeScorer {
  readonly numSamples: number;
  readonly temperature: number;
  readonly maxNewTokens: number;
  private seed: number;
  readonly yesId: number;
  readonly noId: number;

  constructor(
    readonly model: VerifierLM,
    readonly tokenizer: Tokenizer,
    opts: VerifierOptions = {},
  ) {
    this.numSamples = opts.numSamples ?? 4;
    this.temperature = opts.temperature ?? 0.6;
    this.maxNewTokens = opts.maxNewTokens ?? 256;
    this.seed = opts.seed ?? 0;
    if (!Number.isInteger(this.numSamples) || this.numSamples < 1)
      throw new RewardError(`[verifier] numSamples must be >= 1, got ${this.numSamples}`);
    const first = (w: string) => {
      const ids = tokenizer.encode(w, { addSpecialTokens: false });
      if (ids.length === 0) throw new RewardError(`[verifier] "${w}" encodes to no token`);
      return ids[0]!;
    };
    this.yesId = first(opts.yes ?? "yes");
    this.noId = first(opts.no ?? "no");
    if (this.yesId === this.noId) throw new RewardError("[verifier] yes and no share their first token");
  }

  /** P(yes)/(P(yes)+P(no)) = σ(logit_yes − logit_no) of the token after `text` (which should end with the question). */
  yesProbability(text: string): number {
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    return noGrad(() => {
      const h = this.model.forwardHidden({ inputIds: tensor(ids, { dtype: "i32", shape: [1, ids.length] }) }); // (1, T, D)
      const last = slice(h, 1, ids.length - 1, ids.length); // (1, 1, D)
      const logits: Tensor = linear(last, this.model.lmHeadWeight); // (1, 1, V)
      const l = logits.hostData();
      const d = l[this.yesId]! - l[this.noId]!;
      return 1 / (1 + Math.exp(-d));
    });
  }

  /** Sample K chains, force the question after each, read the yes-probabilities. */
  verify(problem: string, steps: readonly string[]): Verification {
    const prompt = verifierPrompt(problem, steps);
    const promptIds = this.tokenizer.encode(prompt, { addSpecialTokens: false });
    const gens = generate(
      this.model,
      Array.from({ length: this.numSamples }, () => promptIds),
      {
        maxNewTokens: this.maxNewTokens,
        temperature: this.temperature,
        seed: this.seed++,
        tokenizer: this.tokenizer,
        stop: [VERIFIER_QUESTION.trimEnd()],
      },
    );
    const chains = gens.map((g) => {
      const body = g.text ?? this.tokenizer.decode(g.completionIds, { skipSpecialTokens: true });
      return body.endsWith("\n") || body === "" ? body : `${body}\n`;
    });
    const yesProbs = chains.map((c) => this.yesProbability(prompt + c + VERIFIER_QUESTION));
    return {
      chains,
      yesProbs,
      score: yesProbs.reduce((a, b) => a + b, 0) / yesProbs.length,
      parsed: chains.map(parseVerification),
    };
  }

  async scoreSolution(problem: string, steps: readonly string[]): Promise<number> {
    return this.verify(problem, steps).score;
  }

  /** Per-step scores from one verification (see stepScoresOf). */
  async scoreSteps(problem: string, steps: readonly string[]): Promise<number[]> {
    return stepScoresOf(this.verify(problem, steps), steps.length);
  }
}

/**
 * Step i: mean over chains of 1 (judged correct), 0 (judged incorrect, or after an incorrect verdict), or the
 * chain's yes-probability where the chain gave no verdict for it.
 */
export function stepScoresOf(v: Verification, numSteps: number): number[] {
  return Array.from({ length: numSteps }, (_, i) => {
    let s = 0;
    v.parsed.forEach((p, c) => {
      const firstBad = p.verdicts.indexOf(false);
      if (firstBad >= 0 && i >= firstBad) return;
      s += i < p.verdicts.length ? 1 : v.yesProbs[c]!;
    });
    return s / v.parsed.length;
  });
}

/** RewardFn `generative_verifier`: the averaged yes-probability of each completion (split on "\n"); null if empty. */
export function verifierReward(verifier: GenerativeVerifier, name = "generative_verifier"): RewardFn {
  return namedReward(name, (args) =>
    args.completions.map((c, i) => {
      const steps = splitSteps(c);
      return steps.length === 0 ? null : verifier.verify(args.prompts[i] ?? "", steps).score;
    }),
  );
}
