// ORPO: odds-ratio preference term added to the chosen NLL, reference-free, as TRL's ORPOTrainer.
// Inputs are length-averaged completion log-probs and the already-reduced chosen NLL.
// Source: Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model".
// Differences from TRL: none in the loss; computing the NLL and averages is the trainer's job.

import { add, detach, log1mexp, logSigmoid, mean, mul, neg, sub, type Tensor } from "../tensor/index.js";
import { LossError, requireShape, resolveConfig } from "./common.js";

export interface OrpoConfig {
  /** Weight of the odds-ratio term (the paper's lambda). */
  beta: number;
}

export const ORPO_DEFAULTS: Readonly<OrpoConfig> = Object.freeze({ beta: 0.1 });

export interface OrpoInputs {
  /** Token-averaged log-probs of chosen and rejected completions, [B] (each <= 0). */
  chosenAvgLogps: Tensor;
  rejectedAvgLogps: Tensor;
  /** Token-mean NLL of the chosen completions, a scalar. */
  nllLoss: Tensor;
}

export interface OrpoOutput {
  /** nllLoss + mean(losses). */
  loss: Tensor;
  /** -beta * log sigmoid(logOdds), [B]. */
  losses: Tensor;
  /** log(p_c / (1 - p_c)) - log(p_r / (1 - p_r)) with p = exp(avg log-prob), [B]. */
  logOdds: Tensor;
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

export function orpoLoss(inputs: OrpoInputs, config?: Partial<OrpoConfig>): OrpoOutput {
  const cfg = resolveConfig("orpoLoss", ORPO_DEFAULTS, config);
  const { chosenAvgLogps: c, rejectedAvgLogps: r, nllLoss } = inputs;
  requireShape("orpoLoss", "rejectedAvgLogps", r, c.shape);
  if (nllLoss.size !== 1) throw new LossError(`[orpoLoss] nllLoss must be a scalar, got [${nllLoss.shape.join(", ")}]`);
  // log1mexp(x) = log(1 - e^x), accurate as the average log-prob nears 0
  const logOdds = sub(sub(c, r), sub(log1mexp(c), log1mexp(r)));
  const losses = mul(neg(logSigmoid(logOdds)), cfg.beta);
  return {
    loss: add(nllLoss, mean(losses)),
    losses,
    logOdds,
    chosenRewards: detach(mul(c, cfg.beta)),
    rejectedRewards: detach(mul(r, cfg.beta)),
  };
}
