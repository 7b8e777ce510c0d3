// RLOO as TRL's RLOOTrainer (v1.9): G completions per prompt, the k1 KL folded into the reward
// (R' = R - beta * sum_t (log pi_old - log pi_ref)), a leave-one-out baseline, optional global z-scoring, and a
// sequence-level clipped ratio on summed log-probs: L = mean_i -min(rho_i A_i, clip(rho_i, 1-eps, 1+epsHigh) A_i).
// Ahmadian et al. 2024. Shares rollouts and the outer loop with GRPO (online_loop.ts). Differs from TRL: no vLLM.

import { z } from "zod";
import { rlooAdvantages } from "../losses/advantages.js";
import { clamp, detach, div, exp, fromArray, maskedSum, mean, minimum, mul, neg, sub, Tensor } from "../tensor/index.js";
import { ConfigError } from "./config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, ROLLOUT_FIELDS, trainOnline } from "./grpo.js";
import { LOOP_FIELDS } from "./loop.js";
import type { GenerationBatch, MicroLoss, OnlineAlgorithm } from "./online_loop.js";
import { stdOf } from "./rollout.js";
import { resolveTokenizer, resolveTrainerConfig } from "./trainer_io.js";

export const RLOO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate (TRL RLOO default 1e-6)."),
  perDeviceTrainBatchSize: z
    .number()
    .int()
    .positive()
    .default(8)
    .describe("Completions per micro-batch; × gradientAccumulationSteps must hold whole groups of numGenerations."),
  ...ROLLOUT_FIELDS,
  numGenerations: z.number().int().min(2).default(2).describe("G: completions per prompt (TRL RLOO default 2)."),
  beta: z.number().min(0).default(0.05).describe("Weight of the k1 KL subtracted from the reward."),
  epsilon: z.number().min(0).lt(1).default(0.2).describe("Lower clip of the sequence ratio."),
  epsilonHigh: z.number().min(0).nullable().default(null).describe("Upper clip; null = epsilon."),
  normalizeAdvantages: z.boolean().default(false).describe("z-score the advantages over the batch (std + 1e-4)."),
  rewardClipRange: z
    .tuple([z.number(), z.number()])
    .nullable()
    .default(null)
    .describe("Clamp the reward-function total to [lo, hi] before the KL term; null disables."),
};
export const RLOO_SCHEMA = z.object(RLOO_FIELDS).strict();
export type RlooTrainConfig = z.output<typeof RLOO_SCHEMA>;

export const RLOO_RULES: ((c: RlooTrainConfig) => string | null)[] = [
  (c) =>
    (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) % c.numGenerations === 0
      ? null
      : `the generation batch (perDeviceTrainBatchSize × gradientAccumulationSteps = ` +
        `${c.perDeviceTrainBatchSize * c.gradientAccumulationSteps}) must hold whole groups of numGenerations = ${c.numGenerations}`,
  (c) =>
    c.rewardClipRange !== null && !(c.rewardClipRange[0] <= c.rewardClipRange[1]) ? "rewardClipRange must be [lo, hi] with lo <= hi" : null,
];

/** RLOO advantages from rewards, per-sequence KL sums and the config (exported for tests). */
export function rlooRewardAdvantages(
  total: readonly number[],
  klSums: readonly number[] | null,
  c: RlooTrainConfig,
): { shaped: number[]; advantages: Float32Array } {
  const shaped = total.map((r, i) => {
    const clipped = c.rewardClipRange === null ? r : Math.min(Math.max(r, c.rewardClipRange[0]), c.rewardClipRange[1]);
    return klSums === null ? clipped : clipped - c.beta * klSums[i];
  });
  const adv = Float32Array.from(
    rlooAdvantages(new Tensor(Float64Array.from(shaped), [shaped.length]), { numGenerations: c.numGenerations }).data,
  );
  if (c.normalizeAdvantages) {
    const xs = Array.from(adv);
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = stdOf(xs);
    for (let i = 0; i < adv.length; i++) adv[i] = (adv[i] - m) / (sd + 1e-4);
  }
  return { shaped, advantages: adv };
}

function rlooAlgorithm(): OnlineAlgorithm<RlooTrainConfig> {
  const advs = new WeakMap<GenerationBatch, Float32Array>();
  return {
    label: "rloo",
    needsOld: (c) => c.numIterations > 1 || c.beta !== 0,
    prepare(batch, c) {
      let klSums: number[] | null = null;
      if (c.beta !== 0) {
        // k1 per token with the sampling-time policy: log pi_old - log pi_ref, summed over counted tokens
        klSums = batch.rollout.completionIds.map((ids, i) => {
          if (!batch.counts[i]) return 0;
          let s = 0;
          for (let t = 0; t < ids.length; t++) s += batch.old![i][t] - batch.ref![i][t];
          return s;
        });
        batch.metrics.kl = klSums.reduce((a, b) => a + b, 0) / klSums.length;
      }
      const { shaped, advantages } = rlooRewardAdvantages(batch.rewards.total, klSums, c);
      batch.metrics.rlhf_reward = shaped.reduce((a, b) => a + b, 0) / shaped.length;
      advs.set(batch, advantages);
    },
    microLoss(batch, mb, c): MicroLoss {
      const all = advs.get(batch)!;
      const a = fromArray(
        Float32Array.from(mb.rows, (i) => all[i]),
        [mb.rows.length],
      );
      const old = mb.old ?? detach(mb.logps);
      const logRatio = sub(maskedSum(mb.logps, mb.mask, 1), maskedSum(old, mb.mask, 1)); // (b)
      const rho = exp(logRatio);
      const lo = 1 - c.epsilon;
      const hi = 1 + (c.epsilonHigh ?? c.epsilon);
      const perSeq = neg(minimum(mul(rho, a), mul(clamp(rho, lo, hi), a)));
      const loss = div(mean(perSeq), batch.numMicroBatches);
      let clipped = 0;
      let r = 0;
      const rhod = rho.hostData();
      const ad = a.hostData();
      mb.rows.forEach((_, j) => {
        const w = rhod[j];
        r += w;
        if ((w < lo && ad[j] < 0) || (w > hi && ad[j] > 0)) clipped++;
      });
      return { loss, advantages: a, sums: { "clip_ratio/region_mean": [clipped, mb.rows.length], "ratio/mean": [r, mb.rows.length] } };
    },
  };
}

export async function trainRloo(opts: OnlineTrainOptions<RlooTrainConfig>): Promise<OnlineTrainResult<RlooTrainConfig>> {
  const cfg = resolveTrainerConfig("rloo", RLOO_SCHEMA, opts.config as Record<string, unknown>, RLOO_RULES);
  if (cfg.rewardWeights !== null && cfg.rewardWeights.length !== opts.rewardFuncs.length) {
    throw new ConfigError(`[rloo] rewardWeights has ${cfg.rewardWeights.length} entries for ${opts.rewardFuncs.length} reward functions`);
  }
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "rloo");
  return trainOnline("rloo", { ...opts, tokenizer: tok }, cfg, rlooAlgorithm() as OnlineAlgorithm<never>, [...opts.rewardFuncs]);
}
