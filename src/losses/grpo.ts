// GRPO's policy losses over sampled completions as TRL 1.9 computes them: importance-sampling levels (token =
// GRPO, sequence = GSPO), per-token objectives (the clipped surrogate; CISPO's clipped-weight REINFORCE; SAPO's
// soft sigmoid gate), their token aggregations, the INTELLECT-2 delta cap, a k3 KL penalty, rollout/training
// mismatch weights (rollout_correction.ts) and the entropy bonus. Inputs are per-token log-probs [B, T];
// advantages come from src/losses/advantages.ts. Sources: Shao et al. 2024 (GRPO); Zheng et al. 2025 (GSPO);
// Liu et al. 2025 (Dr. GRPO); Yu et al. 2025 (DAPO); MiniMax-M1 2025 (CISPO); Gao et al. 2025 (SAPO).
// Not here: vespo / luspo, entropy masks, adaptive entropy control; `dapo`'s global token count is numItemsInBatch.

import {
  add,
  clamp,
  detach,
  div,
  exp,
  expand,
  gt,
  maskedSum,
  mean,
  minimum,
  mul,
  neg,
  sigmoid,
  sub,
  sum,
  type Tensor,
  unsqueeze,
} from "../tensor/index.js";
import { LossError, requireOneOf, requireRank, requireShape, resolveConfig } from "./common.js";
import { klEstimator } from "./kl.js";

export type GrpoLossType = "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo";
export type ImportanceSamplingLevel = "token" | "sequence";

export interface GrpoConfig {
  /** How per-token losses are reduced (see GRPO_AGGREGATIONS). */
  lossType: GrpoLossType;
  /** Per-token ratios (GRPO) or one length-normalised ratio per sequence (GSPO). */
  importanceSamplingLevel: ImportanceSamplingLevel;
  /** Weight of the k3 KL to the reference; 0 needs no reference log-probs. */
  beta: number;
  /** Lower clip: ratios below 1 - epsilon are clipped. */
  epsilon: number;
  /** Upper clip 1 + epsilonHigh; null means epsilon (DAPO uses 0.28). CISPO: the weight cap itself (5 recommended). */
  epsilonHigh: number | null;
  /** INTELLECT-2 two-sided clipping: cap the unclipped ratio at delta (> 1 + epsilonHigh); null disables. */
  delta: number | null;
  /** Dr. GRPO's constant normaliser B * maxCompletionLength. */
  maxCompletionLength: number;
  /** SAPO gate temperature for tokens with positive advantage (TRL 1.0). */
  sapoTemperaturePos: number;
  /** SAPO gate temperature for tokens with non-positive advantage (TRL 1.05). */
  sapoTemperatureNeg: number;
  /** Weight of the entropy bonus: loss -= entropyCoef * mean token entropy (TRL entropy_coef). */
  entropyCoef: number;
}

export const GRPO_DEFAULTS: Readonly<GrpoConfig> = Object.freeze({
  lossType: "dapo",
  importanceSamplingLevel: "token",
  beta: 0,
  epsilon: 0.2,
  epsilonHigh: null,
  delta: null,
  maxCompletionLength: 256,
  sapoTemperaturePos: 1,
  sapoTemperatureNeg: 1.05,
  entropyCoef: 0,
});

export interface GrpoInputs {
  /** Policy log-probs of the sampled tokens [B, T] (differentiable). */
  perTokenLogps: Tensor;
  /** Log-probs under the sampling policy [B, T]; omitted means on-policy (detached perTokenLogps, ratio 1). */
  oldPerTokenLogps?: Tensor;
  /** Reference log-probs [B, T]; required when beta != 0. */
  refPerTokenLogps?: Tensor;
  /** [B] sequence advantages, or [B, T] token advantages (process supervision). */
  advantages: Tensor;
  /** 1 on completion tokens [B, T]. */
  completionMask: Tensor;
  /** dapo / cispo: active tokens in the whole generation batch (all processes and accumulation steps). */
  numItemsInBatch?: number;
  /** Rollout/training mismatch weights ([B, T] or [B, 1], constants) multiplying the per-token loss. */
  importanceSamplingWeights?: Tensor;
  /** Token entropies [B, T] (differentiable) for the entropy bonus; required when entropyCoef != 0. */
  entropies?: Tensor;
}

export interface GrpoOutput {
  loss: Tensor;
  /** The per-token policy objective (+ beta * KL), before masking and aggregation [B, T]. */
  perTokenLoss: Tensor;
  /** The policy part of the loss (without the entropy bonus), as TRL logs `policy_loss`. */
  policyLoss: Tensor;
  /** k3 KL per token [B, T] when reference log-probs were given. */
  perTokenKl?: Tensor;
  /** Importance weights: [B, T] (token) or [B, 1] (sequence). */
  importanceWeights: Tensor;
}

/** log importance weights from the per-token log-ratio. */
export const IMPORTANCE_LEVELS = {
  token: (logRatio) => logRatio,
  // GSPO: the masked mean log-ratio, one weight per sequence ([B, 1])
  sequence: (logRatio, mask) => div(maskedSum(logRatio, mask, 1, true), clamp(sum(mask, 1, true), 1, null)),
} satisfies Record<ImportanceSamplingLevel, (logRatio: Tensor, mask: Tensor) => Tensor>;

interface Objective {
  /** exp(log importance weight): [B, T] or [B, 1]. */
  w: Tensor;
  /** Advantages [B, 1] or [B, T] (constants). */
  adv: Tensor;
  /** The policy's per-token log-probs [B, T]. */
  logp: Tensor;
  cfg: GrpoConfig;
}

const clippedSurrogate = ({ w, adv, cfg }: Objective): Tensor => {
  const clipped = clamp(w, 1 - cfg.epsilon, 1 + (cfg.epsilonHigh ?? cfg.epsilon));
  const capped = cfg.delta === null ? w : clamp(w, null, cfg.delta);
  return neg(minimum(mul(capped, adv), mul(clipped, adv)));
};

/** The per-token objective of each loss type, before aggregation. */
export const GRPO_OBJECTIVES = {
  grpo: clippedSurrogate,
  bnpo: clippedSurrogate,
  dr_grpo: clippedSurrogate,
  dapo: clippedSurrogate,
  // CISPO: REINFORCE on log pi with the importance weight clipped from above and detached: -sg(min(w, epsHigh)) A log pi
  cispo: ({ w, adv, logp, cfg }) => neg(mul(mul(detach(clamp(w, null, cfg.epsilonHigh ?? cfg.epsilon)), adv), logp)),
  // SAPO: a soft gate instead of the hard clip: -(4 / tau) sigmoid(tau (w - 1)) A, tau by the advantage's sign
  sapo: ({ w, adv, cfg }) => {
    const pos = gt(adv, 0); // 1 where A > 0
    const tau = add(mul(pos, cfg.sapoTemperaturePos - cfg.sapoTemperatureNeg), cfg.sapoTemperatureNeg);
    return neg(mul(div(mul(sigmoid(mul(sub(w, 1), tau)), 4), tau), adv));
  },
} satisfies Record<GrpoLossType, (o: Objective) => Tensor>;

interface Aggregation {
  lossMask: Tensor;
  perTokenLoss: Tensor;
  cfg: GrpoConfig;
  numItemsInBatch?: number;
}

// mean over tokens of each sequence, then over sequences (length-biased)
function sequenceMean({ perTokenLoss, lossMask }: Aggregation): Tensor {
  return mean(div(maskedSum(perTokenLoss, lossMask, 1), clamp(sum(lossMask, 1), 1, null)));
}

// over all active tokens of the global batch
function globalTokenMean({ perTokenLoss, lossMask, numItemsInBatch }: Aggregation): Tensor {
  return div(maskedSum(perTokenLoss, lossMask), Math.max(1, numItemsInBatch ?? sum(lossMask).item()));
}

/** Token aggregation per loss type: all sum the masked per-token loss, they differ in the normaliser. */
export const GRPO_AGGREGATIONS = {
  grpo: sequenceMean,
  // over all tokens of the micro-batch
  bnpo: ({ perTokenLoss, lossMask }) => div(maskedSum(perTokenLoss, lossMask), Math.max(1, sum(lossMask).item())),
  // a constant normaliser: B * max_completion_length
  dr_grpo: ({ perTokenLoss, lossMask, cfg }) => div(maskedSum(perTokenLoss, lossMask), lossMask.shape[0] * cfg.maxCompletionLength),
  dapo: globalTokenMean,
  cispo: globalTokenMean,
  sapo: sequenceMean,
} satisfies Record<GrpoLossType, (a: Aggregation) => Tensor>;

/** Loss types normalised by the whole generation batch's token count (no division by accumulation steps). */
export const GLOBAL_TOKEN_NORMALISED: ReadonlySet<GrpoLossType> = new Set(["dapo", "cispo"]);

export function resolveGrpoConfig(user?: Partial<GrpoConfig>): GrpoConfig {
  return resolveConfig("grpoLoss", GRPO_DEFAULTS, user, (c) => {
    requireOneOf("grpoLoss", "lossType", c.lossType, GRPO_AGGREGATIONS);
    requireOneOf("grpoLoss", "importanceSamplingLevel", c.importanceSamplingLevel, IMPORTANCE_LEVELS);
    const hi = c.epsilonHigh ?? c.epsilon;
    if (!(c.epsilon >= 0 && c.epsilon < 1 && hi >= 0))
      throw new LossError(`[grpoLoss] need 0 <= epsilon < 1 and epsilonHigh >= 0; got ${c.epsilon}, ${hi}`);
    if (c.delta !== null && !(c.delta > 1 + hi)) {
      throw new LossError(`[grpoLoss] delta (${c.delta}) must exceed 1 + epsilonHigh (${1 + hi})`);
    }
    if (!(c.maxCompletionLength > 0)) throw new LossError(`[grpoLoss] maxCompletionLength must be > 0, got ${c.maxCompletionLength}`);
    if (!(c.sapoTemperaturePos > 0 && c.sapoTemperatureNeg > 0)) {
      throw new LossError(`[grpoLoss] SAPO temperatures must be > 0; got ${c.sapoTemperaturePos}, ${c.sapoTemperatureNeg}`);
    }
  });
}

export function grpoLoss(inputs: GrpoInputs, config?: Partial<GrpoConfig>): GrpoOutput {
  const cfg = resolveGrpoConfig(config);
  const { perTokenLogps: logp, completionMask: mask } = inputs;
  requireRank("grpoLoss", "perTokenLogps", logp, 2);
  requireShape("grpoLoss", "completionMask", mask, logp.shape);
  const [b, t] = logp.shape;
  const old = inputs.oldPerTokenLogps === undefined ? detach(logp) : detach(inputs.oldPerTokenLogps);
  requireShape("grpoLoss", "oldPerTokenLogps", old, logp.shape);
  let adv = detach(inputs.advantages);
  if (adv.ndim === 1) {
    requireShape("grpoLoss", "advantages", adv, [b]);
    adv = unsqueeze(adv, 1); // [B, 1]
  } else {
    requireShape("grpoLoss", "advantages", adv, [b, t]);
  }

  const logW = IMPORTANCE_LEVELS[cfg.importanceSamplingLevel](sub(logp, old), mask);
  const w = exp(logW); // [B, T] or [B, 1]
  let perTokenLoss = expand(GRPO_OBJECTIVES[cfg.lossType]({ w, adv, logp, cfg }), [b, t]);
  if (inputs.importanceSamplingWeights !== undefined) {
    const isw = detach(inputs.importanceSamplingWeights);
    if (isw.shape[1] !== 1) requireShape("grpoLoss", "importanceSamplingWeights", isw, [b, t]);
    else requireShape("grpoLoss", "importanceSamplingWeights", isw, [b, 1]);
    perTokenLoss = mul(perTokenLoss, isw);
  }

  let perTokenKl: Tensor | undefined;
  if (inputs.refPerTokenLogps !== undefined) perTokenKl = klEstimator(logp, detach(inputs.refPerTokenLogps), "k3");
  if (cfg.beta !== 0) {
    if (perTokenKl === undefined) throw new LossError(`[grpoLoss] beta = ${cfg.beta} needs refPerTokenLogps`);
    perTokenLoss = add(perTokenLoss, mul(perTokenKl, cfg.beta));
  }
  const policyLoss = GRPO_AGGREGATIONS[cfg.lossType]({ perTokenLoss, lossMask: mask, cfg, numItemsInBatch: inputs.numItemsInBatch });
  let loss = policyLoss;
  if (cfg.entropyCoef !== 0) {
    if (inputs.entropies === undefined) throw new LossError(`[grpoLoss] entropyCoef = ${cfg.entropyCoef} needs entropies`);
    requireShape("grpoLoss", "entropies", inputs.entropies, [b, t]);
    // TRL: the mean token entropy, over the global token count for dapo / cispo, else over this micro-batch
    const n = GLOBAL_TOKEN_NORMALISED.has(cfg.lossType) ? (inputs.numItemsInBatch ?? sum(mask).item()) : sum(mask).item();
    loss = sub(loss, mul(div(maskedSum(inputs.entropies, mask), Math.max(1, n)), cfg.entropyCoef));
  }
  return { loss, policyLoss, perTokenLoss, perTokenKl, importanceWeights: w };
}
