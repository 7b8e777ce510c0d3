// CPO and SimPO: reference-free pairwise losses plus a weighted chosen NLL, as TRL's CPOTrainer.
// Inputs are completion log-probs (summed for sigmoid / hinge, token-averaged for ipo / simpo: the caller's choice).
// Sources: Xu et al. 2024, "Contrastive Preference Optimization"; Meng et al. 2024, "SimPO".
// Differences from TRL: AlphaPO's reward transform (`alpha != 0`) is not implemented.

import { add, detach, mean, mul, relu, square, sub, type Tensor } from "../tensor/index.js";
import { LossError, requireOneOf, requireShape, resolveConfig, smoothedLogistic } from "./common.js";

export type CpoLossType = "sigmoid" | "hinge" | "ipo" | "simpo";

export interface CpoConfig {
  /** Pairwise loss on the margin z = chosen - rejected log-probs. */
  lossType: CpoLossType;
  /** Inverse temperature. */
  beta: number;
  /** Smoothed-logistic noise rate for sigmoid / simpo. */
  labelSmoothing: number;
  /** SimPO's absolute target margin gamma (z is shifted by gamma / beta). */
  simpoGamma: number;
  /** Weight of the chosen NLL (0 for pure SimPO). */
  cpoAlpha: number;
}

export const CPO_DEFAULTS: Readonly<CpoConfig> = Object.freeze({
  lossType: "sigmoid",
  beta: 0.1,
  labelSmoothing: 0,
  simpoGamma: 0.5,
  cpoAlpha: 1,
});

export interface CpoInputs {
  /** Policy log-probs of chosen / rejected completions, [B]. */
  chosenLogps: Tensor;
  rejectedLogps: Tensor;
  /** Token-mean NLL of the chosen completions, a scalar; required unless cpoAlpha = 0. */
  nllLoss?: Tensor;
}

export interface CpoOutput {
  /** mean(losses) + cpoAlpha * nllLoss. */
  loss: Tensor;
  losses: Tensor;
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

export const CPO_LOSSES = {
  sigmoid: (z, c) => smoothedLogistic(mul(z, c.beta), c.labelSmoothing),
  hinge: (z, c) => relu(sub(1, mul(z, c.beta))),
  ipo: (z, c) => square(sub(z, 1 / (2 * c.beta))),
  simpo: (z, c) => smoothedLogistic(mul(sub(z, c.simpoGamma / c.beta), c.beta), c.labelSmoothing),
} satisfies Record<CpoLossType, (z: Tensor, c: CpoConfig) => Tensor>;

export function resolveCpoConfig(user?: Partial<CpoConfig>): CpoConfig {
  return resolveConfig("cpoLoss", CPO_DEFAULTS, user, (c) => {
    requireOneOf("cpoLoss", "lossType", c.lossType, CPO_LOSSES);
    if (!(c.beta > 0)) throw new LossError(`[cpoLoss] beta must be > 0, got ${c.beta}`);
    if (!(c.labelSmoothing >= 0 && c.labelSmoothing < 0.5)) {
      throw new LossError(`[cpoLoss] labelSmoothing must be in [0, 0.5), got ${c.labelSmoothing}`);
    }
  });
}

export function cpoLoss(inputs: CpoInputs, config?: Partial<CpoConfig>): CpoOutput {
  const cfg = resolveCpoConfig(config);
  const { chosenLogps: c, rejectedLogps: r, nllLoss } = inputs;
  requireShape("cpoLoss", "rejectedLogps", r, c.shape);
  const losses = CPO_LOSSES[cfg.lossType](sub(c, r), cfg);
  let loss = mean(losses);
  if (cfg.cpoAlpha !== 0 || nllLoss !== undefined) {
    if (nllLoss === undefined) throw new LossError(`[cpoLoss] cpoAlpha = ${cfg.cpoAlpha} needs nllLoss`);
    if (nllLoss.size !== 1) throw new LossError(`[cpoLoss] nllLoss must be a scalar, got [${nllLoss.shape.join(", ")}]`);
    loss = add(loss, mul(nllLoss, cfg.cpoAlpha));
  }
  return { loss, losses, chosenRewards: detach(mul(c, cfg.beta)), rejectedRewards: detach(mul(r, cfg.beta)) };
}
