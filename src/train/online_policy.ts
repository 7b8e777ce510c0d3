// What the online trainers (PPO, online DPO, SPIN) share: prompts → ids, sampling completions with the current
// policy, temperature-scaled per-token log-probs of prompt + completion, scoring completions with a reward model
// and/or weighted reward functions (with TRL's missing-EOS penalty), and a hand-run optimizer loop (AdamW with
// HF decay groups, schedule, clipping, JSONL metrics; checkpoints and resume through run_state.ts).
// Not here: the losses (src/losses/), the offline loop over a fixed dataset (loop.ts), group rollouts (GRPO).

import { z } from "zod";
import { alignedTokenLogprobs, type Batch, collate } from "../data/batch.js";
import { generate } from "../generate/generate.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { SequenceClassifier } from "../models/heads.js";
import { clipGradNorm } from "../nn/clip.js";
import type { Module } from "../nn/module.js";
import type { Rng } from "../nn/rng.js";
import { computeRewards, type RewardFn } from "../rewards/types.js";
import { concat, entropy, mul, noGrad, scopeAsync, slice, type Tensor, zeros } from "../tensor/index.js";
import { syncGradients } from "./grad_sync.js";
import { afterStep, createLoopSchedule, createOptimizer, epochOrder, LOOP_FIELDS, TrainingError } from "./loop.js";
import { type Metrics, MetricsLogger } from "./metrics.js";
import { NonFiniteError, NonFiniteGuard } from "./nonfinite.js";
import { atPrecision } from "./precision.js";
import { type PromptCompletion, toExample } from "./preference_data.js";
import { RunCheckpointer, type RunControl, runControl } from "./run_state.js";

/** LOOP_FIELDS minus what only applies to a fixed dataset (token-budget batching, eval hooks). */
const { maxTokensPerBatch: _mtpb, evalSteps: _es, ...ONLINE_LOOP } = LOOP_FIELDS;
export const ONLINE_LOOP_FIELDS = ONLINE_LOOP;
const ONLINE_LOOP_SCHEMA = z.object(ONLINE_LOOP_FIELDS).strict();
export type OnlineLoopConfig = z.output<typeof ONLINE_LOOP_SCHEMA>;

/** A prompt-only dataset row: the prompt (text or messages) plus any columns the reward functions read. */
export interface PromptRow {
  prompt: string | ChatMessage[];
  [column: string]: unknown;
}

/** Prompt ids: text is encoded with the tokenizer's special tokens; messages are rendered with the generation prompt. */
export function encodePrompt(tok: Tokenizer, prompt: string | readonly ChatMessage[]): number[] {
  if (typeof prompt === "string") return tok.encode(prompt);
  return tok.encode(tok.applyChatTemplate(prompt, { addGenerationPrompt: true }), { addSpecialTokens: false });
}

/** The prompt as the reward functions see it (chat prompts rendered). */
export function promptText(tok: Tokenizer, prompt: string | readonly ChatMessage[]): string {
  return typeof prompt === "string" ? prompt : tok.applyChatTemplate(prompt, { addGenerationPrompt: true });
}

export interface Sample extends PromptCompletion {
  /** Decoded completion, special tokens skipped. */
  text: string;
  /** Whether the completion contains an EOS / stop id (TRL's contain_eos_token). */
  hasEos: boolean;
}

export interface SampleOptions {
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  /** Ids that end a completion (kept as its last token). */
  eosIds: readonly number[];
  rng: Rng;
  tokenizer: Tokenizer;
}

/** One sampled completion per prompt from the current policy (no gradient). */
export function samplePolicy(policy: CausalLM, prompts: readonly (readonly number[])[], o: SampleOptions): Sample[] {
  const gens = generate(policy, prompts, {
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    eosTokenId: [...o.eosIds],
    rng: o.rng,
  });
  const eos = new Set(o.eosIds);
  return gens.map((g) => ({
    promptIds: [...g.promptIds],
    completionIds: g.completionIds,
    text: o.tokenizer.decode(g.completionIds, { skipSpecialTokens: true }),
    hasEos: g.completionIds.some((id) => eos.has(id)),
  }));
}

/** Right-padded prompt + completion batch; lossMask marks completion tokens. */
export function collateSequences(seqs: readonly PromptCompletion[], padId: number): Batch {
  return collate(seqs.map(toExample), padId);
}

/** x [B, T] scored at position t - 1 → aligned with token t (0 at t = 0), as alignedTokenLogprobs does. */
export function shiftRight(x: Tensor): Tensor {
  const [b, t] = x.shape;
  if (t === 1) return zeros([b, 1], x.dtype);
  return concat([zeros([b, 1], x.dtype), slice(x, 1, 0, t - 1)], 1); // (B, T) -> (B, T)
}

export interface TokenScores {
  /** log softmax(logits / temperature) at each token, aligned [B, T]. */
  logprobs: Tensor;
  /** Entropy of the (tempered) next-token distribution that produced each token, aligned [B, T] (detached). */
  entropy: Tensor | null;
}

/** Forward a causal LM on a batch; per-token log-probs under logits / temperature (TRL PPO / online DPO). */
export function tokenScores(model: CausalLM, batch: Batch, temperature = 1, withEntropy = false): TokenScores {
  const { logits } = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
  // TRL divides by (temperature + 1e-7) so that the trained distribution is the one that sampled
  const scaled = temperature === 1 ? logits : mul(logits, 1 / (temperature + 1e-7));
  const logprobs = alignedTokenLogprobs(scaled, batch.inputIds);
  const ent = withEntropy ? noGrad(() => shiftRight(entropy(scaled))) : null; // (B, T, V) -> (B, T)
  return { logprobs, entropy: ent };
}

// ---- scoring ------------------------------------------------------------------------------------------

/** Where a completion's scalar score comes from: a reward model and/or weighted reward functions (summed). */
export interface RewardSources {
  /** A sequence classifier scoring prompt + completion at its last real token (same tokenizer as the policy). */
  rewardModel?: SequenceClassifier | null;
  /** Reward functions called with prompts, completions, ids and every extra dataset column. */
  rewardFuncs?: readonly RewardFn[];
  /** Weights of rewardFuncs (default all 1); the reward model has weight 1. */
  rewardWeights?: readonly number[] | null;
}

export interface ScoredSamples {
  /** Total score per completion, after the missing-EOS penalty. */
  scores: number[];
  /** Mean of each source over the batch (`rewards/<name>/mean`). */
  perSource: Record<string, number>;
}

/** TRL's EOS trick: score -= penalty for every completion without EOS (penalty null: unchanged). */
export function applyMissingEosPenalty(scores: readonly number[], hasEos: readonly boolean[], penalty: number | null): number[] {
  return scores.map((s, i) => (penalty !== null && !hasEos[i] ? s - penalty : s));
}

/** Score samples; `rows[i]` is the dataset row of sample i (its extra columns reach the reward functions). */
export async function scoreSamples(
  src: RewardSources,
  samples: readonly Sample[],
  prompts: readonly string[],
  rows: readonly PromptRow[],
  padId: number,
  missingEosPenalty: number | null,
): Promise<ScoredSamples> {
  const n = samples.length;
  const total = new Array<number>(n).fill(0);
  const perSource: Record<string, number> = {};
  const meanOf = (xs: readonly (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length;
  };
  if (!src.rewardModel && (src.rewardFuncs?.length ?? 0) === 0) {
    throw new TrainingError("[online] give a reward model or at least one reward function");
  }
  if (src.rewardModel) {
    const rm = src.rewardModel;
    const batch = collateSequences(samples, padId);
    const s = noGrad(() => rm.rewards({ inputIds: batch.inputIds, attentionMask: batch.attentionMask })).hostData();
    for (let i = 0; i < n; i++) total[i] += s[i];
    perSource["rewards/reward_model/mean"] = meanOf(Array.from(s));
  }
  const fns = src.rewardFuncs ?? [];
  if (fns.length > 0) {
    const columns: Record<string, unknown[]> = {};
    for (const key of new Set(rows.flatMap((r) => Object.keys(r)))) {
      if (key !== "prompt" && key !== "completion") columns[key] = rows.map((r) => r[key]);
    }
    const out = await computeRewards(
      fns,
      { ...columns, prompts: [...prompts], completions: samples.map((s) => s.text), completionIds: samples.map((s) => s.completionIds) },
      src.rewardWeights ?? undefined,
    );
    for (let i = 0; i < n; i++) total[i] += out.total[i];
    out.names.forEach((name, k) => {
      perSource[`rewards/${name}/mean`] = meanOf(out.perFunction[k]);
    });
  }
  return {
    scores: applyMissingEosPenalty(
      total,
      samples.map((s) => s.hasEos),
      missingEosPenalty,
    ),
    perSource,
  };
}

// ---- the hand-run optimizer loop ------------------------------------------------------------------------

export interface OnlineStepContext {
  /** 0-based index of this outer step (one generation batch). */
  step: number;
  /** Clip gradients, step AdamW at this step's learning rate, zero gradients; returns the pre-clip grad norm. */
  optimizerStep(): number;
}

export interface OnlineLoopOptions extends RunControl {
  /** Module whose trainable parameters are optimized and checkpointed. */
  trainable: Module;
  config: OnlineLoopConfig;
  totalSteps: number;
  /** Advanced by the trainer's sampling; its state is saved with every checkpoint and restored on resume. */
  rng: Rng;
  /** Tensors the trainer changes besides the trainable weights (a synced reference), checkpointed with them. */
  trainerTensors?: readonly [string, Tensor][];
  outputDir: string | null;
  fullConfig: Record<string, unknown>;
  label: string;
  quiet?: boolean;
  stopAfterStep?: number;
  /** One generation batch: sample, score, call optimizerStep() one or more times, return metrics. */
  step(ctx: OnlineStepContext): Promise<Metrics>;
}

export interface OnlineRunResult {
  step: number;
  history: Metrics[];
  interrupted: boolean;
}

/** Drives the outer steps of an online trainer. */
/** The online policy loop (PPO, online DPO), at the config's precision. */
export async function runOnline(o: OnlineLoopOptions): Promise<OnlineRunResult> {
  return atPrecision(o.config.precision, () => runOnlineAt(o));
}

async function runOnlineAt(o: OnlineLoopOptions): Promise<OnlineRunResult> {
  const cfg = o.config;
  const loopCfg = { ...cfg, maxTokensPerBatch: 0, evalSteps: 0 };
  const { optimizer, named, optNames } = createOptimizer(o.trainable, loopCfg, o.label);
  const schedule = createLoopSchedule(loopCfg, o.totalSteps);

  const checkpointer = new RunCheckpointer<Record<string, unknown>>({
    outputDir: o.outputDir,
    label: o.label,
    quiet: o.quiet,
    named,
    optimizer,
    optNames,
    rng: o.rng,
    trainerTensors: o.trainerTensors,
    config: o.fullConfig,
    keep: cfg.saveTotalLimit,
    totalSteps: o.totalSteps,
    control: runControl(o),
  });
  const restored = checkpointer.start();
  let step = restored?.step ?? 0;
  const totals: Record<string, number> = restored?.totals ?? {};
  const guard = new NonFiniteGuard(o.label, cfg.onNonfinite, named, { watchCollapse: false });
  const logger = new MetricsLogger(o.outputDir === null ? null : `${o.outputDir}/metrics.jsonl`, {
    total: o.totalSteps,
    label: o.label,
    quiet: o.quiet,
  });
  const save = () => checkpointer.save({ step, epoch: step, totalSteps: o.totalSteps, totals });

  const history: Metrics[] = [];
  o.trainable.train();
  while (step < o.totalSteps) {
    const lr = schedule.lrAt(step);
    let gradNorm = Number.NaN;
    // on a device, what the step allocated is freed when it ends (parameters, gradients and optimizer state are kept)
    const metrics = await scopeAsync(() =>
      o.step({
        step,
        optimizerStep: () => {
          syncGradients(optimizer.params());
          const verdict = guard.check(step + 1, null);
          gradNorm = verdict.norm;
          if (verdict.apply) {
            if (cfg.maxGradNorm > 0) gradNorm = clipGradNorm(optimizer.params(), cfg.maxGradNorm);
            optimizer.lr = lr;
            optimizer.step();
          } else {
            totals.nonfinite_skipped = (totals.nonfinite_skipped ?? 0) + 1;
          }
          optimizer.zeroGrad();
          return gradNorm;
        },
      }),
    );
    step++;
    const loss = metrics.loss;
    if (cfg.onNonfinite === "stop" && typeof loss === "number" && !Number.isFinite(loss)) {
      throw new NonFiniteError(`[${o.label}] loss is ${loss} at step ${step}; the checkpoints on disk are intact`);
    }
    const all: Metrics = { ...metrics, learning_rate: lr };
    if (cfg.maxGradNorm > 0) all.grad_norm = gradNorm;
    if (totals.nonfinite_skipped !== undefined) all.nonfinite_skipped = totals.nonfinite_skipped;
    const stop = await afterStep({
      step,
      totalSteps: o.totalSteps,
      cfg: { ...cfg, evalSteps: 0 },
      metrics: all,
      history,
      logger,
      model: o.trainable,
      save,
      stopAfterStep: o.stopAfterStep,
      run: checkpointer,
      label: o.label,
    });
    if (stop) return { step, history, interrupted: true };
  }
  o.trainable.eval();
  return { step, history, interrupted: false };
}

/** epochOrder(n, seed, epoch), memoised per epoch. */
export function epochOrders(n: number, seed: number): (epoch: number) => number[] {
  const cache = new Map<number, number[]>();
  return (epoch) => {
    let o = cache.get(epoch);
    if (o === undefined) {
      o = epochOrder(n, seed, epoch);
      cache.set(epoch, o);
    }
    return o;
  };
}

/** Prompt rows of outer step s: a seeded permutation per epoch, consumed in order, wrapping into the next epoch. */
export function rowsOfStep<R>(rows: readonly R[], perStep: number, step: number, order: (epoch: number) => number[]): R[] {
  const out: R[] = [];
  for (let k = step * perStep; k < (step + 1) * perStep; k++) {
    const epoch = Math.floor(k / rows.length);
    out.push(rows[order(epoch)[k % rows.length]]);
  }
  return out;
}
