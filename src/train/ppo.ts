// PPO for language models as TRL's experimental PPOTrainer (v1.9) runs it: rollouts from the current policy,
// per-token reward -klCoef * kl (k1 or k3 against a frozen reference) plus the score at the last real token,
// GAE (gamma 1, lam 0.95), advantages whitened once per rollout batch, then numPpoEpochs passes of clipped
// policy + clipped value loss over numMiniBatches minibatches; the value model is its own SequenceClassifier.
// Schulman et al. 2017; Huang et al. 2024 (N+ implementation details). Differs from TRL: the score sits on the
// last real token (TRL adds it one slot past it, in the padding), and the value loss uses the same mask.

import { z } from "zod";
import type { Batch } from "../data/batch.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { gae } from "../losses/advantages.js";
import { KL_ESTIMATORS } from "../losses/kl.js";
import { maskedWhiten, type PpoOutput, ppoLoss } from "../losses/ppo.js";
import type { CausalLM } from "../models/causal_lm.js";
import { classifierFromCausalLM, SequenceClassifier } from "../models/heads.js";
import { type LoraModel, withAdaptersDisabled } from "../models/lora.js";
import { Module } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import type { RewardFn } from "../rewards/types.js";
import { fromArray, indexSelect, maskedMean, mul, noGrad, reshape, scope, square, sub, sum, type Tensor } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { frozenCopy, resolvePolicy } from "./dpo.js";
import { TrainingError } from "./loop.js";
import type { Metrics } from "./metrics.js";
import {
  collateSequences,
  encodePrompt,
  epochOrders,
  ONLINE_LOOP_FIELDS,
  type OnlineRunResult,
  type PromptRow,
  promptText,
  rowsOfStep,
  runOnline,
  type Sample,
  samplePolicy,
  scoreSamples,
  shiftRight,
  tokenScores,
} from "./online_policy.js";
import { padIdOf } from "./preference_data.js";
import { type RunControl, runControl } from "./run_state.js";

export const PPO_FIELDS = {
  ...ONLINE_LOOP_FIELDS,
  learningRate: z.number().positive().default(3e-6).describe("Peak learning rate (policy and value model)"),
  numPpoEpochs: z.number().int().positive().default(4).describe("Optimisation passes over each rollout batch"),
  numMiniBatches: z.number().int().positive().default(1).describe("Minibatches (optimizer steps) per PPO epoch"),
  responseLength: z.number().int().positive().default(53).describe("Tokens generated at most per completion"),
  temperature: z.number().positive().default(0.7).describe("Sampling temperature (log-probs are taken under it too)"),
  klCoef: z.number().min(0).default(0.05).describe("Weight of the per-token KL penalty in the reward"),
  klEstimator: z.enum(["k1", "k3"]).default("k1").describe("Per-token KL estimator in the reward"),
  cliprange: z.number().positive().default(0.2).describe("Policy ratio clip"),
  cliprangeValue: z.number().positive().default(0.2).describe("Value clip around the rollout values"),
  vfCoef: z.number().min(0).default(0.1).describe("Weight of the value loss"),
  gamma: z.number().min(0).max(1).default(1).describe("GAE discount"),
  lam: z.number().min(0).max(1).default(0.95).describe("GAE lambda"),
  whitenRewards: z.boolean().default(false).describe("Whiten per-token rewards (mean kept) before GAE"),
  missingEosPenalty: z.number().nullable().default(null).describe("Subtracted from the score of a completion without EOS"),
  stopToken: z.enum(["eos"]).nullable().default(null).describe("'eos': end completions at EOS (always the case; kept for TRL configs)"),
  stopTokenId: z.number().int().nonnegative().nullable().default(null).describe("A token id that also ends completions (counts as EOS)"),
  valueModelInit: z.enum(["reward", "policy"]).default("reward").describe("Copy the value model from the reward model or the policy"),
  rewardWeights: z.array(z.number()).nullable().default(null).describe("One weight per reward function; null = all 1"),
};
export const PPO_SCHEMA = z.object(PPO_FIELDS).strict();
export type PpoTrainConfig = z.output<typeof PPO_SCHEMA>;
export type PpoTrainInput = Partial<z.input<typeof PPO_SCHEMA>>;

export const PPO_RULES: ((c: PpoTrainConfig) => string | null)[] = [
  (c) => (c.stopToken !== null && c.stopTokenId !== null ? "set stopToken or stopTokenId, not both" : null),
];

export function resolvePpoConfig(input: PpoTrainInput = {}): PpoTrainConfig {
  return resolveConfig("ppo", PPO_SCHEMA, input as Record<string, unknown>, PPO_RULES);
}

// ---- pure pieces (exported for tests and benchmarks) ------------------------------------------------------

export interface PpoRewardInputs {
  /** Rollout log-probs [B, T] and reference log-probs [B, T] of the sampled tokens. */
  logprobs: Tensor;
  refLogprobs: Tensor;
  /** One score per row (after the missing-EOS penalty). */
  scores: readonly number[];
  /** 1 on completion tokens [B, T] (right-padded: the last 1 of a row is its last real token). */
  mask: Tensor;
  klCoef: number;
  klEstimator: "k1" | "k3";
}

/** Per-token KL [B, T], non-score reward -klCoef * kl [B, T] and rewards (plus the score at the last real token). */
export function ppoRewards(r: PpoRewardInputs): { kl: Tensor; nonScoreReward: Tensor; rewards: Tensor } {
  return noGrad(() => {
    const kl = mul(KL_ESTIMATORS[r.klEstimator](r.logprobs, r.refLogprobs), r.mask);
    const nonScoreReward = mul(kl, -r.klCoef);
    const [b, t] = r.mask.shape;
    const out = Float32Array.from(nonScoreReward.hostData());
    const md = r.mask.hostData();
    for (let i = 0; i < b; i++) {
      let last = t - 1;
      while (last >= 0 && md[i * t + last] === 0) last--;
      if (last < 0) throw new TrainingError(`[ppo] row ${i} has no completion token`);
      out[i * t + last] += r.scores[i];
    }
    return { kl, nonScoreReward, rewards: fromArray(out, [b, t]) };
  });
}

/** A scored rollout batch, everything PPO's epochs need (all [B, T] tensors aligned with the tokens). */
export interface PpoBatch {
  samples: Sample[];
  batch: Batch;
  logprobs: Tensor;
  refLogprobs: Tensor;
  values: Tensor;
  scores: number[];
  kl: Tensor;
  nonScoreReward: Tensor;
  rewards: Tensor;
  /** Whitened over the whole batch (0 outside the mask). */
  advantages: Tensor;
  returns: Tensor;
  /** Reward-source means of this batch. */
  perSource: Record<string, number>;
}

/** Rows `idx` of a constant [B, ...] tensor (a copy; rollout tensors carry no gradient). */
function selectRows(t: Tensor, idx: readonly number[]): Tensor {
  const inner = t.size / t.shape[0];
  if (t.dtype !== "i32")
    return reshape(indexSelect(reshape(t, [t.shape[0], inner]), fromArray(Int32Array.from(idx))), [idx.length, ...t.shape.slice(1)]);
  // ids are host-made: rows picked on the host (no transfer for a device tensor with its host shadow)
  const src = t.hostData();
  const out = new Int32Array(idx.length * inner);
  idx.forEach((r, k) => {
    out.set(src.subarray(r * inner, (r + 1) * inner), k * inner);
  });
  return fromArray(out, [idx.length, ...t.shape.slice(1)]);
}

/** TRL's PolicyAndValueWrapper: one module, one optimizer, over the policy's trainable part and the value model. */
class PolicyAndValue extends Module {
  constructor(policy: Module, value: SequenceClassifier) {
    super();
    this.registerModule("policy", policy);
    this.registerModule("value_model", value);
  }
}

export interface PpoTrainerOptions extends RunControl {
  /** The policy (trained in place); with a LoraModel only the adapters train and the base is the reference. */
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  /** Prompt-only rows; extra columns reach the reward functions. */
  rows: readonly PromptRow[];
  config?: PpoTrainInput;
  /** Frozen reference; default a frozen copy of the starting policy (or the LoRA base). */
  refModel?: CausalLM;
  /** Reward model scoring prompt + completion at the last real token; summed with rewardFuncs. */
  rewardModel?: SequenceClassifier | null;
  rewardFuncs?: readonly RewardFn[];
  /** Value model (trained); default per config.valueModelInit. */
  valueModel?: SequenceClassifier;
  outputDir?: string | null;
  quiet?: boolean;
  stopAfterStep?: number;
}

export interface PpoTrainResult extends OnlineRunResult {
  config: PpoTrainConfig;
  valueModel: SequenceClassifier;
}

/** Holds the four models and runs rollouts and PPO updates; `train()` is the whole loop. */
export class PpoTrainer {
  readonly config: PpoTrainConfig;
  readonly policy: CausalLM;
  readonly valueModel: SequenceClassifier;
  readonly trainable: Module;
  readonly rng: Rng;
  private readonly padId: number;
  private readonly eosIds: number[];
  private readonly refLogps: (b: Batch) => Tensor;
  /** The frozen copy made as the reference (null: an explicit refModel or the LoRA base). */
  readonly frozenReference: CausalLM | null = null;
  private optimizerStep: () => number = () => {
    throw new TrainingError("[ppo] ppoUpdate runs inside train() or with an optimizerStep");
  };

  constructor(readonly opts: PpoTrainerOptions) {
    this.config = resolvePpoConfig(opts.config);
    const c = this.config;
    const { policy, trainable, lora } = resolvePolicy(opts.model);
    this.policy = policy;
    this.padId = padIdOf(opts.tokenizer);
    this.rng = new Rng(c.seed);
    // generation always ends at EOS (HF generate does); stopTokenId ends it too (TRL truncates there)
    this.eosIds = [opts.tokenizer.eosTokenId, c.stopTokenId].filter((x): x is number => x !== null);
    if (opts.rewardModel && opts.rewardModel.numLabels !== 1) throw new TrainingError("[ppo] the reward model must have num_labels 1");

    // reference: explicit, else the LoRA base, else a frozen copy taken now
    if (opts.refModel === undefined && lora !== null) {
      this.refLogps = (b) => noGrad(() => withAdaptersDisabled(lora, () => tokenScores(policy, b, c.temperature).logprobs));
    } else {
      const ref = opts.refModel ?? frozenCopy(policy);
      if (opts.refModel === undefined) this.frozenReference = ref;
      this.refLogps = (b) => noGrad(() => tokenScores(ref, b, c.temperature).logprobs);
    }
    // value model: given, else a copy of the reward model (TRL's usual value_model_path) or of the policy backbone
    let value = opts.valueModel;
    if (value === undefined) {
      const rm = opts.rewardModel;
      if (c.valueModelInit === "reward" && rm) {
        value = new SequenceClassifier(rm.config);
        value.loadStateDict(rm.stateDict());
      } else value = classifierFromCausalLM(policy, "sequence", { seed: c.seed }) as SequenceClassifier;
    }
    if (value === opts.rewardModel) throw new TrainingError("[ppo] the value model must be a separate copy of the reward model");
    value.requiresGrad(true);
    opts.rewardModel?.requiresGrad(false);
    this.valueModel = value;
    this.trainable = new PolicyAndValue(trainable, value);
  }

  /** Rows per rollout batch: perDeviceTrainBatchSize × gradientAccumulationSteps × numMiniBatches (TRL local_batch_size). */
  get batchSize(): number {
    const c = this.config;
    return c.perDeviceTrainBatchSize * c.gradientAccumulationSteps * c.numMiniBatches;
  }

  /** Aligned per-token values [B, T]: the value of token t is read at position t - 1 (the state before it). */
  private valuesOf(b: Batch): Tensor {
    return shiftRight(this.valueModel.values({ inputIds: b.inputIds, attentionMask: b.attentionMask }));
  }

  /** Sample one completion per row, score it, and compute rewards, GAE and whitened advantages. */
  async rollout(rows: readonly PromptRow[]): Promise<PpoBatch> {
    const c = this.config;
    const tok = this.opts.tokenizer;
    const samples = samplePolicy(
      this.policy,
      rows.map((r) => encodePrompt(tok, r.prompt)),
      { maxNewTokens: c.responseLength, temperature: c.temperature, eosIds: this.eosIds, rng: this.rng, tokenizer: tok },
    );
    const { scores, perSource } = await scoreSamples(
      { rewardModel: this.opts.rewardModel, rewardFuncs: this.opts.rewardFuncs, rewardWeights: c.rewardWeights },
      samples,
      rows.map((r) => promptText(tok, r.prompt)),
      rows,
      this.padId,
      c.missingEosPenalty,
    );
    const batch = collateSequences(samples, this.padId);
    const logprobs = noGrad(() => tokenScores(this.policy, batch, c.temperature).logprobs);
    const refLogprobs = this.refLogps(batch);
    const values = noGrad(() => mul(this.valuesOf(batch), batch.lossMask));
    return this.withAdvantages({ samples, batch, logprobs, refLogprobs, values, scores, perSource });
  }

  /** Rewards, GAE and whitened advantages from a batch's log-probs, values and scores (exported for tests). */
  withAdvantages(p: Pick<PpoBatch, "samples" | "batch" | "logprobs" | "refLogprobs" | "values" | "scores" | "perSource">): PpoBatch {
    const c = this.config;
    const mask = p.batch.lossMask;
    const { kl, nonScoreReward, rewards: raw } = ppoRewards({ ...p, mask, klCoef: c.klCoef, klEstimator: c.klEstimator });
    const rewards = c.whitenRewards ? mul(maskedWhiten(raw, mask, false), mask) : raw;
    const { advantages, returns } = gae({ rewards, values: p.values, mask }, { gamma: c.gamma, lam: c.lam });
    const white = mul(maskedWhiten(advantages, mask), mask);
    return { ...p, kl, nonScoreReward, rewards, advantages: white, returns };
  }

  /** The PPO loss of rows `idx` of a batch (policy and value forward passes with gradients). */
  microLoss(b: PpoBatch, idx: readonly number[]): { out: PpoOutput; metrics: Record<string, number> } {
    const c = this.config;
    const rows = (t: Tensor) => selectRows(t, idx);
    const mb = {
      inputIds: rows(b.batch.inputIds),
      attentionMask: rows(b.batch.attentionMask),
      lossMask: rows(b.batch.lossMask),
      lengths: idx.map((i) => b.batch.lengths[i]),
    };
    const mask = mb.lossMask;
    const { logprobs, entropy } = tokenScores(this.policy, mb, c.temperature, true);
    const vpred = this.valuesOf(mb);
    const oldLogprobs = rows(b.logprobs);
    const out = ppoLoss(
      {
        logprobs,
        oldLogprobs,
        values: vpred,
        oldValues: rows(b.values),
        advantages: rows(b.advantages),
        returns: rows(b.returns),
        mask,
      },
      { cliprange: c.cliprange, cliprangeValue: c.cliprangeValue, vfCoef: c.vfCoef, whitenAdvantages: false },
    );
    const metrics = noGrad(() => {
      const logRatio = sub(logprobs, oldLogprobs);
      return {
        approxkl: mul(maskedMean(square(logRatio), mask), 0.5).item(),
        entropy: maskedMean(entropy as Tensor, mask).item(),
        ratio: maskedMean(logRatio.exp(), mask).item(),
      };
    });
    return { out, metrics };
  }

  /**
   * numPpoEpochs passes over a rollout batch: each pass shuffles the rows, splits them into numMiniBatches
   * minibatches (one optimizer step each) of gradientAccumulationSteps micro-batches. Returns TRL's averages.
   */
  ppoUpdate(b: PpoBatch, optimizerStep: () => number = this.optimizerStep): Record<string, number> {
    const c = this.config;
    const n = b.samples.length;
    const mini = Math.ceil(n / c.numMiniBatches);
    const sums: Record<string, number> = {};
    let count = 0;
    const acc = (k: string, v: number) => {
      sums[k] = (sums[k] ?? 0) + v;
    };
    for (let epoch = 0; epoch < c.numPpoEpochs; epoch++) {
      const order = this.rng.shuffle(Array.from({ length: n }, (_, i) => i));
      for (let m = 0; m < n; m += mini) {
        const inds = order.slice(m, m + mini);
        const micro: number[][] = [];
        for (let k = 0; k < inds.length; k += c.perDeviceTrainBatchSize) micro.push(inds.slice(k, k + c.perDeviceTrainBatchSize));
        for (const idx of micro) {
          // on a device, what the micro-batch allocated is freed at the end of its scope (gradients are kept)
          scope(() => {
            const { out, metrics } = this.microLoss(b, idx);
            out.loss.div(micro.length).backward(); // accelerate's accumulate: mean over micro-batches
            acc("policy/approxkl_avg", metrics.approxkl);
            acc("policy/clipfrac_avg", out.pgClipfrac.item());
            acc("loss/policy_avg", out.pgLoss.item());
            acc("loss/value_avg", out.vfLoss.item());
            acc("val/clipfrac_avg", out.vfClipfrac.item());
            acc("policy/entropy_avg", metrics.entropy);
            acc("val/ratio", metrics.ratio);
            acc("val/ratio_sq", metrics.ratio * metrics.ratio);
            count++;
          });
        }
        optimizerStep();
      }
    }
    const avg: Record<string, number> = {};
    for (const [k, v] of Object.entries(sums)) avg[k] = v / count;
    avg["val/ratio_var"] = Math.max(0, avg["val/ratio_sq"] - avg["val/ratio"] ** 2);
    delete avg["val/ratio_sq"];
    return avg;
  }

  /** TRL's objective/* metrics of a rollout batch (sums over tokens, means over rows). */
  rolloutMetrics(b: PpoBatch): Record<string, number> {
    return noGrad(() => {
      const rowsMean = (t: Tensor) => sum(mul(t, b.batch.lossMask)).item() / b.samples.length;
      const nonScore = rowsMean(b.nonScoreReward);
      const scoreMean = b.scores.reduce((a, s) => a + s, 0) / b.scores.length;
      return {
        "objective/kl": rowsMean(b.kl),
        "objective/entropy": -rowsMean(b.logprobs),
        "objective/non_score_reward": nonScore,
        "objective/rlhf_reward": scoreMean + nonScore,
        "objective/scores": scoreMean,
        "val/num_eos_tokens": b.samples.filter((s) => s.hasEos).length,
        "completions/mean_length": b.samples.reduce((a, s) => a + s.completionIds.length, 0) / b.samples.length,
      };
    });
  }

  async train(): Promise<PpoTrainResult> {
    const c = this.config;
    const rows = this.opts.rows;
    if (rows.length === 0) throw new TrainingError("[ppo] the dataset has no rows");
    const per = this.batchSize;
    const totalSteps = c.maxSteps > 0 ? c.maxSteps : Math.ceil((c.numTrainEpochs * rows.length) / per);
    const order = epochOrders(rows.length, c.seed);
    const start = Date.now();
    const run = await runOnline({
      trainable: this.trainable,
      config: c,
      totalSteps,
      rng: this.rng,
      outputDir: this.opts.outputDir ?? null,
      ...runControl(this.opts),
      fullConfig: { trainer: "ppo", ...c },
      label: "ppo",
      quiet: this.opts.quiet,
      stopAfterStep: this.opts.stopAfterStep,
      step: async ({ step, optimizerStep }) => {
        const b = await this.rollout(rowsOfStep(rows, per, step, order));
        const m: Metrics = { ...this.rolloutMetrics(b), ...b.perSource, ...this.ppoUpdate(b, optimizerStep) };
        m.loss = (m["loss/policy_avg"] as number) + c.vfCoef * (m["loss/value_avg"] as number);
        m.episode = (step + 1) * per;
        m.eps = ((step + 1) * per) / Math.max(1e-9, (Date.now() - start) / 1000);
        return m;
      },
    });
    return { ...run, config: c, valueModel: this.valueModel };
  }
}

export async function trainPpo(opts: PpoTrainerOptions): Promise<PpoTrainResult> {
  return new PpoTrainer(opts).train();
}

/** Bytes of float parameters held by each model of a PPO setup and by AdamW's two moments (benchmarks). */
export function ppoModelBytes(t: PpoTrainer): Record<string, number> {
  const size = (p: Tensor) => p.size * (p.dtype === "f64" ? 8 : 4);
  const bytes = (m: Module) => m.parameters().reduce((a, p) => a + size(p), 0);
  const trainable = t.trainable.trainableParameters().reduce((a, p) => a + size(p), 0);
  return {
    policy: bytes(t.policy),
    value: bytes(t.valueModel),
    reward: t.opts.rewardModel ? bytes(t.opts.rewardModel) : 0,
    reference: t.opts.refModel ? bytes(t.opts.refModel) : t.frozenReference ? bytes(t.frozenReference) : 0, // 0: the LoRA base
    optimizer: 2 * trainable,
  };
}
