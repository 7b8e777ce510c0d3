// Process reward model loss: binary cross-entropy with logits on the one labelled token of each step.
// Callers pass the step logits (the "+" minus "-" logit of TRL's 2-label head gives the same loss) and labels.
// Source: Lightman et al. 2023, "Let's Verify Step by Step"; TRL's PRMTrainer labels the last token of a step.
// Differences from TRL: a single logit per step instead of 2-way token classification (equal maths).

import { detach, ge, maskedMean, mul, softplus, sub, type Tensor, where } from "../tensor/index.js";
import { requireShape } from "./common.js";

export interface PrmInputs {
  /** One logit per step (or per token), any shape. */
  stepLogits: Tensor;
  /** 1 = correct step, 0 = wrong; a negative label (HF's -100) marks a position to ignore. */
  labels: Tensor;
  /** Optional 0/1 mask of the positions that carry a label; defaults to labels >= 0. */
  mask?: Tensor;
}

export interface PrmOutput {
  /** Mean BCE over labelled positions. */
  loss: Tensor;
  /** softplus(x) - y x per position (0 where unlabelled). */
  losses: Tensor;
}

export function prmStepLoss(inputs: PrmInputs): PrmOutput {
  const { stepLogits: x, labels } = inputs;
  requireShape("prmStepLoss", "labels", labels, x.shape);
  const mask = inputs.mask ?? ge(labels, 0);
  requireShape("prmStepLoss", "mask", mask, x.shape);
  const y = detach(where(mask, labels, 0));
  // BCE with logits: -[y log s(x) + (1 - y) log(1 - s(x))] = softplus(x) - y x
  const losses = mul(sub(softplus(x), mul(y, x)), mask);
  return { loss: maskedMean(losses, mask), losses };
}
