// GRPO's clipped surrogate over sampled completions, with TRL's importance-sampling levels (token = GRPO,
// sequence = GSPO), its four token aggregations, the optional INTELLECT-2 delta cap and a k3 KL penalty.
// Inputs are per-token log-probs [B, T]; advantages come from src/losses/advantages.ts.
// Sources: Shao et al. 2024 (DeepSeekMath / GRPO); Zheng et al. 2025 (GSPO); Liu et al. 2025 (Dr. GRPO);
// Yu et al. 2025 (DAPO). Differences from TRL: cispo / sapo / vespo / luspo, vLLM IS correction, entropy
// masks and the entropy bonus are not here; `dapo`'s global token count is `numItemsInBatch` when given.

import {
  add,
  clamp,
  detach,
  div,
  exp,
  expand,
  maskedSum,
  mean,
  minimum,
  mul,
  neg,
  sub,
  sum,
  type Tensor,
  unsqueeze,
} from "../tensor/index.js";
import { LossError, requireOneOf, requireRank, requireShape, resolveConfig } from "./common.js";
import { klEstimator } from "./kl.js";

export type GrpoLossType = "grpo" | "bnpo" | "dr_grpo" | "dapo";
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
  /** Upper clip 1 + epsilonHigh; null means epsilon (DAPO uses 0.28). */
  epsilonHigh: number | null;
  /** INTELLECT-2 two-sided clipping: cap the unclipped ratio at delta (> 1 + epsilonHigh); null disables. */
  delta: number | null;
  /** Dr. GRPO's constant normaliser B * maxCompletionLength. */
  maxCompletionLength: number;
}

export const GRPO_DEFAULTS: Readonly<GrpoConfig> = Object.freeze({
  lossType: "dapo",
  importanceSamplingLevel: "token",
  beta: 0,
  epsilon: 0.2,
  epsilonHigh: null,
  delta: null,
  maxCompletionLength: 256,
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
  /** dapo: active tokens in the whole generation batch (all processes and accumulation steps). */
  numItemsInBatch?: number;
}

export interface GrpoOutput {
  loss: Tensor;
  /** -min(w A, clip(w) A) + beta * KL per token, before masking [B, T]. */
  perTokenLoss: Tensor;
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

interface Aggregation {
  lossMask: Tensor;
  perTokenLoss: Tensor;
  cfg: GrpoConfig;
  numItemsInBatch?: number;
}

/** Token aggregation per loss type: all sum the masked per-token loss, they differ in the normaliser. */
export const GRPO_AGGREGATIONS = {
  // mean over tokens of each sequence, then over sequences (length-biased)
  grpo: ({ perTokenLoss, lossMask }) => mean(div(maskedSum(perTokenLoss, lossMask, 1), clamp(sum(lossMask, 1), 1, null))),
  // over all tokens of the micro-batch
  bnpo: ({ perTokenLoss, lossMask }) => div(maskedSum(perTokenLoss, lossMask), Math.max(1, sum(lossMask).item())),
  // a constant normaliser: B * max_completion_length
  dr_grpo: ({ perTokenLoss, lossMask, cfg }) => div(maskedSum(perTokenLoss, lossMask), lossMask.shape[0] * cfg.maxCompletionLength),
  // over all active tokens of the global batch
  dapo: ({ perTokenLoss, lossMask, numItemsInBatch }) =>
    div(maskedSum(perTokenLoss, lossMask), Math.max(1, numItemsInBatch ?? sum(lossMask).item())),
} satisfies Record<GrpoLossType, (a: Aggregation) => Tensor>;

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
  const clipped = clamp(w, 1 - cfg.epsilon, 1 + (cfg.epsilonHigh ?? cfg.epsilon));
  const capped = cfg.delta === null ? w : clamp(w, null, cfg.delta);
  let perTokenLoss = expand(neg(minimum(mul(capped, adv), mul(clipped, adv))), [b, t]);

  let perTokenKl: Tensor | undefined;
  if (inputs.refPerTokenLogps !== undefined) perTokenKl = klEstimator(logp, detach(inputs.refPerTokenLogps), "k3");
  if (cfg.beta !== 0) {
    if (perTokenKl === undefined) throw new LossError(`[grpoLoss] beta = ${cfg.beta} needs refPerTokenLogps`);
    perTokenLoss = add(perTokenLoss, mul(perTokenKl, cfg.beta));
  }
  const loss = GRPO_AGGREGATIONS[cfg.lossType]({ perTokenLoss, lossMask: mask, cfg, numItemsInBatch: inputs.numItemsInBatch });
  return { loss, perTokenLoss, perTokenKl, importanceWeights: w };
}
