// Advantage estimators for the RL trainers: GRPO group normalisation, RLOO leave-one-out baselines, GAE
// for PPO, and DeepSeekMath's process-supervision advantages. All run without gradients (rewards and values
// are constants to the policy loss), in float64 arithmetic, and return tensors in the input's dtype.
// Sources: Shao et al. 2024 (DeepSeekMath, GRPO + process supervision); Ahmadian et al. 2024 (RLOO);
// Schulman et al. 2016 (GAE). Differences from TRL: NaN rewards (reward functions returning None) are not
// special-cased; advantages are computed on what this call is given (TRL gathers across processes first).

import { type DType, type FloatDType, Tensor, tensor } from "../tensor/index.js";
import { LossError, requireOneOf, requireRank, requireShape, resolveConfig } from "./common.js";

export type ScaleRewards = "group" | "batch" | "none";

export interface GrpoAdvantageConfig {
  /** G: completions per prompt; groups are consecutive runs of G rewards. */
  numGenerations: number;
  /** Divide by the group std, the batch std, or not at all (Dr. GRPO). */
  scaleRewards: ScaleRewards;
  /** Added to the std before dividing (TRL 1e-4, verl 1e-6, OpenRLHF 1e-9). */
  stdEpsilon: number;
}

export const GRPO_ADVANTAGE_DEFAULTS: Readonly<GrpoAdvantageConfig> = Object.freeze({
  numGenerations: 8,
  scaleRewards: "group",
  stdEpsilon: 1e-4,
});

/** Mean, shifted by the first element so that equal rewards give exactly that reward (and advantages exactly 0). */
const meanOf = (xs: ArrayLike<number>, from = 0, to = xs.length) => {
  const x0 = xs[from];
  let s = 0;
  for (let i = from; i < to; i++) s += xs[i] - x0;
  return x0 + s / (to - from);
};

/** Bessel-corrected (n - 1) standard deviation, as torch.std. */
function unbiasedStd(xs: ArrayLike<number>, from = 0, to = xs.length): number {
  const m = meanOf(xs, from, to);
  let s = 0;
  for (let i = from; i < to; i++) s += (xs[i] - m) ** 2;
  return Math.sqrt(s / (to - from - 1));
}

function floatLike(t: Tensor): FloatDType {
  return t.dtype === "f64" ? "f64" : "f32";
}

/** Host-computed values as a tensor where `like` lives: a host tensor for a host input, else on the current backend. */
function fromValues(values: ArrayLike<number>, shape: readonly number[], dtype: DType, like?: Tensor): Tensor {
  if (like?.device === "host") {
    const a =
      dtype === "f64" ? new Float64Array(values.length) : dtype === "i32" ? new Int32Array(values.length) : new Float32Array(values.length);
    a.set(values);
    return new Tensor(a, shape);
  }
  return tensor(values, { shape, dtype });
}

/** Per-reward divisor for each scaling mode (null: no division). */
export const REWARD_SCALES = {
  group: (r, g) => Array.from(r, (_, i) => unbiasedStd(r, i - (i % g), i - (i % g) + g)),
  batch: (r) => Array.from(r, () => unbiasedStd(r)),
  none: () => null,
} satisfies Record<ScaleRewards, (r: ArrayLike<number>, g: number) => number[] | null>;

function checkGroups(component: string, rewards: Tensor, g: number): void {
  requireRank(component, "rewards", rewards, 1);
  if (!Number.isInteger(g) || g < 2) throw new LossError(`[${component}] numGenerations must be an integer >= 2, got ${g}`);
  if (rewards.size % g !== 0) {
    throw new LossError(`[${component}] ${rewards.size} rewards do not split into groups of numGenerations = ${g}`);
  }
}

/** GRPO advantages [B] = (r - group mean) / (std + eps), std per `scaleRewards`. */
export function grpoAdvantages(rewards: Tensor, config?: Partial<GrpoAdvantageConfig>): Tensor {
  const cfg = resolveConfig("grpoAdvantages", GRPO_ADVANTAGE_DEFAULTS, config, (c) =>
    requireOneOf("grpoAdvantages", "scaleRewards", c.scaleRewards, REWARD_SCALES),
  );
  const g = cfg.numGenerations;
  checkGroups("grpoAdvantages", rewards, g);
  const r = rewards.hostData();
  const std = REWARD_SCALES[cfg.scaleRewards](r, g);
  const out = new Float64Array(r.length);
  for (let i = 0; i < r.length; i++) {
    const start = i - (i % g);
    const centred = r[i] - meanOf(r, start, start + g);
    out[i] = std === null ? centred : centred / (std[i] + cfg.stdEpsilon);
  }
  return fromValues(out, rewards.shape, floatLike(rewards), rewards);
}

export interface RlooAdvantageConfig {
  /** G: completions per prompt (consecutive), at least 2. */
  numGenerations: number;
}

/** RLOO advantages [B]: r_i minus the mean of the other G - 1 rewards of its group. */
export function rlooAdvantages(rewards: Tensor, config?: Partial<RlooAdvantageConfig>): Tensor {
  const cfg = resolveConfig("rlooAdvantages", { numGenerations: 2 }, config);
  const g = cfg.numGenerations;
  checkGroups("rlooAdvantages", rewards, g);
  const r = rewards.hostData();
  const out = new Float64Array(r.length);
  for (let i = 0; i < r.length; i++) {
    const start = i - (i % g);
    const total = meanOf(r, start, start + g) * g;
    out[i] = r[i] - (total - r[i]) / (g - 1);
  }
  return fromValues(out, rewards.shape, floatLike(rewards), rewards);
}

export interface GaeConfig {
  /** Discount. */
  gamma: number;
  /** GAE lambda: 0 is one-step TD, 1 is Monte Carlo. */
  lam: number;
}

export const GAE_DEFAULTS: Readonly<GaeConfig> = Object.freeze({ gamma: 1, lam: 0.95 });

export interface GaeInputs {
  /** Per-token rewards [B, T] (TRL: -kl_coef * kl, plus the score on the last token). */
  rewards: Tensor;
  /** Value estimates [B, T]. */
  values: Tensor;
  /** 1 on completion tokens [B, T]; rewards and values outside it count as 0 and advantages are 0 there. */
  mask?: Tensor;
}

/**
 * Generalised advantage estimation, right to left: delta_t = r_t + gamma V_{t+1} - V_t,
 * A_t = delta_t + gamma lam A_{t+1}, with V past the end = 0; returns = A + V.
 */
export function gae(inputs: GaeInputs, config?: Partial<GaeConfig>): { advantages: Tensor; returns: Tensor } {
  const cfg = resolveConfig("gae", GAE_DEFAULTS, config);
  const { rewards, values, mask } = inputs;
  requireRank("gae", "rewards", rewards, 2);
  requireShape("gae", "values", values, rewards.shape);
  if (mask !== undefined) requireShape("gae", "mask", mask, rewards.shape);
  const [b, t] = rewards.shape;
  // per-step host arithmetic over small [B, T] tensors: one download each on a device
  const md = mask?.hostData();
  const vd = values.hostData();
  const rd = rewards.hostData();
  const m = (i: number) => (md === undefined ? 1 : md[i]);
  const adv = new Float64Array(b * t);
  const ret = new Float64Array(b * t);
  for (let row = 0; row < b; row++) {
    let last = 0;
    for (let s = t - 1; s >= 0; s--) {
      const i = row * t + s;
      const v = vd[i] * m(i);
      const next = s + 1 < t ? vd[i + 1] * m(i + 1) : 0;
      const delta = rd[i] * m(i) + cfg.gamma * next - v;
      last = delta + cfg.gamma * cfg.lam * last;
      adv[i] = last * m(i);
      ret[i] = (last + v) * m(i);
    }
  }
  const dt = floatLike(rewards);
  return { advantages: fromValues(adv, rewards.shape, dt, rewards), returns: fromValues(ret, rewards.shape, dt, rewards) };
}

export interface ProcessAdvantageConfig {
  /** G: completions per prompt (consecutive). */
  numGenerations: number;
  /** T: token positions per completion in the output. */
  completionLength: number;
  /** Added to the std of the group's step rewards. */
  stdEpsilon: number;
  dtype: FloatDType;
}

export const PROCESS_ADVANTAGE_DEFAULTS: Readonly<ProcessAdvantageConfig> = Object.freeze({
  numGenerations: 8,
  completionLength: 0,
  stdEpsilon: 1e-4,
  dtype: "f32",
});

/**
 * DeepSeekMath process supervision: every step reward of a group is normalised with the mean and
 * (Bessel) std of all step rewards of that group; a token's advantage is the sum of the normalised
 * rewards of the steps that end at or after it. Tokens after the last step get 0.
 * stepRewards[i][j] / stepEndIndices[i][j]: reward and last token index of step j of completion i.
 * Returns [B, T] advantages for grpoLoss.
 */
export function processAdvantages(
  stepRewards: readonly (readonly number[])[],
  stepEndIndices: readonly (readonly number[])[],
  config: Partial<ProcessAdvantageConfig> & { numGenerations: number; completionLength: number },
): Tensor {
  const cfg = resolveConfig("processAdvantages", PROCESS_ADVANTAGE_DEFAULTS, config, (c) => {
    if (!Number.isInteger(c.completionLength) || c.completionLength < 1) {
      throw new LossError(`[processAdvantages] completionLength must be a positive integer, got ${c.completionLength}`);
    }
  });
  const b = stepRewards.length;
  const g = cfg.numGenerations;
  const t = cfg.completionLength;
  if (stepEndIndices.length !== b) {
    throw new LossError(`[processAdvantages] ${b} reward rows but ${stepEndIndices.length} step-index rows`);
  }
  if (b % g !== 0) throw new LossError(`[processAdvantages] ${b} completions do not split into groups of ${g}`);
  const out = new Float64Array(b * t);
  for (let start = 0; start < b; start += g) {
    const all = stepRewards.slice(start, start + g).flat();
    if (all.length === 0) continue;
    const mu = meanOf(all);
    const sd = all.length > 1 ? unbiasedStd(all) : 0;
    for (let i = start; i < start + g; i++) {
      const rs = stepRewards[i];
      const ends = stepEndIndices[i];
      if (ends.length !== rs.length) {
        throw new LossError(`[processAdvantages] completion ${i} has ${rs.length} step rewards but ${ends.length} step ends`);
      }
      for (let j = 0; j < rs.length; j++) {
        const end = ends[j];
        if (!Number.isInteger(end) || end < 0 || end >= t || (j > 0 && end < ends[j - 1])) {
          throw new LossError(`[processAdvantages] completion ${i} step ${j} ends at ${end}; ends must be sorted in [0, ${t})`);
        }
        const norm = (rs[j] - mu) / (sd + cfg.stdEpsilon);
        // the normalised reward of a step counts for every token up to its end
        for (let s = 0; s <= end; s++) out[i * t + s] += norm;
      }
    }
  }
  return fromValues(out, [b, t], cfg.dtype);
}

export type ReinforceBaseline = "none" | "group_mean";

export interface ReinforcePlusPlusConfig {
  /** none: REINFORCE++ (OpenRLHF `reinforce`); group_mean: REINFORCE++-baseline (`reinforce_baseline`). */
  baseline: ReinforceBaseline;
  /** G: completions per prompt (consecutive); needed for the group baseline. */
  numGenerations: number;
  /** Weight of the per-token KL penalty folded into the reward (OpenRLHF kl_coef; 0 = none). */
  klCoef: number;
  /** Discount of the cumulative return (OpenRLHF gamma, 1 for the baseline variant). */
  gamma: number;
}

export const REINFORCE_PP_DEFAULTS: Readonly<ReinforcePlusPlusConfig> = Object.freeze({
  baseline: "none",
  numGenerations: 1,
  klCoef: 0,
  gamma: 1,
});

export interface ReinforcePlusPlusInputs {
  /** One scalar reward per completion [B]. */
  rewards: Tensor;
  /** 1 on completion tokens [B, T] (right-padded: a row's last 1 is its last token). */
  mask: Tensor;
  /** Per-token KL estimate [B, T] (e.g. k1 = log pi_old - log pi_ref); required when klCoef != 0. */
  kl?: Tensor;
}

/**
 * REINFORCE++ advantages [B, T] as OpenRLHF computes them: (baseline variant: subtract the group mean from each
 * reward), per-token reward -klCoef * kl with the scalar reward added at the last real token, the discounted
 * return-to-go, then whitened over every masked token of the batch (biased variance, rsqrt(max(var, 1e-8))).
 * Tokens outside the mask get 0. Hu 2025 (REINFORCE++); OpenRLHF experience_maker.py.
 */
export function reinforcePlusPlusAdvantages(inputs: ReinforcePlusPlusInputs, config?: Partial<ReinforcePlusPlusConfig>): Tensor {
  const cfg = resolveConfig("reinforcePlusPlusAdvantages", REINFORCE_PP_DEFAULTS, config, (c) => {
    if (c.baseline !== "none" && c.baseline !== "group_mean")
      throw new LossError(`[reinforcePlusPlusAdvantages] baseline must be none or group_mean, got '${c.baseline}'`);
    if (!(c.gamma >= 0 && c.gamma <= 1)) throw new LossError(`[reinforcePlusPlusAdvantages] gamma must be in [0, 1], got ${c.gamma}`);
  });
  const { rewards, mask } = inputs;
  requireRank("reinforcePlusPlusAdvantages", "rewards", rewards, 1);
  requireRank("reinforcePlusPlusAdvantages", "mask", mask, 2);
  const [b, t] = mask.shape;
  requireShape("reinforcePlusPlusAdvantages", "rewards", rewards, [b]);
  if (cfg.klCoef !== 0) {
    if (inputs.kl === undefined) throw new LossError(`[reinforcePlusPlusAdvantages] klCoef = ${cfg.klCoef} needs kl`);
    requireShape("reinforcePlusPlusAdvantages", "kl", inputs.kl, [b, t]);
  }
  const rd = rewards.hostData(); // host arithmetic over [B] and [B, T] values (one download each on a device)
  const r = Float64Array.from(rd);
  if (cfg.baseline === "group_mean") {
    const g = cfg.numGenerations;
    if (!Number.isInteger(g) || g < 1 || b % g !== 0)
      throw new LossError(`[reinforcePlusPlusAdvantages] ${b} rewards do not split into groups of numGenerations = ${g}`);
    const means = Array.from({ length: b / g }, (_, k) => meanOf(rd, k * g, k * g + g));
    for (let i = 0; i < b; i++) r[i] = rd[i] - means[Math.floor(i / g)];
  }
  const m = mask.hostData();
  const kd = cfg.klCoef !== 0 ? (inputs.kl as Tensor).hostData() : null;
  const ret = new Float64Array(b * t);
  let n = 0;
  let s = 0;
  for (let i = 0; i < b; i++) {
    let last = -1;
    for (let j = t - 1; j >= 0 && last < 0; j--) if (m[i * t + j] !== 0) last = j;
    let g = 0;
    for (let j = t - 1; j >= 0; j--) {
      const k = i * t + j;
      if (m[k] === 0) continue;
      const tokenReward = (kd !== null ? -cfg.klCoef * kd[k] : 0) + (j === last ? r[i] : 0);
      g = tokenReward + cfg.gamma * g;
      ret[k] = g;
      s += g;
      n++;
    }
  }
  const out = new Float64Array(b * t);
  if (n > 0) {
    const mu = s / n;
    let v = 0;
    for (let k = 0; k < b * t; k++) if (m[k] !== 0) v += (ret[k] - mu) ** 2;
    const rstd = 1 / Math.sqrt(Math.max(v / n, 1e-8));
    for (let k = 0; k < b * t; k++) if (m[k] !== 0) out[k] = (ret[k] - mu) * rstd;
  }
  return fromValues(out, [b, t], floatLike(rewards), rewards);
}
