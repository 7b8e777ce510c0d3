// Per-token KL estimators between the policy and a reference from sampled-token log-probs (Schulman's
// "Approximating KL Divergence", 2020): k1 is unbiased but noisy, k2 is low-variance, k3 is unbiased and >= 0.
// TRL's GRPO adds k3 to the loss; TRL's PPO / RLOO put k1 into the reward. No reduction happens here.

import { exp, mul, square, sub, type Tensor } from "../tensor/index.js";
import { requireShape } from "./common.js";

export type KlKind = "k1" | "k2" | "k3";

export const KL_ESTIMATORS = {
  // log(pi / ref)
  k1: (logp, refLogp) => sub(logp, refLogp),
  // 0.5 * log(pi / ref)^2
  k2: (logp, refLogp) => mul(square(sub(logp, refLogp)), 0.5),
  // ref/pi - log(ref/pi) - 1
  k3: (logp, refLogp) => {
    const d = sub(refLogp, logp);
    return sub(sub(exp(d), d), 1);
  },
} satisfies Record<KlKind, (logp: Tensor, refLogp: Tensor) => Tensor>;

/** Elementwise KL estimate of KL(pi || ref) at the sampled tokens; gradients flow into both arguments. */
export function klEstimator(logp: Tensor, refLogp: Tensor, kind: KlKind = "k3"): Tensor {
  requireShape("klEstimator", "refLogp", refLogp, logp.shape);
  return KL_ESTIMATORS[kind](logp, refLogp);
}
