// RLOO as TRL's RLOOTrainer (v1.9), an algorithm of the one online loop: G completions per prompt, the k1 KL folded
// into the reward (R' = R - beta * sum_t (log pi_old - log pi_ref)), a leave-one-out baseline, optional global
// z-scoring, and a sequence-level clipped ratio on summed log-probs: L = mean_i -min(rho_i A_i, clip(rho_i) A_i).
// Ahmadian et al. 2024. With a generator URL or asynchronous rollouts, each sequence's loss is multiplied by its
// sequence-level rollout-correction weight (token modes are refused: the loss has no per-token terms).

import { z } from "zod";
import { rlooAdvantages } from "../losses/advantages.js";
import { clamp, detach, div, exp, fromArray, maskedSum, mean, minimum, mul, neg, sub, Tensor } from "../tensor/index.js";
import { entropySum, GROUP_RL_FIELDS, groupMicroBatch } from "./grpo.js";
import { correctionApplies, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import { consecutiveMicroBatches, type MicroLoss, type OnlineAlgorithm } from "./online_loop.js";
import { stdOf } from "./rollout.js";

export const RLOO_FIELDS = {
  ...GROUP_RL_FIELDS,
  numGenerations: z.number().int().min(2).default(2).describe("G: completions per prompt (TRL RLOO default 2)."),
  beta: z.number().min(0).default(0.05).describe("Weight of the k1 KL subtracted from the reward."),
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
      : `the generation batch (perDeviceTrainBatchSize x gradientAccumulationSteps = ` +
        `${c.perDeviceTrainBatchSize * c.gradientAccumulationSteps}) must hold whole groups of numGenerations = ${c.numGenerations}`,
  (c) =>
    c.rewardClipRange !== null && !(c.rewardClipRange[0] <= c.rewardClipRange[1]) ? "rewardClipRange must be [lo, hi] with lo <= hi" : null,
  (c) =>
    correctionApplies(c) && c.importanceSamplingCorrection.startsWith("token")
      ? `RLOO's loss is per sequence: use importanceSamplingCorrection sequence_truncate or sequence_mask, not ${c.importanceSamplingCorrection}`
      : null,
];

export function resolveRlooConfig(input?: Record<string, unknown>): RlooTrainConfig {
  return resolveOnlineConfig("rloo", RLOO_SCHEMA, input, { rules: RLOO_RULES });
}

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
    rlooAdvantages(new Tensor(Float64Array.from(shaped), [shaped.length]), { numGenerations: c.numGenerations }).hostData(),
  );
  if (c.normalizeAdvantages) {
    const xs = Array.from(adv);
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = stdOf(xs);
    for (let i = 0; i < adv.length; i++) adv[i] = (adv[i] - m) / (sd + 1e-4);
  }
  return { shaped, advantages: adv };
}

export function rlooAlgorithm(): OnlineAlgorithm<RlooTrainConfig, Float32Array> {
  return {
    label: "rloo",
    scored: true,
    promptsPerBatch: (c) => (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) / c.numGenerations,
    numGenerations: (c) => c.numGenerations,
    stepsPerBatch: (c) => c.numIterations,
    needsOld: (c) => c.numIterations > 1 || c.beta !== 0,
    needsRef: (c) => c.beta !== 0,
    prepare(batch, ctx) {
      const c = ctx.config;
      let klSums: number[] | null = null;
      if (c.beta !== 0) {
        // k1 per token with the sampling-time policy: log pi_old - log pi_ref, summed over counted policy tokens
        const masks = batch.rollout.tokenMasks;
        klSums = batch.rollout.completionIds.map((ids, i) => {
          if (!batch.counts[i]) return 0;
          let s = 0;
          for (let t = 0; t < ids.length; t++)
            if (masks === null || masks[i][t] !== 0) s += (batch.old as Float32Array[])[i][t] - (batch.ref as Float32Array[])[i][t];
          return s;
        });
        batch.metrics.kl = klSums.reduce((a, b) => a + b, 0) / klSums.length;
      }
      const { shaped, advantages } = rlooRewardAdvantages((batch.rewards as NonNullable<typeof batch.rewards>).total, klSums, c);
      batch.metrics.rlhf_reward = shaped.reduce((a, b) => a + b, 0) / shaped.length;
      return advantages;
    },
    plan: (batch, _s, c) => {
      const micro = consecutiveMicroBatches(batch.rollout.completionIds.length, c.perDeviceTrainBatchSize);
      return Array.from({ length: c.numIterations }, () => [micro]);
    },
    microLoss(batch, all, rows, ctx): MicroLoss {
      const c = ctx.config;
      const { micro, entropies, isWeights, isSums } = groupMicroBatch(batch, rows, ctx);
      const a = fromArray(
        Float32Array.from(rows, (i) => all[i]),
        [rows.length],
      );
      const old = micro.old ?? detach(micro.logps);
      const logRatio = sub(maskedSum(micro.logps, micro.mask, 1), maskedSum(old, micro.mask, 1)); // (b)
      const rho = exp(logRatio);
      const lo = 1 - c.epsilon;
      const hi = 1 + (c.epsilonHigh ?? c.epsilon);
      let perSeq = neg(minimum(mul(rho, a), mul(clamp(rho, lo, hi), a)));
      if (isWeights !== undefined) perSeq = mul(perSeq, fromArray(Float32Array.from(isWeights.hostData()), [rows.length]));
      const numMicro = Math.ceil(batch.rollout.completionIds.length / c.perDeviceTrainBatchSize);
      const loss = div(mean(perSeq), numMicro);
      let clipped = 0;
      let r = 0;
      const rd = rho.hostData();
      const ad = a.hostData();
      rows.forEach((_, j) => {
        const w = rd[j];
        r += w;
        if ((w < lo && ad[j] < 0) || (w > hi && ad[j] > 0)) clipped++;
      });
      const sums: Record<string, [number, number]> = {
        "clip_ratio/region_mean": [clipped, rows.length],
        "ratio/mean": [r, rows.length],
        entropy: entropySum(entropies, micro.mask),
        ...isSums,
      };
      return { loss, advantages: a, micro, sums };
    },
  };
}

export async function trainRloo(opts: OnlineTrainOptions<RlooTrainConfig>): Promise<OnlineTrainResult<RlooTrainConfig>> {
  const cfg = resolveRlooConfig(opts.config as Record<string, unknown>);
  return trainOnline(opts, cfg, rlooAlgorithm(), { dataKind: "prompt_only", scored: true });
}
