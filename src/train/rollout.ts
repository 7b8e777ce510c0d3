// Rollouts of the online trainers: tokenising prompt rows (prompt-only, or with a data completion for SPIN and
// GKD), the Rollout of a generation batch (G consecutive completions per prompt, as TRL; multi-turn ones carry a
// token mask that is 0 on environment tokens), selecting groups with their scores (dynamic sampling), scoring with
// the weighted reward mix (extra dataset columns and environment results repeated per completion), and
// re-scoring completions with a model (policy, old policy, reference, teacher) as per-token log-probs [B, Tc].
// Layout as TRL: prompts left-padded to a common width P, completions right-padded to Tc, one forward pass.
// Not here: sampling (sampling.ts), advantages and losses (src/losses), the loop (online_loop.ts).

import { loadDataset } from "../data/formats.js";
import type { FinishReason } from "../generate/generate.js";
import { encodePromptCompletion } from "../io/chat_encoding.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { computeRewards, type RewardArgs, type RewardBreakdown, type RewardFn } from "../rewards/types.js";
import { detach, entropy, fromArray, linear, mul, noGrad, reshape, slice, type Tensor, tokenLogprobs } from "../tensor/index.js";
import type { SampledCompletion } from "./sampling.js";

/** One dataset row, tokenized; `columns` are its other fields (gold answers, metadata). */
export interface PromptExample {
  /** Row number in its source (0-based). */
  index: number;
  prompt: string | ChatMessage[];
  /** Prompt text as the policy sees it (chat rows rendered with the generation prompt). */
  promptText: string;
  promptIds: number[];
  /** The row's own completion ids (prompt-completion data: SPIN's chosen, GKD's off-policy sample). */
  completionIds?: number[];
  columns: Record<string, unknown>;
}

export type PromptDataKind = "prompt_only" | "prompt_completion";

/**
 * Tokenize prompt rows: text prompts with the tokenizer's special tokens (e.g. BOS), chat prompts rendered with
 * the generation prompt; a prompt longer than maxPromptLength keeps its last tokens (TRL). With
 * "prompt_completion" the completion is tokenized too (text + EOS, or the chat template's assistant turn).
 */
export function tokenizePrompts(
  tok: Tokenizer,
  source: string | readonly unknown[],
  maxPromptLength: number | null,
  where = "rollout",
  kind: PromptDataKind = "prompt_only",
): PromptExample[] {
  const rows = loadDataset(source, kind, typeof source === "string" ? { name: source } : undefined) as Record<string, unknown>[];
  return rows.map((row, index) => {
    const prompt = row.prompt as string | ChatMessage[];
    const promptText = typeof prompt === "string" ? prompt : tok.applyChatTemplate(prompt, { addGenerationPrompt: true });
    let ids = typeof prompt === "string" ? tok.encode(prompt) : tok.encode(promptText, { addSpecialTokens: false });
    let completionIds: number[] | undefined;
    if (kind === "prompt_completion") {
      const enc = encodePromptCompletion(tok, prompt, row.completion as string | ChatMessage[]);
      ids = enc.ids.slice(0, enc.promptLength);
      completionIds = enc.ids.slice(enc.promptLength);
      if (completionIds.length === 0) throw new Error(`[${where}] row ${index + 1}: the completion has no tokens`);
    }
    if (maxPromptLength !== null && ids.length > maxPromptLength) ids = ids.slice(-maxPromptLength);
    if (ids.length === 0) throw new Error(`[${where}] row ${index + 1}: the prompt has no tokens (add a BOS token or text)`);
    const columns: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) if (k !== "prompt") columns[k] = v;
    return { index, prompt, promptText, promptIds: ids, ...(completionIds === undefined ? {} : { completionIds }), columns };
  });
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
  /** Multi-turn: per completion token 1 = policy, 0 = environment; null when every token is the policy's. */
  tokenMasks: number[][] | null;
  /** Multi-turn: the environment's reward and info per completion (reward columns env_reward / env_info). */
  envRewards: (number | null)[] | null;
  envInfos: (Record<string, unknown> | null)[] | null;
}

/** A Rollout from sampled completions, B = prompts.length * numGenerations, in prompt-major order. */
export function rolloutFromSamples(
  prompts: readonly PromptExample[],
  numGenerations: number,
  samples: readonly SampledCompletion[],
): Rollout {
  if (samples.length !== prompts.length * numGenerations) {
    throw new Error(`[rollout] ${samples.length} completions for ${prompts.length} prompts x ${numGenerations}`);
  }
  const multi = samples.some((s) => s.tokenMask !== null);
  return {
    prompts: [...prompts],
    numGenerations,
    promptIds: prompts.flatMap((p) => Array.from({ length: numGenerations }, () => p.promptIds)),
    completionIds: samples.map((s) => s.completionIds),
    completions: samples.map((s) => s.text),
    finishReasons: samples.map((s) => s.finishReason),
    samplingLogprobs: samples.map((s) => s.logprobs),
    tokenMasks: multi ? samples.map((s) => s.tokenMask ?? s.completionIds.map(() => 1)) : null,
    envRewards: multi ? samples.map((s) => s.envReward) : null,
    envInfos: multi ? samples.map((s) => s.envInfo) : null,
  };
}

/** A rollout with its rewards, kept together so that selected groups keep the scores they were given. */
export interface Scored {
  rollout: Rollout;
  rewards: RewardBreakdown;
}

const pick = <T>(xs: readonly T[] | null, rows: readonly number[]): T[] | null => (xs === null ? null : rows.map((i) => xs[i]));

/** Keep only the given groups of a rollout and their rewards (dynamic sampling), in order: no second reward call. */
export function selectScored(r: Rollout, rewards: RewardBreakdown, groups: readonly number[]): Scored {
  const g = r.numGenerations;
  const rows = groups.flatMap((k) => Array.from({ length: g }, (_, j) => k * g + j));
  const rowSet = new Set(rows);
  return {
    rollout: {
      prompts: groups.map((k) => r.prompts[k]),
      numGenerations: g,
      promptIds: rows.map((i) => r.promptIds[i]),
      completionIds: rows.map((i) => r.completionIds[i]),
      completions: rows.map((i) => r.completions[i]),
      finishReasons: rows.map((i) => r.finishReasons[i]),
      samplingLogprobs: rows.map((i) => r.samplingLogprobs[i]),
      tokenMasks: pick(r.tokenMasks, rows),
      envRewards: pick(r.envRewards, rows),
      envInfos: pick(r.envInfos, rows),
    },
    rewards: {
      names: rewards.names,
      perFunction: rewards.perFunction.map((f) => rows.map((i) => f[i])),
      total: rows.map((i) => rewards.total[i]),
      allNull: rewards.allNull.filter((i) => rowSet.has(i)).map((i) => rows.indexOf(i)),
    },
  };
}

/** Concatenate scored rollouts of the same G and reward functions. */
export function concatScored(a: Scored, b: Scored): Scored {
  const cat = <T>(x: readonly T[] | null, y: readonly T[] | null, fill: (i: number) => T[]): T[] | null =>
    x === null && y === null ? null : [...(x ?? fill(0)), ...(y ?? fill(1))];
  const ra = a.rollout;
  const rb = b.rollout;
  const n = ra.completionIds.length;
  return {
    rollout: {
      prompts: [...ra.prompts, ...rb.prompts],
      numGenerations: ra.numGenerations,
      promptIds: [...ra.promptIds, ...rb.promptIds],
      completionIds: [...ra.completionIds, ...rb.completionIds],
      completions: [...ra.completions, ...rb.completions],
      finishReasons: [...ra.finishReasons, ...rb.finishReasons],
      samplingLogprobs: [...ra.samplingLogprobs, ...rb.samplingLogprobs],
      tokenMasks: cat(ra.tokenMasks, rb.tokenMasks, (k) => (k === 0 ? ra : rb).completionIds.map((c) => c.map(() => 1))),
      envRewards: cat(ra.envRewards, rb.envRewards, (k) => (k === 0 ? ra : rb).completionIds.map(() => null)),
      envInfos: cat(ra.envInfos, rb.envInfos, (k) => (k === 0 ? ra : rb).completionIds.map(() => null)),
    },
    rewards: {
      names: a.rewards.names,
      perFunction: a.rewards.perFunction.map((f, k) => [...f, ...b.rewards.perFunction[k]]),
      total: [...a.rewards.total, ...b.rewards.total],
      allNull: [...a.rewards.allNull, ...b.rewards.allNull.map((i) => i + n)],
    },
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
  if (r.envRewards !== null) args.env_reward = [...r.envRewards];
  if (r.envInfos !== null) args.env_info = [...r.envInfos];
  return args;
}

/**
 * Rewards of every completion: per function and the weighted nansum (src/rewards/types.ts computeRewards); with a
 * missingEosPenalty, completions that did not end with EOS (or a stop string) lose that much (TRL).
 */
export async function scoreRollout(
  r: Rollout,
  fns: readonly RewardFn[],
  weights?: readonly number[] | null,
  missingEosPenalty: number | null = null,
): Promise<RewardBreakdown> {
  const out = await computeRewards(fns, rewardArgs(r), weights ?? undefined);
  if (missingEosPenalty !== null) {
    out.total = out.total.map((t, i) => (r.finishReasons[i] === "length" ? t - missingEosPenalty : t));
  }
  return out;
}

/** Prompt + completion rows packed for one forward pass: prompts left-padded to P, completions right-padded to Tc. */
export interface PackedRollout {
  /** [B, P + Tc] i32. */
  inputIds: Tensor;
  /** [B, P + Tc] f32, 1 on real tokens. */
  attentionMask: Tensor;
  /** [B, Tc] i32, the completion ids (pad where the completion ended). */
  completionIds: Tensor;
  /** [B, Tc] f32, 1 on the policy's completion tokens (0 on padding and environment tokens). */
  completionMask: Tensor;
  promptWidth: number;
  completionWidth: number;
}

export function packRollout(
  promptIds: readonly (readonly number[])[],
  completionIds: readonly (readonly number[])[],
  padId: number,
  tokenMasks?: readonly (readonly number[] | null)[] | null,
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
    const tm = tokenMasks?.[i] ?? null;
    for (let j = 0; j < c.length; j++) {
      ids[i * t + p + j] = c[j];
      attn[i * t + p + j] = 1;
      cids[i * tc + j] = c[j];
      cmask[i * tc + j] = tm === null ? 1 : tm[j]; // environment tokens are context, not actions
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
 * sampling temperature exactly, as TRL's GRPO and RLOO do; its PPO and online DPO divide by T + 1e-7, a guard
 * against T = 0 that the config schemas make unnecessary). Only the Tc positions that predict completion tokens
 * go through the LM head.
 */
export function completionLogprobs(
  model: CausalLM,
  packed: PackedRollout,
  o: { temperature?: number; entropies?: boolean; entropyGrad?: boolean } = {},
): CompletionScores {
  const { promptWidth: p, completionWidth: tc } = packed;
  const hidden = model.forwardHidden({ inputIds: packed.inputIds, attentionMask: packed.attentionMask }); // (B, P+Tc, D)
  const h = slice(hidden, 1, p - 1, p - 1 + tc); // (B, Tc, D): position t predicts token t + 1
  let logits = linear(h, model.lmHeadWeight); // (B, Tc, V)
  const temp = o.temperature ?? 1;
  if (temp > 0 && temp !== 1) logits = mul(logits, 1 / temp);
  const logps = tokenLogprobs(logits, packed.completionIds); // (B, Tc)
  if (!o.entropies) return { logps };
  // the entropy bonus needs the gradient; the metric alone does not
  const entropies = o.entropyGrad ? entropy(logits) : noGrad(() => entropy(detach(logits)));
  return { logps, entropies: reshape(entropies, [packed.inputIds.shape[0], tc]) };
}

/** Prompt + completion rows of a rollout packed for one forward pass (environment tokens masked out). */
export function packRows(r: Rollout, rows: readonly number[], padId: number): PackedRollout {
  return packRollout(
    rows.map((i) => r.promptIds[i]),
    rows.map((i) => r.completionIds[i]),
    padId,
    r.tokenMasks === null ? null : rows.map((i) => (r.tokenMasks as number[][])[i]),
  );
}

/** Per-completion token log-probs of `model` without gradient, `batchSize` rows per forward pass. */
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
