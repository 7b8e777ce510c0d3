// PPO for language models as TRL's experimental PPOTrainer (v1.9) runs it, an algorithm of the one online loop:
// one completion per prompt from the current policy (or a generator URL), the reward mix as the score, per-token
// reward -klCoef * kl (k1 or k3 against a frozen reference) plus the score at the last policy token, GAE (gamma 1,
// lam 0.95), advantages whitened once per batch, then numPpoEpochs passes of clipped policy + clipped value loss
// over numMiniBatches shuffled minibatches (one optimizer step each); the value model is its own SequenceClassifier
// trained with the policy. Schulman et al. 2017; Huang et al. 2024. Differs from TRL: the score sits on the last
// policy token (TRL adds it one slot past it), the value loss uses the same mask, log-probs use logits / T exactly.

import { z } from "zod";
import { gae } from "../losses/advantages.js";
import { KL_ESTIMATORS } from "../losses/kl.js";
import { maskedWhiten, ppoLoss } from "../losses/ppo.js";
import type { CausalLM } from "../models/causal_lm.js";
import { SequenceClassifier, saveClassifier } from "../models/heads.js";
import { LoraModel } from "../models/lora.js";
import { Module } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import { fromArray, maskedMean, mul, noGrad, slice, square, sub, sum, type Tensor } from "../tensor/index.js";
import { entropySum, groupMicroBatch } from "./grpo.js";
import { TrainingError } from "./loop.js";
import { ONLINE_FIELDS, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import type { GenerationBatch, MicroLoss, OnlineAlgorithm } from "./online_loop.js";
import { packRows, padRows } from "./rollout.js";
import { resolveModel, resolveTokenizer } from "./trainer_io.js";

export const PPO_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(3e-6).describe("Peak learning rate (policy and value model)."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Rows (one completion each) per micro-batch."),
  numGenerations: z
    .number()
    .int()
    .min(1)
    .default(1)
    .describe("Completions per prompt (TRL: 1); more lets dynamic sampling drop prompts whose completions all score the same."),
  maxCompletionLength: z.number().int().positive().default(53).describe("Tokens generated at most per completion (TRL response_length)."),
  temperature: z.number().positive().default(0.7).describe("Sampling temperature (log-probs are taken under it too)."),
  numPpoEpochs: z.number().int().positive().default(4).describe("Optimisation passes over each rollout batch."),
  numMiniBatches: z.number().int().positive().default(1).describe("Minibatches (optimizer steps) per PPO epoch."),
  klCoef: z.number().min(0).default(0.05).describe("Weight of the per-token KL penalty in the reward."),
  klEstimator: z.enum(["k1", "k3"]).default("k1").describe("Per-token KL estimator in the reward."),
  cliprange: z.number().positive().default(0.2).describe("Policy ratio clip."),
  cliprangeValue: z.number().positive().default(0.2).describe("Value clip around the rollout values."),
  vfCoef: z.number().min(0).default(0.1).describe("Weight of the value loss."),
  gamma: z.number().min(0).max(1).default(1).describe("GAE discount."),
  lam: z.number().min(0).max(1).default(0.95).describe("GAE lambda."),
  whitenRewards: z.boolean().default(false).describe("Whiten per-token rewards (mean kept) before GAE."),
  stopToken: z.enum(["eos"]).nullable().default(null).describe("'eos': end completions at EOS (always the case; kept for TRL configs)."),
  stopTokenId: z.number().int().nonnegative().nullable().default(null).describe("A token id that also ends completions (counts as EOS)."),
  valueModelInit: z.enum(["reward", "policy"]).default("reward").describe("Copy the value model from the reward model or the policy."),
};
export const PPO_SCHEMA = z.object(PPO_FIELDS).strict();
export type PpoTrainConfig = z.output<typeof PPO_SCHEMA>;

export const PPO_RULES: ((c: PpoTrainConfig) => string | null)[] = [
  (c) => (c.stopToken !== null && c.stopTokenId !== null ? "set stopToken or stopTokenId, not both" : null),
  (c) => (c.numIterations !== 1 ? "PPO's passes over a batch are numPpoEpochs; leave numIterations at 1" : null),
  (c) =>
    c.perDeviceTrainBatchSize * c.gradientAccumulationSteps * c.numMiniBatches < 2
      ? "a PPO batch needs at least 2 rows (advantages are whitened over it)"
      : null,
  (c) =>
    (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps * c.numMiniBatches) % c.numGenerations === 0
      ? null
      : `a PPO batch (perDeviceTrainBatchSize x gradientAccumulationSteps x numMiniBatches) must hold whole groups of numGenerations = ${c.numGenerations}`,
  (c) => (c.dynamicSampling && c.numGenerations < 2 ? "dynamicSampling compares completions of a prompt: set numGenerations >= 2" : null),
];

export function resolvePpoConfig(input?: Record<string, unknown>): PpoTrainConfig {
  return resolveOnlineConfig("ppo", PPO_SCHEMA, input, { rules: PPO_RULES });
}

// ---- pure pieces (exported for tests) ----------------------------------------------------------------------

export interface PpoRewardInputs {
  /** Rollout log-probs [B, T] and reference log-probs [B, T] of the sampled tokens. */
  logprobs: Tensor;
  refLogprobs: Tensor;
  /** One score per row (after the missing-EOS penalty). */
  scores: readonly number[];
  /** 1 on policy tokens [B, T] (the last 1 of a row is its last policy token). */
  mask: Tensor;
  klCoef: number;
  klEstimator: "k1" | "k3";
}

/** Per-token KL [B, T], non-score reward -klCoef * kl [B, T] and rewards (plus the score at the last policy token). */
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
      if (last >= 0) out[i * t + last] += r.scores[i];
    }
    return { kl, nonScoreReward, rewards: fromArray(out, [b, t]) };
  });
}

/** Rewards, GAE and whitened advantages of a batch's log-probs, values and scores: [B, T] each. */
export function ppoAdvantages(
  p: { logprobs: Tensor; refLogprobs: Tensor; values: Tensor; scores: readonly number[]; mask: Tensor },
  c: Pick<PpoTrainConfig, "klCoef" | "klEstimator" | "whitenRewards" | "gamma" | "lam">,
): { kl: Tensor; nonScoreReward: Tensor; rewards: Tensor; advantages: Tensor; returns: Tensor } {
  const { kl, nonScoreReward, rewards: raw } = ppoRewards({ ...p, klCoef: c.klCoef, klEstimator: c.klEstimator });
  const rewards = c.whitenRewards ? mul(maskedWhiten(raw, p.mask, false), p.mask) : raw;
  const { advantages, returns } = gae({ rewards, values: p.values, mask: p.mask }, { gamma: c.gamma, lam: c.lam });
  return { kl, nonScoreReward, rewards, advantages: mul(maskedWhiten(advantages, p.mask), p.mask), returns };
}

/** TRL's PolicyAndValueWrapper: one module, one optimizer, over the policy's trainable part and the value model. */
class PolicyAndValue extends Module {
  constructor(policy: Module, value: SequenceClassifier) {
    super();
    this.registerModule("policy", policy);
    this.registerModule("value_model", value);
  }
}

/** Per-position values [b, Tc] of packed rows: the value of completion token t is read at the position before it. */
function completionValues(value: SequenceClassifier, packed: ReturnType<typeof packRows>): Tensor {
  const v = value.values({ inputIds: packed.inputIds, attentionMask: packed.attentionMask }); // (b, P + Tc)
  return slice(v, 1, packed.promptWidth - 1, packed.promptWidth - 1 + packed.completionWidth);
}

interface PpoState {
  /** Per row, over its completion tokens: rollout log-probs, values, advantages, returns. */
  logprobs: Float32Array[];
  values: Float32Array[];
  advantages: Float32Array[];
  returns: Float32Array[];
}

const rowsOf = (t: Tensor, lens: readonly number[]): Float32Array[] => {
  const w = t.shape[1];
  const d = t.hostData();
  return lens.map((n, i) => Float32Array.from(d.subarray(i * w, i * w + n)));
};

export function ppoAlgorithm(value: SequenceClassifier): OnlineAlgorithm<PpoTrainConfig, PpoState> {
  return {
    label: "ppo",
    scored: true,
    promptsPerBatch: (c) => (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps * c.numMiniBatches) / c.numGenerations,
    numGenerations: (c) => c.numGenerations,
    stepsPerBatch: () => 1,
    needsOld: () => true,
    needsRef: () => true,
    // generation always ends at EOS; stopTokenId ends it too (TRL truncates there)
    stopTokenIds: (c) => (c.stopTokenId === null ? [] : [c.stopTokenId]),
    trainable: (policy) => new PolicyAndValue(policy, value),
    prepare(batch: GenerationBatch, ctx): PpoState {
      const c = ctx.config;
      const r = batch.rollout;
      const lens = r.completionIds.map((x) => x.length);
      const w = Math.max(1, ...lens);
      const mask = padRows(
        r.completionIds.map((ids, i) => (batch.counts[i] ? (r.tokenMasks?.[i] ?? ids.map(() => 1)) : ids.map(() => 0))),
        w,
      );
      const logprobs = padRows(batch.old as Float32Array[], w);
      const refLogprobs = padRows(batch.ref as Float32Array[], w);
      const values = noGrad(() => {
        const out: Float32Array[] = [];
        for (let s = 0; s < lens.length; s += c.perDeviceTrainBatchSize) {
          const rows = Array.from({ length: Math.min(c.perDeviceTrainBatchSize, lens.length - s) }, (_, j) => s + j);
          const v = completionValues(value, packRows(r, rows, ctx.padId));
          out.push(
            ...rowsOf(
              v,
              rows.map((i) => lens[i]),
            ),
          );
        }
        return mul(padRows(out, w), mask);
      });
      const scores = (batch.rewards as NonNullable<GenerationBatch["rewards"]>).total;
      const a = ppoAdvantages({ logprobs, refLogprobs, values, scores, mask }, c);
      noGrad(() => {
        const rowsMean = (t: Tensor) => sum(mul(t, mask)).item() / lens.length;
        const nonScore = rowsMean(a.nonScoreReward);
        const scoreMean = scores.reduce((x, s) => x + s, 0) / scores.length;
        Object.assign(batch.metrics, {
          "objective/kl": rowsMean(a.kl),
          "objective/entropy": -rowsMean(logprobs),
          "objective/non_score_reward": nonScore,
          "objective/rlhf_reward": scoreMean + nonScore,
          "objective/scores": scoreMean,
          "val/num_eos_tokens": r.finishReasons.filter((f) => f !== "length").length,
        });
      });
      return {
        logprobs: batch.old as Float32Array[],
        values: rowsOf(values, lens),
        advantages: rowsOf(a.advantages, lens),
        returns: rowsOf(a.returns, lens),
      };
    },
    plan(batch, _state, c, rng) {
      // numPpoEpochs passes; each shuffles the rows into numMiniBatches minibatches of perDevice-sized micro-batches
      const n = batch.rollout.completionIds.length;
      const mini = Math.ceil(n / c.numMiniBatches);
      const steps: number[][][] = [];
      for (let e = 0; e < c.numPpoEpochs; e++) {
        const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
        for (let m = 0; m < n; m += mini) {
          const inds = order.slice(m, m + mini);
          const micro: number[][] = [];
          for (let k = 0; k < inds.length; k += c.perDeviceTrainBatchSize) micro.push(inds.slice(k, k + c.perDeviceTrainBatchSize));
          steps.push(micro);
        }
      }
      return [steps];
    },
    microLoss(batch, st, rows, ctx, share): MicroLoss {
      const c = ctx.config;
      const { micro, entropies, isWeights, isSums } = groupMicroBatch(batch, rows, ctx);
      const tc = micro.packed.completionWidth;
      const pick = (xs: Float32Array[]) =>
        padRows(
          rows.map((i) => xs[i]),
          tc,
        );
      const oldLogprobs = pick(st.logprobs);
      const out = ppoLoss(
        {
          logprobs: micro.logps,
          oldLogprobs,
          values: completionValues(value, micro.packed),
          oldValues: pick(st.values),
          advantages: pick(st.advantages),
          returns: pick(st.returns),
          mask: micro.mask,
          importanceSamplingWeights: isWeights,
        },
        { cliprange: c.cliprange, cliprangeValue: c.cliprangeValue, vfCoef: c.vfCoef, whitenAdvantages: false },
      );
      const m = noGrad(() => {
        const logRatio = sub(micro.logps, oldLogprobs);
        return {
          approxkl: mul(maskedMean(square(logRatio), micro.mask), 0.5).item(),
          ratio: maskedMean(logRatio.exp(), micro.mask).item(),
        };
      });
      const [e, n] = entropySum(entropies, micro.mask);
      return {
        loss: mul(out.loss, share), // accelerate's accumulation: the mean over the step's micro-batches
        micro,
        sums: {
          "policy/approxkl_avg": [m.approxkl, 1],
          "policy/clipfrac_avg": [out.pgClipfrac.item(), 1],
          "loss/policy_avg": [out.pgLoss.item(), 1],
          "loss/value_avg": [out.vfLoss.item(), 1],
          "val/clipfrac_avg": [out.vfClipfrac.item(), 1],
          "policy/entropy_avg": [n > 0 ? e / n : 0, 1],
          "val/ratio": [m.ratio, 1],
          ...isSums,
        },
      };
    },
  };
}

export interface PpoTrainOptions extends OnlineTrainOptions<PpoTrainConfig> {
  /** Value model (trained); default per config.valueModelInit (a copy of the reward model, or the policy backbone). */
  valueModel?: SequenceClassifier;
}

export interface PpoTrainResult extends OnlineTrainResult<PpoTrainConfig> {
  valueModel: SequenceClassifier;
}

export async function trainPpo(opts: PpoTrainOptions): Promise<PpoTrainResult> {
  const c = resolvePpoConfig(opts.config as Record<string, unknown>);
  const model = typeof opts.model === "string" ? await resolveModel(opts.model) : opts.model;
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "ppo");
  const policy: CausalLM = model instanceof LoraModel ? model.base : model;
  const rm = opts.rewardModel ?? null;
  let value = opts.valueModel;
  if (value === undefined) {
    if (c.valueModelInit === "reward" && rm !== null) {
      value = new SequenceClassifier(rm.config);
      value.loadStateDict(rm.stateDict());
    } else {
      // the value model reads positions, not the last token; its pad id (HF's config needs one) is the policy tokenizer's
      value = new SequenceClassifier(
        { ...policy.config, padTokenId: policy.config.padTokenId ?? tok.padTokenId ?? tok.eosTokenId ?? 0 },
        { rng: new Rng(c.seed) },
      );
      value.model.loadStateDict(policy.model.stateDict());
    }
  }
  if (value === rm) throw new TrainingError("[ppo] the value model must be a separate copy of the reward model");
  value.to();
  value.requiresGrad(true);
  rm?.requiresGrad(false);
  const valueModel = value;
  const res = await trainOnline({ ...opts, model, tokenizer: tok }, c, ppoAlgorithm(valueModel), {
    dataKind: "prompt_only",
    scored: true,
    saveExtras: (dir) => {
      saveClassifier(valueModel, `${dir}/value_model`);
      return [`${dir}/value_model`];
    },
  });
  return { ...res, valueModel };
}
