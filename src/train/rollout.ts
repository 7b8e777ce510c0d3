// Rollouts for the online trainers (GRPO family, RLOO, PPO, online DPO): tokenize prompt-only rows, sample G
// completions per prompt with the current policy (G consecutive rows per prompt, as TRL), score them with
// weighted reward functions (extra dataset columns repeated per completion), and re-score completions with a
// model (policy, old policy, reference) as per-token log-probs [B, Tc] aligned with the completion tokens.
// Layout as TRL: prompts left-padded to a common width P, completions right-padded to Tc, one forward pass.
// Not here: advantages, losses, the optimisation loop (each trainer's own file).

import { loadDataset } from "../data/formats.js";
import { type FinishReason, type Generation, type GenerativeLM, generate } from "../generate/generate.js";
import type { RemoteGenerator } from "../generate/remote.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { Rng } from "../nn/rng.js";
import { computeRewards, type RewardArgs, type RewardBreakdown, type RewardFn } from "../rewards/types.js";
import { detach, entropy, fromArray, linear, mul, noGrad, reshape, slice, type Tensor, tokenLogprobs } from "../tensor/index.js";

/** One prompt-only dataset row, tokenized; `columns` are its other fields (gold answers, metadata). */
export interface PromptExample {
  /** Row number in its source (0-based). */
  index: number;
  prompt: string | ChatMessage[];
  /** Prompt text as the policy sees it (chat rows rendered with the generation prompt). */
  promptText: string;
  promptIds: number[];
  columns: Record<string, unknown>;
}

/**
 * Tokenize prompt-only rows: text prompts with the tokenizer's special tokens (e.g. BOS), chat prompts
 * rendered with the generation prompt. A prompt longer than maxPromptLength keeps its last tokens (TRL).
 */
export function tokenizePrompts(
  tok: Tokenizer,
  source: string | readonly unknown[],
  maxPromptLength: number | null,
  where = "rollout",
): PromptExample[] {
  const rows = loadDataset(source, "prompt_only") as Record<string, unknown>[];
  return rows.map((row, index) => {
    const prompt = row.prompt as string | ChatMessage[];
    const promptText = typeof prompt === "string" ? prompt : tok.applyChatTemplate(prompt, { addGenerationPrompt: true });
    let ids = typeof prompt === "string" ? tok.encode(prompt) : tok.encode(promptText, { addSpecialTokens: false });
    if (maxPromptLength !== null && ids.length > maxPromptLength) ids = ids.slice(-maxPromptLength);
    if (ids.length === 0) throw new Error(`[${where}] row ${index + 1}: the prompt has no tokens (add a BOS token or text)`);
    const columns: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) if (k !== "prompt") columns[k] = v;
    return { index, prompt, promptText, promptIds: ids, columns };
  });
}

export interface RolloutOptions {
  /** G: completions per prompt. */
  numGenerations: number;
  maxCompletionLength: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  /** Sampling stream (advanced in place, so a checkpointed state resumes exactly). */
  rng: Rng;
  tokenizer: Tokenizer;
  /** Ends a completion; default: the tokenizer's EOS. */
  eosTokenId?: number | readonly number[] | null;
  /** Completions sampled per generate() call (bounds the KV cache); default all at once. */
  generationBatchSize?: number;
}

/** G completions for each of P prompts: B = P * G rows, grouped (rows g*G .. g*G+G-1 share prompt g). */
export interface Rollout {
  /** The P prompts, one per group. */
  prompts: PromptExample[];
  numGenerations: number;
  /** Per completion (B): its group's prompt ids, its ids and text, why it ended, its sampling log-probs. */
  promptIds: number[][];
  completionIds: number[][];
  completions: string[];
  finishReasons: FinishReason[];
  samplingLogprobs: number[][];
}

/** Sample G completions per prompt (prompts repeated G times in a row, one seeded stream). */
export function generateRollouts(model: GenerativeLM, prompts: readonly PromptExample[], o: RolloutOptions): Rollout {
  const promptIds = rolloutPromptIds(prompts, o.numGenerations);
  const chunk = o.generationBatchSize ?? promptIds.length;
  const gens: Generation[] = [];
  for (let i = 0; i < promptIds.length; i += chunk) gens.push(...generate(model, promptIds.slice(i, i + chunk), samplingOf(o)));
  return rolloutFrom(prompts, promptIds, gens, o);
}

/**
 * The same rollout sampled by an OpenAI-compatible server (vLLM, SGLang, `nexus serve`) instead of the local
 * policy: the server must serve the current policy weights (e.g. LoRA hot loading); its token ids and
 * sampling log-probs come back as they were sampled. The loss still uses log-probs recomputed locally.
 */
export async function generateRolloutsRemote(
  remote: RemoteGenerator,
  prompts: readonly PromptExample[],
  o: RolloutOptions,
): Promise<Rollout> {
  const promptIds = rolloutPromptIds(prompts, o.numGenerations);
  const { tokenizer: _tok, ...sampling } = samplingOf(o);
  return rolloutFrom(prompts, promptIds, await remote.generate(promptIds, sampling), o);
}

function rolloutPromptIds(prompts: readonly PromptExample[], g: number): number[][] {
  return prompts.flatMap((p) => Array.from({ length: g }, () => p.promptIds));
}

function samplingOf(o: RolloutOptions) {
  return {
    maxNewTokens: o.maxCompletionLength,
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    minP: o.minP,
    rng: o.rng,
    eosTokenId: o.eosTokenId === undefined ? o.tokenizer.eosTokenId : o.eosTokenId,
    tokenizer: o.tokenizer,
  };
}

function rolloutFrom(prompts: readonly PromptExample[], promptIds: number[][], gens: Generation[], o: RolloutOptions): Rollout {
  return {
    prompts: [...prompts],
    numGenerations: o.numGenerations,
    promptIds,
    completionIds: gens.map((x) => x.completionIds),
    completions: gens.map((x) => x.text ?? o.tokenizer.decode(x.completionIds)),
    finishReasons: gens.map((x) => x.finishReason),
    samplingLogprobs: gens.map((x) => x.logprobs),
  };
}

/** Keep only the given groups of a rollout (dynamic sampling), in order. */
export function selectGroups(r: Rollout, groups: readonly number[]): Rollout {
  const g = r.numGenerations;
  const rows = groups.flatMap((k) => Array.from({ length: g }, (_, j) => k * g + j));
  return {
    prompts: groups.map((k) => r.prompts[k]),
    numGenerations: g,
    promptIds: rows.map((i) => r.promptIds[i]),
    completionIds: rows.map((i) => r.completionIds[i]),
    completions: rows.map((i) => r.completions[i]),
    finishReasons: rows.map((i) => r.finishReasons[i]),
    samplingLogprobs: rows.map((i) => r.samplingLogprobs[i]),
  };
}

/** Concatenate rollouts of the same G. */
export function concatRollouts(rs: readonly Rollout[]): Rollout {
  return {
    prompts: rs.flatMap((r) => r.prompts),
    numGenerations: rs[0].numGenerations,
    promptIds: rs.flatMap((r) => r.promptIds),
    completionIds: rs.flatMap((r) => r.completionIds),
    completions: rs.flatMap((r) => r.completions),
    finishReasons: rs.flatMap((r) => r.finishReasons),
    samplingLogprobs: rs.flatMap((r) => r.samplingLogprobs),
  };
}

/** The reward functions' batch: prompts, completions, ids, and every extra column repeated for each completion. */
export function rewardArgs(r: Rollout): RewardArgs {
  const g = r.numGenerations;
  const per = <T>(f: (p: PromptExample) => T) => r.prompts.flatMap((p) => Array.from({ length: g }, () => f(p)));
  const args: RewardArgs = {
    prompts: per((p) => p.promptText),
    completions: [...r.completions],
    completionIds: r.completionIds.map((c) => [...c]),
  };
  const keys = new Set(r.prompts.flatMap((p) => Object.keys(p.columns)));
  for (const k of keys) if (!(k in args)) args[k] = per((p) => p.columns[k]);
  return args;
}

/** Rewards of every completion: per function and the weighted nansum (src/rewards/types.ts computeRewards). */
export function scoreRollout(r: Rollout, fns: readonly RewardFn[], weights?: readonly number[] | null): Promise<RewardBreakdown> {
  return computeRewards(fns, rewardArgs(r), weights ?? undefined);
}

/** Prompt + completion rows packed for one forward pass: prompts left-padded to P, completions right-padded to Tc. */
export interface PackedRollout {
  /** [B, P + Tc] i32. */
  inputIds: Tensor;
  /** [B, P + Tc] f32, 1 on real tokens. */
  attentionMask: Tensor;
  /** [B, Tc] i32, the completion ids (pad where the completion ended). */
  completionIds: Tensor;
  /** [B, Tc] f32, 1 on completion tokens. */
  completionMask: Tensor;
  promptWidth: number;
  completionWidth: number;
}

export function packRollout(
  promptIds: readonly (readonly number[])[],
  completionIds: readonly (readonly number[])[],
  padId: number,
): PackedRollout {
  const b = promptIds.length;
  const p = Math.max(1, ...promptIds.map((x) => x.length));
  const tc = Math.max(1, ...completionIds.map((x) => x.length));
  const t = p + tc;
  const ids = new Int32Array(b * t).fill(padId);
  const attn = new Float32Array(b * t);
  const cids = new Int32Array(b * tc).fill(padId);
  const cmask = new Float32Array(b * tc);
  for (let i = 0; i < b; i++) {
    const pr = promptIds[i];
    const off = i * t + (p - pr.length);
    for (let j = 0; j < pr.length; j++) {
      ids[off + j] = pr[j];
      attn[off + j] = 1;
    }
    const c = completionIds[i];
    for (let j = 0; j < c.length; j++) {
      ids[i * t + p + j] = c[j];
      attn[i * t + p + j] = 1;
      cids[i * tc + j] = c[j];
      cmask[i * tc + j] = 1;
    }
  }
  return {
    inputIds: fromArray(ids, [b, t]),
    attentionMask: fromArray(attn, [b, t]),
    completionIds: fromArray(cids, [b, tc]),
    completionMask: fromArray(cmask, [b, tc]),
    promptWidth: p,
    completionWidth: tc,
  };
}

export interface CompletionScores {
  /** log softmax(logits / temperature) at each completion token [B, Tc] (differentiable unless under noGrad). */
  logps: Tensor;
  /** Token entropies of the same distributions [B, Tc], when asked for (no gradient). */
  entropies?: Tensor;
}

/**
 * Per-token completion log-probs of `model` (TRL `_get_per_token_logps_and_entropies`: logits divided by the
 * sampling temperature). Only the Tc positions that predict completion tokens go through the LM head.
 */
export function completionLogprobs(
  model: CausalLM,
  packed: PackedRollout,
  o: { temperature?: number; entropies?: boolean } = {},
): CompletionScores {
  const { promptWidth: p, completionWidth: tc } = packed;
  const hidden = model.forwardHidden({ inputIds: packed.inputIds, attentionMask: packed.attentionMask }); // (B, P+Tc, D)
  const h = slice(hidden, 1, p - 1, p - 1 + tc); // (B, Tc, D): position t predicts token t + 1
  let logits = linear(h, model.lmHeadWeight); // (B, Tc, V)
  const temp = o.temperature ?? 1;
  if (temp > 0 && temp !== 1) logits = mul(logits, 1 / temp);
  const logps = tokenLogprobs(logits, packed.completionIds); // (B, Tc)
  if (!o.entropies) return { logps };
  const entropies = noGrad(() => entropy(detach(logits)));
  return { logps, entropies: reshape(entropies, [packed.inputIds.shape[0], tc]) };
}

/** completionLogprobs without gradient, in micro-batches of `batchSize` rows, as one [B, Tc] tensor of width `packed`. */
export function completionLogprobsNoGrad(
  model: CausalLM,
  rollout: Rollout,
  padId: number,
  batchSize: number,
  temperature = 1,
): Float32Array[] {
  return noGrad(() => {
    const out: Float32Array[] = [];
    for (let i = 0; i < rollout.completionIds.length; i += batchSize) {
      const packed = packRollout(rollout.promptIds.slice(i, i + batchSize), rollout.completionIds.slice(i, i + batchSize), padId);
      const lp = completionLogprobs(model, packed, { temperature }).logps.hostData();
      const tc = packed.completionWidth;
      for (let r = 0; r * tc < lp.length; r++) {
        const n = rollout.completionIds[i + r].length;
        out.push(Float32Array.from(lp.subarray(r * tc, r * tc + n)));
      }
    }
    return out;
  });
}

/** Ragged per-completion rows → a [B, Tc] tensor (zero beyond each row's length). */
export function padRows(rows: readonly ArrayLike<number>[], tc: number): Tensor {
  const out = new Float32Array(rows.length * tc);
  rows.forEach((r, i) => {
    out.set(Array.from(r).slice(0, tc), i * tc);
  });
  return fromArray(out, [rows.length, tc]);
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
/** Bessel-corrected std (torch.std); 0 for fewer than two values. */
export function stdOf(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/**
 * TRL's rollout metrics: completions/{mean,min,max}_length, clipped_ratio (no EOS), {mean,min,max}_terminated_length,
 * rewards/<name>/{mean,std} (nanmean / nanstd), reward (mean total), reward_std (mean group std), frac_reward_zero_std.
 */
export function rolloutMetrics(r: Rollout, rewards: RewardBreakdown): Record<string, number> {
  const lens = r.completionIds.map((c) => c.length);
  const term = lens.filter((_, i) => r.finishReasons[i] !== "length");
  const m: Record<string, number> = {
    "completions/mean_length": mean(lens),
    "completions/min_length": Math.min(...lens),
    "completions/max_length": Math.max(...lens),
    "completions/clipped_ratio": lens.length === 0 ? 0 : (lens.length - term.length) / lens.length,
    "completions/mean_terminated_length": mean(term),
    "completions/min_terminated_length": term.length ? Math.min(...term) : 0,
    "completions/max_terminated_length": term.length ? Math.max(...term) : 0,
  };
  rewards.names.forEach((name, k) => {
    const vals = rewards.perFunction[k].filter((x): x is number => x !== null);
    m[`rewards/${name}/mean`] = vals.length ? mean(vals) : Number.NaN;
    m[`rewards/${name}/std`] = vals.length ? stdOf(vals) : Number.NaN;
  });
  const g = r.numGenerations;
  const groupStd: number[] = [];
  for (let s = 0; s < rewards.total.length; s += g) groupStd.push(stdOf(rewards.total.slice(s, s + g)));
  m.reward = mean(rewards.total);
  m.reward_std = mean(groupStd);
  m.frac_reward_zero_std = groupStd.length ? groupStd.filter((s) => Math.abs(s) < 1e-8).length / groupStd.length : 0;
  return m;
}

/** Groups (indices) whose total rewards are not all equal: DAPO's dynamic-sampling filter. */
export function groupsWithSignal(total: readonly number[], g: number): number[] {
  const keep: number[] = [];
  for (let s = 0, k = 0; s < total.length; s += g, k++) if (stdOf(total.slice(s, s + g)) > 1e-8) keep.push(k);
  return keep;
}
