// Bradley-Terry reward-model loss with TRL RewardTrainer's optional per-pair margin and reward centring.
// Inputs are the scalar scores the reward head gave each chosen / rejected sequence.
// Source: Ouyang et al. 2022 (InstructGPT RM loss); margin from Touvron et al. 2023 (Llama 2);
// centring from Eisenstein et al. 2023. Differences from TRL: none.

import { add, detach, gt, logSigmoid, mean, mul, neg, square, sub, type Tensor } from "../tensor/index.js";
import { LossError, requireShape, resolveConfig } from "./common.js";

export interface RewardConfig {
  /** Weight of mean((r_c + r_r)^2), which keeps scores centred on 0; null disables it. */
  centerRewardsCoefficient: number | null;
}

export const REWARD_DEFAULTS: Readonly<RewardConfig> = Object.freeze({ centerRewardsCoefficient: null });

export interface RewardInputs {
  /** Scores of chosen and rejected sequences, [B]. */
  rewardsChosen: Tensor;
  rewardsRejected: Tensor;
  /** Required score gap per pair, [B] (constant). */
  margin?: Tensor;
}

export interface BradleyTerryOutput {
  loss: Tensor;
  /** -log sigmoid(r_c - r_r - margin), [B]. */
  losses: Tensor;
  /** 1 where r_c > r_r, [B]. */
  accuracy: Tensor;
}

export function bradleyTerryLoss(inputs: RewardInputs, config?: Partial<RewardConfig>): BradleyTerryOutput {
  const cfg = resolveConfig("bradleyTerryLoss", REWARD_DEFAULTS, config);
  const { rewardsChosen: rc, rewardsRejected: rr, margin } = inputs;
  if (rc.ndim !== 1) throw new LossError(`[bradleyTerryLoss] rewardsChosen must be [B], got [${rc.shape.join(", ")}]`);
  requireShape("bradleyTerryLoss", "rewardsRejected", rr, rc.shape);
  let z = sub(rc, rr);
  if (margin !== undefined) {
    requireShape("bradleyTerryLoss", "margin", margin, rc.shape);
    z = sub(z, detach(margin));
  }
  const losses = neg(logSigmoid(z));
  let loss = mean(losses);
  const coef = cfg.centerRewardsCoefficient;
  if (coef !== null && coef !== 0) loss = add(loss, mul(mean(square(add(rc, rr))), coef));
  return { loss, losses, accuracy: detach(gt(rc, rr)) };
}
