// DPO and its pairwise relatives as TRL's DPOTrainer (v1.9) defines them, computed from sequence log-probs
// the caller already has; this file does not run models or gather log-probs (see the trainers for that).
// Source: Rafailov et al. 2023, "Direct Preference Optimization" (+ the papers named per variant below).
// Differences from TRL v1.9: `sigmoid` keeps label smoothing as conservative DPO (cDPO, as OpenRLHF and
// TRL <= 0.28); ipo / sigmoid_norm divide by token counts only when `chosenLengths` / `rejectedLengths` are
// given (otherwise pass token-averaged log-probs); WPO weighting, LD-DPO and the MoE aux loss are not here.

import {
  add,
  clamp,
  detach,
  div,
  exp,
  expand,
  logSigmoid,
  maskedSum,
  mean,
  mul,
  neg,
  relu,
  reshape,
  sigmoid,
  sort,
  square,
  sub,
  sum,
  type Tensor,
} from "../tensor/index.js";
import { LossError, negLogSigmoid, requireOneOf, requireShape, resolveConfig, smoothedLogistic } from "./common.js";

export type DpoLossType =
  | "sigmoid"
  | "robust"
  | "hinge"
  | "ipo"
  | "sppo_hard"
  | "nca_pair"
  | "bco_pair"
  | "apo_zero"
  | "apo_down"
  | "exo_pair"
  | "discopop"
  | "aot"
  | "aot_unpaired"
  | "sigmoid_norm"
  | "sft";

export type FDivergenceType = "reverse_kl" | "forward_kl" | "js_divergence" | "alpha_divergence";

export interface DpoConfig {
  /** Loss variant, or a list combined as sum_k lossWeights[k] * mean(L_k) (TRL's list form). */
  lossType: DpoLossType | readonly DpoLossType[];
  /** One weight per entry of a list `lossType`; null means all 1. */
  lossWeights: readonly number[] | null;
  /** Inverse temperature of the implicit reward (IPO's tau, SPPO's eta^-1). */
  beta: number;
  /** cDPO / robust / AOT noise rate, and exo_pair's epsilon (0 there means 1e-3, as TRL). */
  labelSmoothing: number;
  /** Temperature of DiscoPOP's log-ratio modulation. */
  discopopTau: number;
  /** Transform g applied to each log-ratio before the loss: reverse_kl is plain DPO. */
  fDivergenceType: FDivergenceType;
  /** alpha of the alpha-divergence transform. */
  fAlphaDivergenceCoef: number;
}

export const DPO_DEFAULTS: Readonly<DpoConfig> = Object.freeze({
  lossType: "sigmoid",
  lossWeights: null,
  beta: 0.1,
  labelSmoothing: 0,
  discopopTau: 0.05,
  fDivergenceType: "reverse_kl",
  fAlphaDivergenceCoef: 0.5,
});

export interface DpoInputs {
  /** Summed completion log-probs under the policy, [B]. */
  policyChosenLogps: Tensor;
  policyRejectedLogps: Tensor;
  /** The same under the frozen reference, [B] (constants). */
  refChosenLogps: Tensor;
  refRejectedLogps: Tensor;
  /** Completion token counts [B]; ipo and sigmoid_norm divide the scores by them when given. */
  chosenLengths?: Tensor;
  rejectedLengths?: Tensor;
  /** For `sft`: per-token policy log-probs of the chosen completion [B, T] and its mask [B, T] ... */
  chosenTokenLogps?: Tensor;
  chosenMask?: Tensor;
  /** ... or the chosen NLL (token mean over the batch) already reduced, a scalar. */
  chosenNll?: Tensor;
}

export interface DpoOutput {
  /** sum_k w_k mean(L_k), the scalar to minimise. */
  loss: Tensor;
  /** Per-pair sum_k w_k L_k [B]; mean(losses) == loss. (aot variants: per sorted position.) */
  losses: Tensor;
  /** beta * (policy - ref) log-ratios, detached [B]. */
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

/** What every variant sees: raw log-ratios, their f-divergence scores, and the config. */
export interface DpoTerms {
  /** Delta_c = policy_c - ref_c and Delta_r, [B]. */
  dc: Tensor;
  dr: Tensor;
  /** s = g(Delta) after the f-divergence transform, and delta = s_c - s_r. */
  sc: Tensor;
  sr: Tensor;
  delta: Tensor;
  cfg: DpoConfig;
  inputs: DpoInputs;
}

export type DpoLossFn = (t: DpoTerms) => Tensor;

/** Score difference divided by token counts when the caller gave them (IPO, sigmoid_norm). */
function lengthNormalisedDelta(t: DpoTerms): Tensor {
  const { chosenLengths: lc, rejectedLengths: lr } = t.inputs;
  if (lc === undefined && lr === undefined) return t.delta;
  if (lc === undefined || lr === undefined) throw new LossError("[dpoLoss] give both chosenLengths and rejectedLengths, or neither");
  return sub(div(t.sc, lc), div(t.sr, lr));
}

/** AOT: sort both margins over the batch and compare them quantile by quantile (Melnyk et al. 2024). */
function aotLoss(policyMargin: Tensor, refMargin: Tensor, cfg: DpoConfig): Tensor {
  const d = sub(sort(policyMargin, 0).values, sort(refMargin, 0).values);
  return smoothedLogistic(mul(d, cfg.beta), cfg.labelSmoothing);
}

/** SFT term: token-mean NLL of the chosen completion over the batch, spread so that mean(per-example) = it. */
function sftLoss(t: DpoTerms): Tensor {
  const { chosenTokenLogps: lp, chosenMask: m, chosenNll } = t.inputs;
  const b = t.dc.shape[0];
  if (chosenNll !== undefined) return expand(reshape(chosenNll, [1]), [b]); // the scalar, once per pair
  if (lp === undefined || m === undefined) {
    throw new LossError("[dpoLoss] lossType 'sft' needs chosenTokenLogps + chosenMask, or chosenNll");
  }
  requireShape("dpoLoss", "chosenMask", m, lp.shape);
  const tokens = Math.max(1, sum(m).item());
  return mul(maskedSum(neg(lp), m, 1), b / tokens); // [B]
}

export const DPO_LOSSES = {
  // DPO (Rafailov et al. 2023); cDPO when labelSmoothing > 0
  sigmoid: (t) => smoothedLogistic(mul(t.delta, t.cfg.beta), t.cfg.labelSmoothing),
  // rDPO (Chowdhury et al. 2024): unbiased under label-flip rate eps
  robust: (t) => {
    const z = mul(t.delta, t.cfg.beta);
    const e = t.cfg.labelSmoothing;
    return div(sub(mul(negLogSigmoid(z), 1 - e), mul(negLogSigmoid(neg(z)), e)), 1 - 2 * e);
  },
  // SLiC (Zhao et al. 2023)
  hinge: (t) => relu(sub(1, mul(t.delta, t.cfg.beta))),
  // IPO (Azar et al. 2023)
  ipo: (t) => square(sub(lengthNormalisedDelta(t), 1 / (2 * t.cfg.beta))),
  // SPPO hard-label (Wu et al. 2024)
  sppo_hard: (t) => add(square(sub(t.sc, 0.5 / t.cfg.beta)), square(add(t.sr, 0.5 / t.cfg.beta))),
  // NCA (Chen et al. 2024)
  nca_pair: (t) => {
    const rc = mul(t.sc, t.cfg.beta);
    const rr = mul(t.sr, t.cfg.beta);
    return add(negLogSigmoid(rc), mul(add(negLogSigmoid(neg(rc)), negLogSigmoid(neg(rr))), 0.5));
  },
  // BCO paired form, without BCO's running-mean shift (TRL v1.x)
  bco_pair: (t) => add(negLogSigmoid(mul(t.sc, t.cfg.beta)), negLogSigmoid(neg(mul(t.sr, t.cfg.beta)))),
  // APO (D'Oosterlinck et al. 2024)
  apo_zero: (t) => add(sub(1, sigmoid(mul(t.dc, t.cfg.beta))), sigmoid(mul(t.dr, t.cfg.beta))),
  apo_down: (t) => add(sigmoid(mul(t.dc, t.cfg.beta)), sub(1, sigmoid(mul(sub(t.dc, t.dr), t.cfg.beta)))),
  // EXO (Ji et al. 2024), pairwise form with epsilon = labelSmoothing
  exo_pair: (t) => {
    const e = t.cfg.labelSmoothing === 0 ? 1e-3 : t.cfg.labelSmoothing;
    const z = mul(t.delta, t.cfg.beta);
    const pos = mul(sigmoid(z), sub(logSigmoid(z), Math.log(1 - e)));
    const negPart = mul(sigmoid(neg(z)), sub(logSigmoid(neg(z)), Math.log(e)));
    return add(pos, negPart);
  },
  // DiscoPOP (Chris Lu et al. 2024): log-ratio modulated mix of logistic and exponential losses
  discopop: (t) => {
    const z = mul(t.delta, t.cfg.beta);
    const m = sigmoid(div(z, t.cfg.discopopTau));
    return add(mul(negLogSigmoid(z), sub(1, m)), mul(exp(neg(z)), m));
  },
  aot: (t) =>
    aotLoss(sub(t.inputs.policyChosenLogps, t.inputs.policyRejectedLogps), sub(t.inputs.refChosenLogps, t.inputs.refRejectedLogps), t.cfg),
  aot_unpaired: (t) => aotLoss(t.dc, t.dr, t.cfg),
  sigmoid_norm: (t) => negLogSigmoid(mul(lengthNormalisedDelta(t), t.cfg.beta)),
  sft: sftLoss,
} satisfies Record<DpoLossType, DpoLossFn>;

/** The f-divergence transforms g applied to each log-ratio (TRL's `f_divergence_type`). */
export const F_DIVERGENCES = {
  reverse_kl: (u) => u,
  forward_kl: (u) => neg(exp(neg(u))),
  js_divergence: (u) => logSigmoid(u),
  // exp((alpha - 1) u) / (alpha - 1); the exponent is capped at 80 in f32 (TRL caps it below fp64)
  alpha_divergence: (u, cfg) => {
    const a = cfg.fAlphaDivergenceCoef;
    const expo = mul(u, a - 1);
    return div(exp(u.dtype === "f64" ? expo : clamp(expo, null, 80)), a - 1);
  },
} satisfies Record<FDivergenceType, (u: Tensor, cfg: DpoConfig) => Tensor>;

export function resolveDpoConfig(user?: Partial<DpoConfig>): DpoConfig {
  return resolveConfig("dpoLoss", DPO_DEFAULTS, user, (c) => {
    const types = typeof c.lossType === "string" ? [c.lossType] : c.lossType;
    if (types.length === 0) throw new LossError("[dpoLoss] lossType is an empty list");
    for (const t of types) requireOneOf("dpoLoss", "lossType", t, DPO_LOSSES);
    requireOneOf("dpoLoss", "fDivergenceType", c.fDivergenceType, F_DIVERGENCES);
    if (c.lossWeights !== null && c.lossWeights.length !== types.length) {
      throw new LossError(`[dpoLoss] lossWeights has ${c.lossWeights.length} entries, lossType has ${types.length}`);
    }
    if (!(c.beta > 0)) throw new LossError(`[dpoLoss] beta must be > 0, got ${c.beta}`);
    if (types.includes("robust") && !(c.labelSmoothing >= 0 && c.labelSmoothing < 0.5)) {
      throw new LossError(`[dpoLoss] robust needs labelSmoothing in [0, 0.5), got ${c.labelSmoothing}`);
    }
    if (!(c.labelSmoothing >= 0 && c.labelSmoothing < 1)) {
      throw new LossError(`[dpoLoss] labelSmoothing must be in [0, 1), got ${c.labelSmoothing}`);
    }
    if (c.fDivergenceType === "alpha_divergence" && c.fAlphaDivergenceCoef === 1) {
      throw new LossError("[dpoLoss] fAlphaDivergenceCoef = 1 is reverse_kl; use that instead");
    }
  });
}

/** Per-pair DPO-family losses and their TRL-style combination. */
export function dpoLoss(inputs: DpoInputs, config?: Partial<DpoConfig>): DpoOutput {
  const cfg = resolveDpoConfig(config);
  const { policyChosenLogps: pc, policyRejectedLogps: pr, refChosenLogps: rc, refRejectedLogps: rr } = inputs;
  if (pc.ndim !== 1) throw new LossError(`[dpoLoss] policyChosenLogps must be [B], got [${pc.shape.join(", ")}]`);
  for (const [name, t] of [
    ["policyRejectedLogps", pr],
    ["refChosenLogps", rc],
    ["refRejectedLogps", rr],
  ] as const) {
    requireShape("dpoLoss", name, t, pc.shape);
  }
  const dc = sub(pc, detach(rc));
  const dr = sub(pr, detach(rr));
  const g = F_DIVERGENCES[cfg.fDivergenceType];
  const sc = g(dc, cfg);
  const sr = g(dr, cfg);
  const terms: DpoTerms = { dc, dr, sc, sr, delta: sub(sc, sr), cfg, inputs };

  const types = typeof cfg.lossType === "string" ? [cfg.lossType] : [...cfg.lossType];
  const weights = cfg.lossWeights ?? types.map(() => 1);
  const parts = types.map((t, k) => mul(DPO_LOSSES[t](terms), weights[k])); // each [B]
  const losses = parts.reduce((a, b) => add(a, b));
  const loss = parts.map((p) => mean(p)).reduce((a, b) => add(a, b));
  return {
    loss,
    losses,
    chosenRewards: detach(mul(dc, cfg.beta)),
    rejectedRewards: detach(mul(dr, cfg.beta)),
  };
}
