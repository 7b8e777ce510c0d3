// Rollout/training mismatch correction: when completions were sampled by another engine (vLLM, SGLang, a
// `nexus serve`, a bf16 engine) or by an older policy (asynchronous rollouts), the sampling log-probs differ from
// the training engine's. TRL's `vllm_importance_sampling_mode` semantics: the ratio pi_train / pi_sampling per
// token or per sequence (product of the token ratios), truncated into [floor, cap] or masked to 0 outside it;
// the weights are constants (detached) that multiply the per-token loss. Metrics as TRL logs them
// (sampling/*) plus verl's off-policy diagnostics (rollout_corr/*: KL, k3 KL, perplexities, chi-square).
// Not here: deciding when correction applies (the online loop), the policy loss itself (grpo.ts).

import { fromArray, Tensor } from "../tensor/index.js";
import { LossError, requireRank, requireShape } from "./common.js";

export type ImportanceSamplingCorrection = "none" | "token_truncate" | "token_mask" | "sequence_truncate" | "sequence_mask";

export interface RolloutCorrectionConfig {
  /** Which ratio (token / sequence) and what happens outside [floor, cap] (truncate / mask); none: weights 1. */
  mode: ImportanceSamplingCorrection;
  /** Upper bound C_max (TRL vllm_importance_sampling_clip_max 3.0); null: none. */
  cap: number | null;
  /** Lower bound C_min (TRL vllm_importance_sampling_clip_min); null: none. */
  floor: number | null;
}

export const ROLLOUT_CORRECTION_DEFAULTS: Readonly<RolloutCorrectionConfig> = Object.freeze({ mode: "sequence_mask", cap: 3, floor: null });

/** verl's safety bound on exponents (exp(20) ~ 4.9e8). */
const SAFETY_BOUND = 20;

interface Bounds {
  lo: number;
  hi: number;
}

/** What each mode does with a ratio: keep it in [lo, hi] (truncate) or zero it outside (mask). */
export const IS_CORRECTIONS = {
  none: () => 1,
  token_truncate: (w, b) => Math.min(Math.max(w, b.lo), b.hi),
  token_mask: (w, b) => (w < b.lo || w > b.hi ? 0 : w),
  sequence_truncate: (w, b) => Math.min(Math.max(w, b.lo), b.hi),
  sequence_mask: (w, b) => (w < b.lo || w > b.hi ? 0 : w),
} satisfies Record<ImportanceSamplingCorrection, (w: number, b: Bounds) => number>;

export const isSequenceLevel = (mode: ImportanceSamplingCorrection): boolean => mode.startsWith("sequence");

export interface RolloutCorrectionInputs {
  /** Training-engine log-probs of the sampled tokens under the policy that the loss treats as old [B, T]. */
  trainLogps: Tensor;
  /** The sampling engine's log-probs of the same tokens [B, T]. */
  samplingLogps: Tensor;
  /** 1 on completion tokens that count [B, T] (environment tokens and padding excluded). */
  mask: Tensor;
}

export interface RolloutCorrectionOutput {
  /** Detached weights: [B, T] for token modes, [B, 1] for sequence modes (all 1 for none). */
  weights: Tensor;
  /** sampling/* (TRL) and rollout_corr/* (verl) metrics. */
  metrics: Record<string, number>;
}

export function resolveRolloutCorrection(user: Partial<RolloutCorrectionConfig> = {}): RolloutCorrectionConfig {
  const c = { ...ROLLOUT_CORRECTION_DEFAULTS, ...user };
  if (!Object.hasOwn(IS_CORRECTIONS, c.mode)) {
    throw new LossError(`[rolloutCorrection] mode must be one of ${Object.keys(IS_CORRECTIONS).join(", ")}; got '${c.mode}'`);
  }
  if (c.cap !== null && !(c.cap > 0)) throw new LossError(`[rolloutCorrection] cap must be > 0, got ${c.cap}`);
  if (c.floor !== null && !(c.floor >= 0)) throw new LossError(`[rolloutCorrection] floor must be >= 0, got ${c.floor}`);
  if (c.cap !== null && c.floor !== null && c.floor > c.cap) {
    throw new LossError(`[rolloutCorrection] floor (${c.floor}) exceeds cap (${c.cap})`);
  }
  return c;
}

/**
 * Importance weights pi_train / pi_sampling for the loss, per TRL: token modes use each token's ratio,
 * sequence modes exp(sum_t mask * (log pi_train - log pi_sampling)), then truncate or mask with [floor, cap].
 */
export function rolloutCorrection(inputs: RolloutCorrectionInputs, config?: Partial<RolloutCorrectionConfig>): RolloutCorrectionOutput {
  const c = resolveRolloutCorrection(config);
  const { trainLogps, samplingLogps, mask } = inputs;
  requireRank("rolloutCorrection", "trainLogps", trainLogps, 2);
  requireShape("rolloutCorrection", "samplingLogps", samplingLogps, trainLogps.shape);
  requireShape("rolloutCorrection", "mask", mask, trainLogps.shape);
  const [b, t] = trainLogps.shape;
  const tr = trainLogps.hostData(); // host arithmetic over [B, T] values (one download each on a device)
  const sa = samplingLogps.hostData();
  const m = mask.hostData();
  const bounds: Bounds = { lo: c.floor ?? Number.NEGATIVE_INFINITY, hi: c.cap ?? Number.POSITIVE_INFINITY };
  const apply = IS_CORRECTIONS[c.mode];
  const seq = isSequenceLevel(c.mode);
  const out = new Float32Array(seq ? b : b * t);
  const kept: number[] = []; // the weights over which TRL reports min / mean / max
  for (let i = 0; i < b; i++) {
    if (seq) {
      let s = 0;
      for (let j = 0; j < t; j++) if (m[i * t + j] !== 0) s += tr[i * t + j] - sa[i * t + j];
      out[i] = c.mode === "none" ? 1 : apply(Math.exp(s), bounds); // TRL: no clamp before bounds (exp may be Infinity)
      kept.push(out[i]);
    } else {
      for (let j = 0; j < t; j++) {
        const k = i * t + j;
        out[k] = c.mode === "none" ? 1 : apply(Math.exp(tr[k] - sa[k]), bounds);
        if (m[k] !== 0) kept.push(out[k]);
      }
    }
  }
  const metrics: Record<string, number> = { ...offPolicyMetrics(inputs) };
  if (c.mode !== "none") {
    const n = kept.length;
    metrics["sampling/importance_sampling_ratio/min"] = n ? Math.min(...kept) : 0;
    metrics["sampling/importance_sampling_ratio/mean"] = n ? kept.reduce((a, x) => a + x, 0) / n : 0;
    metrics["sampling/importance_sampling_ratio/max"] = n ? Math.max(...kept) : 0;
    if (c.mode.endsWith("mask")) metrics["rollout_corr/masked_fraction"] = n ? kept.filter((x) => x === 0).length / n : 0;
  }
  const shape = seq ? [b, 1] : [b, t];
  return { weights: trainLogps.device === "host" ? new Tensor(out, shape) : fromArray(out, shape), metrics };
}

/**
 * Off-policy diagnostics of sampled tokens (no weights): TRL's sampling/sampling_logp_difference/{mean,max}
 * (|log pi_train - log pi_sampling| over counted tokens) and verl's rollout_corr/{kl, k3_kl, training_ppl,
 * rollout_ppl, log_ppl_diff, chi2_token, chi2_seq} (perplexities per sequence, then averaged).
 */
export function offPolicyMetrics(inputs: RolloutCorrectionInputs): Record<string, number> {
  const { trainLogps, samplingLogps, mask } = inputs;
  const [b, t] = trainLogps.shape;
  const tr = trainLogps.hostData(); // host arithmetic over [B, T] values (one download each on a device)
  const sa = samplingLogps.hostData();
  const m = mask.hostData();
  let n = 0;
  let absSum = 0;
  let absMax = 0;
  let kl = 0;
  let k3 = 0;
  let chi2 = 0;
  let rows = 0;
  let trainPpl = 0;
  let rolloutPpl = 0;
  let logPplDiff = 0;
  let chi2Seq = 0;
  for (let i = 0; i < b; i++) {
    let cnt = 0;
    let sTrain = 0;
    let sRoll = 0;
    for (let j = 0; j < t; j++) {
      const k = i * t + j;
      if (m[k] === 0) continue;
      const d = tr[k] - sa[k]; // log rho
      absSum += Math.abs(d);
      absMax = Math.max(absMax, Math.abs(d));
      kl += -d;
      k3 += Math.exp(d) - d - 1;
      chi2 += Math.exp(2 * Math.max(-SAFETY_BOUND, Math.min(SAFETY_BOUND, d)));
      sTrain += tr[k];
      sRoll += sa[k];
      cnt++;
    }
    n += cnt;
    if (cnt === 0) continue;
    rows++;
    trainPpl += Math.exp(-sTrain / cnt);
    rolloutPpl += Math.exp(-sRoll / cnt);
    logPplDiff += sRoll / cnt - sTrain / cnt;
    chi2Seq += Math.exp(2 * Math.max(-SAFETY_BOUND, Math.min(SAFETY_BOUND, sTrain - sRoll)));
  }
  if (n === 0) return {};
  return {
    "sampling/sampling_logp_difference/mean": absSum / n,
    "sampling/sampling_logp_difference/max": absMax,
    "rollout_corr/kl": kl / n,
    "rollout_corr/k3_kl": k3 / n,
    "rollout_corr/training_ppl": trainPpl / rows,
    "rollout_corr/rollout_ppl": rolloutPpl / rows,
    "rollout_corr/log_ppl_diff": logPplDiff / rows,
    "rollout_corr/chi2_token": chi2 / n - 1,
    "rollout_corr/chi2_seq": chi2Seq / rows - 1,
  };
}
