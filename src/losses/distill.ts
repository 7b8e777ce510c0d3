// On-policy distillation losses. `gkdLoss`: the generalized Jensen-Shannon divergence of GKD (Agarwal et al.
// 2306.13649, TRL GKDTrainer.generalized_jsd_loss) between student and teacher next-token distributions at
// every counted position: beta 0 is KL(teacher || student), beta 1 is KL(student || teacher), otherwise
// beta KL(teacher || M) + (1 - beta) KL(student || M) with M = beta teacher + (1 - beta) student; summed over the
// vocabulary, averaged over counted tokens (or divided by numItemsInBatch). `reverseKlAdvantages`: the per-token
// advantage of reverse-KL on-policy distillation against a teacher's log-probs of the sampled tokens
// (log pi_teacher - log pi_student, detached), fed to grpoLoss as [B, T] advantages (Thinking Machines 2025).
// Not here: sampling (student, teacher or data: the trainer), teacher forward passes.

import { add, detach, exp, fromArray, log, logSoftmax, maximum, mul, sub, sum, Tensor as T, type Tensor } from "../tensor/index.js";
import { LossError, requireRank, requireShape, resolveConfig } from "./common.js";

export interface GkdConfig {
  /** Interpolation of the JSD: 0 = forward KL(teacher || student), 1 = reverse KL(student || teacher). TRL 0.5. */
  beta: number;
  /** Both logits are divided by it before the softmax (TRL's loss default 1; its sampling temperature is separate). */
  temperature: number;
}

export const GKD_DEFAULTS: Readonly<GkdConfig> = Object.freeze({ beta: 0.5, temperature: 1 });

export interface GkdInputs {
  /** Student logits [B, T, V] (differentiable): position t predicts token t + 1. */
  studentLogits: Tensor;
  /** Teacher logits [B, T, V] (treated as constants). */
  teacherLogits: Tensor;
  /** 1 where position t's prediction counts [B, T] (TRL: labels != -100 after the shift). */
  mask: Tensor;
  /** Divide the summed divergence by this instead of the mask's count (gradient accumulation). */
  numItemsInBatch?: number;
}

export interface GkdOutput {
  loss: Tensor;
  /** Divergence per position [B, T] (summed over the vocabulary, not masked). */
  perToken: Tensor;
}

/** sum_v p (log p - log q) over the last axis, from log-probabilities: KL(p || q) per position. */
function klFromLogs(logP: Tensor, logQ: Tensor): Tensor {
  return sum(mul(exp(logP), sub(logP, logQ)), -1);
}

/** log(a e^x + b e^y) elementwise, stable: max + log(a e^(x - max) + b e^(y - max)). */
function logMix(x: Tensor, a: number, y: Tensor, b: number): Tensor {
  const mx = detach(maximum(x, y));
  return add(mx, log(add(mul(exp(sub(x, mx)), a), mul(exp(sub(y, mx)), b))));
}

export function resolveGkdConfig(user?: Partial<GkdConfig>): GkdConfig {
  return resolveConfig("gkdLoss", GKD_DEFAULTS, user, (c) => {
    if (!(c.beta >= 0 && c.beta <= 1)) throw new LossError(`[gkdLoss] beta must be in [0, 1], got ${c.beta}`);
    if (!(c.temperature > 0)) throw new LossError(`[gkdLoss] temperature must be > 0, got ${c.temperature}`);
  });
}

export function gkdLoss(inputs: GkdInputs, config?: Partial<GkdConfig>): GkdOutput {
  const c = resolveGkdConfig(config);
  const { studentLogits: s, mask } = inputs;
  requireRank("gkdLoss", "studentLogits", s, 3);
  requireShape("gkdLoss", "teacherLogits", inputs.teacherLogits, s.shape);
  requireShape("gkdLoss", "mask", mask, s.shape.slice(0, 2));
  const scale = (x: Tensor) => (c.temperature === 1 ? x : mul(x, 1 / c.temperature));
  const ls = logSoftmax(scale(s)); // (B, T, V)
  const lt = logSoftmax(scale(detach(inputs.teacherLogits)));
  let perToken: Tensor;
  if (c.beta === 0) perToken = klFromLogs(lt, ls);
  else if (c.beta === 1) perToken = klFromLogs(ls, lt);
  else {
    const lm = logMix(ls, 1 - c.beta, lt, c.beta); // log of the mixture M
    perToken = add(mul(klFromLogs(lt, lm), c.beta), mul(klFromLogs(ls, lm), 1 - c.beta));
  }
  const total = sum(mul(perToken, mask));
  let denom = inputs.numItemsInBatch;
  if (denom === undefined) {
    let n = 0;
    for (const x of mask.hostData()) n += x;
    denom = Math.max(1, n);
  }
  return { loss: mul(total, 1 / denom), perToken };
}

export interface ReverseKlInputs {
  /** Student log-probs of the sampled tokens [B, T] (only their values are used). */
  studentLogps: Tensor;
  /** Teacher log-probs of the same tokens [B, T]. */
  teacherLogps: Tensor;
  /** 1 on counted tokens [B, T]; advantages are 0 elsewhere. */
  mask: Tensor;
}

/**
 * Per-token advantages of reverse-KL distillation: A_t = log pi_teacher(y_t) - log pi_student(y_t) on counted
 * tokens (a per-token reward of -k1, no discounting), as a detached [B, T] tensor for grpoLoss: its gradient at
 * ratio 1 is the sampled gradient of KL(student || teacher) with each token's own term.
 */
export function reverseKlAdvantages(inputs: ReverseKlInputs): Tensor {
  const { studentLogps, teacherLogps, mask } = inputs;
  requireRank("reverseKlAdvantages", "studentLogps", studentLogps, 2);
  requireShape("reverseKlAdvantages", "teacherLogps", teacherLogps, studentLogps.shape);
  requireShape("reverseKlAdvantages", "mask", mask, studentLogps.shape);
  // host arithmetic over [B, T] values (one download each on a device)
  const out = studentLogps.dtype === "f64" ? new Float64Array(studentLogps.size) : new Float32Array(studentLogps.size);
  const [md, td, sd] = [mask.hostData(), teacherLogps.hostData(), studentLogps.hostData()];
  for (let k = 0; k < out.length; k++) out[k] = md[k] === 0 ? 0 : td[k] - sd[k];
  return detach(studentLogps.device === "host" ? new T(out, studentLogps.shape) : fromArray(out, studentLogps.shape));
}

/** Mean sampled reverse KL per counted token, sum mask (log pi_s - log pi_t) / sum mask: the metric distillation logs. */
export function sampledReverseKl(inputs: ReverseKlInputs): number {
  let s = 0;
  let n = 0;
  const [md, sd, td] = [inputs.mask.hostData(), inputs.studentLogps.hostData(), inputs.teacherLogps.hostData()];
  for (let k = 0; k < inputs.mask.size; k++) {
    if (md[k] === 0) continue;
    s += sd[k] - td[k];
    n++;
  }
  return n === 0 ? 0 : s / n;
}
