// KTO: unpaired desirable / undesirable examples against a batch KL reference point, as TRL's KTOTrainer.
// Inputs are summed sequence log-probs; building the mismatched (x_i, y_{i-1}) KL pairs is the data side's job.
// Source: Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization".
// Differences from TRL: the KL mean is over this call's batch (TRL gathers it across processes first).

import { clamp, concat, detach, mean, mul, sigmoid, sub, type Tensor, tensor } from "../tensor/index.js";
import { LossError, requireOneOf, requireShape, resolveConfig } from "./common.js";

export type KtoLossType = "kto" | "apo_zero_unpaired";

export interface KtoConfig {
  /** `kto`, or `apo_zero_unpaired` (APO-zero on unpaired data, no KL term). */
  lossType: KtoLossType;
  /** Inverse temperature of the implicit reward. */
  beta: number;
  /** lambda_D, the weight of each desirable example's loss. */
  desirableWeight: number;
  /** lambda_U, the weight of each undesirable example's loss. */
  undesirableWeight: number;
}

export const KTO_DEFAULTS: Readonly<KtoConfig> = Object.freeze({
  lossType: "kto",
  beta: 0.1,
  desirableWeight: 1,
  undesirableWeight: 1,
});

export interface KtoInputs {
  /** Summed log-probs of the desirable completions, [Nd], and their reference values. */
  policyChosenLogps: Tensor;
  refChosenLogps: Tensor;
  /** Summed log-probs of the undesirable completions, [Nu], and their reference values. */
  policyRejectedLogps: Tensor;
  refRejectedLogps: Tensor;
  /** Log-probs of the mismatched KL completions [B] under policy and reference (needed by `kto`). */
  policyKlLogps?: Tensor;
  refKlLogps?: Tensor;
}

export interface KtoOutput {
  /** mean(losses). */
  loss: Tensor;
  /** [lambda_D * desirable losses, lambda_U * undesirable losses], [Nd + Nu]. */
  losses: Tensor;
  /** z0 = max(0, mean(policy_kl - ref_kl)), detached scalar (0 for apo_zero_unpaired). */
  kl: Tensor;
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

interface KtoTerms {
  dc: Tensor;
  dr: Tensor;
  kl: Tensor;
  beta: number;
}

export const KTO_LOSSES = {
  kto: (t) => ({
    chosen: sub(1, sigmoid(mul(sub(t.dc, t.kl), t.beta))),
    rejected: sub(1, sigmoid(mul(sub(t.kl, t.dr), t.beta))),
  }),
  apo_zero_unpaired: (t) => ({
    chosen: sub(1, sigmoid(mul(t.dc, t.beta))),
    rejected: sigmoid(mul(t.dr, t.beta)),
  }),
} satisfies Record<KtoLossType, (t: KtoTerms) => { chosen: Tensor; rejected: Tensor }>;

export function resolveKtoConfig(user?: Partial<KtoConfig>): KtoConfig {
  return resolveConfig("ktoLoss", KTO_DEFAULTS, user, (c) => {
    requireOneOf("ktoLoss", "lossType", c.lossType, KTO_LOSSES);
    if (!(c.beta > 0)) throw new LossError(`[ktoLoss] beta must be > 0, got ${c.beta}`);
  });
}

export function ktoLoss(inputs: KtoInputs, config?: Partial<KtoConfig>): KtoOutput {
  const cfg = resolveKtoConfig(config);
  const { policyChosenLogps: pc, refChosenLogps: rc, policyRejectedLogps: pr, refRejectedLogps: rr } = inputs;
  requireShape("ktoLoss", "refChosenLogps", rc, pc.shape);
  requireShape("ktoLoss", "refRejectedLogps", rr, pr.shape);
  if (pc.ndim !== 1 || pr.ndim !== 1) throw new LossError("[ktoLoss] chosen and rejected log-probs must be 1-D");
  let kl = tensor(0, { dtype: pc.dtype });
  if (cfg.lossType === "kto") {
    const { policyKlLogps: pk, refKlLogps: rk } = inputs;
    if (pk === undefined || rk === undefined) throw new LossError("[ktoLoss] lossType 'kto' needs policyKlLogps and refKlLogps");
    requireShape("ktoLoss", "refKlLogps", rk, pk.shape);
    kl = detach(clamp(mean(sub(pk, rk)), 0, null));
  }
  const dc = sub(pc, detach(rc));
  const dr = sub(pr, detach(rr));
  const { chosen, rejected } = KTO_LOSSES[cfg.lossType]({ dc, dr, kl, beta: cfg.beta });
  const losses = concat([mul(chosen, cfg.desirableWeight), mul(rejected, cfg.undesirableWeight)], 0);
  return {
    loss: mean(losses),
    losses,
    kl,
    chosenRewards: detach(mul(dc, cfg.beta)),
    rejectedRewards: detach(mul(dr, cfg.beta)),
  };
}
