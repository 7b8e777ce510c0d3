// What the lab's stages share: the task's problems per split, the character tokenizer, building the small
// Llama-style model, evaluating a policy (greedy pass@1 and sampled maj@k with the exact checker), and
// turning completions into checked step lists. Deterministic given (profile, seed).

import {
  ARITHMETIC_CHARSET,
  type ArithmeticProblem,
  arithmeticPrompt,
  checkArithmetic,
  generateArithmetic,
  resolveArithmeticConfig,
} from "../data/tasks/arithmetic.js";
import type { Split } from "../data/tasks/task.js";
import { generate } from "../generate/generate.js";
import { CharTokenizer } from "../io/char_tokenizer.js";
import { parseHfConfig } from "../io/hf_config.js";
import { type CausalLM, createCausalLM } from "../models/causal_lm.js";
import { Rng } from "../nn/rng.js";
import { noGrad } from "../tensor/tensor.js";
import type { LabProfile } from "./profiles.js";

/** Characters of prompts, solutions and the judge's replies. */
export function labTokenizer(): CharTokenizer {
  return new CharTokenizer(ARITHMETIC_CHARSET);
}

export function problemsOf(profile: LabProfile, split: Split, seed: number): ArithmeticProblem[] {
  const cfg = resolveArithmeticConfig(profile.task);
  const n = split === "train" ? profile.data.trainProblems : split === "validation" ? profile.data.evalProblems : profile.data.testProblems;
  return generateArithmetic(cfg, split, n, seed);
}

/** A fresh small decoder for the task (vocabulary = the tokenizer's, so sampling never leaves it). */
export function newPolicy(profile: Pick<LabProfile, "model">, tok: CharTokenizer, seed: number, maxPositions = 256): CausalLM {
  const m = profile.model;
  const config = parseHfConfig({
    model_type: "llama",
    vocab_size: tok.vocabSize,
    hidden_size: m.hiddenSize,
    intermediate_size: m.intermediateSize,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.heads,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: maxPositions,
    tie_word_embeddings: true,
    hidden_act: "silu",
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
    pad_token_id: tok.padTokenId,
  });
  return createCausalLM(config, { seed });
}

export interface Sampled {
  problem: ArithmeticProblem;
  prompt: string;
  text: string;
  steps: string[];
  answer: number | null;
  correct: boolean;
  /** Gold per-step correctness (checker), and the first wrong step (-1 if none). */
  goldLabels: boolean[];
  firstError: number;
  formatOk: boolean;
}

/** Check a completion: its steps (lines) with gold step labels from the exact checker. */
export function checked(problem: ArithmeticProblem, text: string): Sampled {
  const r = checkArithmetic(problem, text);
  const steps = r.steps.map((s) => s.text);
  return {
    problem,
    prompt: arithmeticPrompt(problem),
    text,
    steps,
    answer: r.finalAnswer,
    correct: r.answerCorrect,
    goldLabels: r.steps.map((s) => s.correct),
    firstError: r.firstErrorIndex,
    formatOk: r.formatOk,
  };
}

/** n samples (or one greedy completion) per problem from a policy, checked. */
export function samplePolicy(
  model: CausalLM,
  tok: CharTokenizer,
  problems: readonly ArithmeticProblem[],
  n: number,
  opts: { temperature: number; maxNewTokens: number; seed: number; greedy?: boolean },
): Sampled[][] {
  const rng = new Rng(opts.seed);
  const out: Sampled[][] = problems.map(() => []);
  const chunk = Math.max(1, Math.floor(64 / n));
  noGrad(() => {
    for (let i = 0; i < problems.length; i += chunk) {
      const group = problems.slice(i, i + chunk);
      const prompts = group.flatMap((p) => Array.from({ length: n }, () => tok.encode(arithmeticPrompt(p), { addSpecialTokens: true })));
      const gens = generate(model, prompts, {
        maxNewTokens: opts.maxNewTokens,
        doSample: !opts.greedy,
        temperature: opts.temperature,
        eosTokenId: tok.eosTokenId,
        rng,
      });
      gens.forEach((g, j) => {
        const k = Math.floor(j / n);
        out[i + k].push(checked(group[k], tok.decode(g.completionIds, { skipSpecialTokens: true })));
      });
    }
  });
  return out;
}

export interface PolicyEval {
  /** pass@1: mean accuracy of k samples per problem at the evaluation temperature (the unbiased estimator). */
  pass1: number;
  /** Majority vote over the same k samples. */
  majK: number;
  /** Accuracy of the greedy completion. */
  greedy: number;
  /** Fraction of greedy completions in the exact solution format. */
  formatRate: number;
  /** Per problem (same order as the test problems): sampled accuracy (pass@1's unit) and greedy correctness 0/1. */
  perProblem: { pass1: number[]; greedy: number[] };
}

export function evaluatePolicy(
  model: CausalLM,
  tok: CharTokenizer,
  profile: LabProfile,
  test: readonly ArithmeticProblem[],
  seed: number,
): PolicyEval {
  const probs = test.slice(0, profile.eval.problems);
  const greedy = samplePolicy(model, tok, probs, 1, { temperature: 1, maxNewTokens: profile.sample.maxNewTokens, seed, greedy: true });
  const sampled = samplePolicy(model, tok, probs, profile.eval.majK, {
    temperature: profile.eval.temperature,
    maxNewTokens: profile.sample.maxNewTokens,
    seed: seed + 1,
  });
  let maj = 0;
  let hits = 0;
  const perPass1: number[] = [];
  sampled.forEach((group) => {
    const acc = group.filter((s) => s.correct).length / group.length;
    perPass1.push(round4(acc));
    hits += acc;
    const votes = new Map<number, number>();
    let best: Sampled | null = null;
    for (const s of group) {
      if (s.answer === null) continue;
      const v = (votes.get(s.answer) ?? 0) + 1;
      votes.set(s.answer, v);
      // ties go to the answer that reached the count first
      if (best === null || v > (votes.get(best.answer as number) ?? 0)) best = s;
    }
    if (best?.correct) maj++;
  });
  return {
    pass1: round4(hits / probs.length),
    majK: round4(maj / probs.length),
    greedy: round4(greedy.filter((g) => g[0].correct).length / probs.length),
    formatRate: round4(greedy.filter((g) => g[0].formatOk).length / probs.length),
    perProblem: { pass1: perPass1, greedy: greedy.map((g) => (g[0].correct ? 1 : 0)) },
  };
}

export function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** Bytes of parameters, gradients and AdamW moments of every model a method keeps in memory (deterministic). */
export function trainingStateBytes(
  trained: readonly CausalLM[] | readonly { numParameters(): number }[],
  frozen: readonly { numParameters(): number }[],
): number {
  const p = (ms: readonly { numParameters(): number }[]) => ms.reduce((a, m) => a + m.numParameters(), 0);
  // trained: weights + grads + 2 moments; frozen: weights only (f32)
  return 4 * (4 * p(trained) + p(frozen));
}
