// PPO's clipped policy loss and clipped value loss on one minibatch, as TRL's experimental PPOTrainer
// computes them (advantages from `gae`, whitened here by default). Rollouts and rewards live elsewhere.
// Source: Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; Huang et al. 2024 (N+ details).
// Differences from TRL: one mask for policy and value terms (TRL's value mask covers one token more);
// whitening runs on this call's advantages (TRL whitens the whole rollout batch once before its epochs);
// optional rollout-correction weights multiply the per-token policy loss (TRL's PPO has none).

import {
  add,
  clamp,
  detach,
  exp,
  gt,
  maskedMean,
  maximum,
  mul,
  neg,
  noGrad,
  ones,
  rsqrt,
  square,
  sub,
  sum,
  type Tensor,
} from "../tensor/index.js";
import { LossError, requireRank, requireShape, resolveConfig } from "./common.js";

export interface PpoConfig {
  /** Policy ratio clip: [1 - cliprange, 1 + cliprange]. */
  cliprange: number;
  /** Value clip around the rollout values: [V_old - c, V_old + c]. */
  cliprangeValue: number;
  /** Weight of the value loss. */
  vfCoef: number;
  /** Whiten advantages (masked mean 0, unbiased variance 1, eps 1e-8) before the loss. */
  whitenAdvantages: boolean;
}

export const PPO_DEFAULTS: Readonly<PpoConfig> = Object.freeze({
  cliprange: 0.2,
  cliprangeValue: 0.2,
  vfCoef: 0.1,
  whitenAdvantages: true,
});

export interface PpoInputs {
  /** Current policy log-probs of the sampled tokens [B, T]. */
  logprobs: Tensor;
  /** Rollout-time log-probs [B, T]. */
  oldLogprobs: Tensor;
  /** Current value predictions [B, T] (differentiable). */
  values: Tensor;
  /** Rollout-time values [B, T]. */
  oldValues: Tensor;
  /** GAE advantages and returns [B, T]. */
  advantages: Tensor;
  returns: Tensor;
  /** 1 on completion tokens [B, T]; default all 1. */
  mask?: Tensor;
  /** Rollout/training mismatch weights ([B, T] or [B, 1], constants) multiplying the per-token policy loss. */
  importanceSamplingWeights?: Tensor;
}

export interface PpoOutput {
  /** pgLoss + vfCoef * vfLoss. */
  loss: Tensor;
  pgLoss: Tensor;
  vfLoss: Tensor;
  /** Fraction of tokens where the clipped policy / value term was the larger one (detached). */
  pgClipfrac: Tensor;
  vfClipfrac: Tensor;
}

/** (x - mean) / sqrt(var + 1e-8) over the masked entries, unbiased variance; shiftMean=false adds the mean back. */
export function maskedWhiten(x: Tensor, mask: Tensor, shiftMean = true): Tensor {
  return noGrad(() => {
    const m = maskedMean(x, mask);
    const n = sum(mask).item();
    if (n < 2) throw new LossError(`[maskedWhiten] needs at least 2 unmasked entries, got ${n}`);
    const variance = mul(maskedMean(square(sub(x, m)), mask), n / (n - 1));
    const white = mul(sub(x, m), rsqrt(add(variance, 1e-8)));
    return shiftMean ? white : add(white, m);
  });
}

export function ppoLoss(inputs: PpoInputs, config?: Partial<PpoConfig>): PpoOutput {
  const cfg = resolveConfig("ppoLoss", PPO_DEFAULTS, config);
  const { logprobs, values } = inputs;
  requireRank("ppoLoss", "logprobs", logprobs, 2);
  const mask = inputs.mask ?? ones(logprobs.shape, logprobs.dtype);
  const { importanceSamplingWeights: isw, ...perToken } = inputs;
  for (const [name, t] of Object.entries({ ...perToken, mask })) {
    if (t !== undefined) requireShape("ppoLoss", name, t, logprobs.shape);
  }
  if (isw !== undefined)
    requireShape("ppoLoss", "importanceSamplingWeights", isw, isw.shape[1] === 1 ? [logprobs.shape[0], 1] : logprobs.shape);
  const oldLogprobs = detach(inputs.oldLogprobs);
  const oldValues = detach(inputs.oldValues);
  const returns = detach(inputs.returns);
  const adv = cfg.whitenAdvantages ? maskedWhiten(detach(inputs.advantages), mask) : detach(inputs.advantages);

  // value loss: 0.5 * mean(max((V - R)^2, (clip(V, V_old +- c) - R)^2))
  const vClipped = clamp(sub(values, oldValues), -cfg.cliprangeValue, cfg.cliprangeValue);
  const vf1 = square(sub(values, returns));
  const vf2 = square(sub(add(oldValues, vClipped), returns));
  const vfLoss = mul(maskedMean(maximum(vf1, vf2), mask), 0.5);

  // policy loss: mean(max(-A r, -A clip(r, 1 +- c)))
  const ratio = exp(sub(logprobs, oldLogprobs));
  const pg1 = mul(neg(adv), ratio);
  const pg2 = mul(neg(adv), clamp(ratio, 1 - cfg.cliprange, 1 + cfg.cliprange));
  const perTokenPg = maximum(pg1, pg2);
  const pgLoss = maskedMean(isw === undefined ? perTokenPg : mul(perTokenPg, detach(isw)), mask);

  return {
    loss: add(pgLoss, mul(vfLoss, cfg.vfCoef)),
    pgLoss,
    vfLoss,
    pgClipfrac: noGrad(() => maskedMean(gt(pg2, pg1), mask)),
    vfClipfrac: noGrad(() => maskedMean(gt(vf2, vf1), mask)),
  };
}
