// Closed forms for the online-RL additions to src/losses: CISPO (clipped, detached weight on log pi: the gradient
// survives where the PPO clip zeroes it), SAPO (soft gate: value -2A/tau and gradient -A at ratio 1), the entropy
// bonus, rollout-correction weights (TRL's four modes) and its metrics, REINFORCE++ / -baseline advantages, GKD's
// generalized JSD (forward / reverse KL at beta 0 / 1, the mixture in between; known gradients), and reverse-KL
// distillation advantages. Hand-derived values in float64 on the `ref` backend.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import {
  gkdLoss,
  grpoLoss,
  LossError,
  ppoLoss,
  reinforcePlusPlusAdvantages,
  reverseKlAdvantages,
  rolloutCorrection,
  sampledReverseKl,
} from "../src/losses/index.js";
import { type Tensor, tensor } from "../src/tensor/index.js";

setBackend("ref");

const f64 = (x: number[] | number[][] | number[][][], requiresGrad = false) => tensor(x, { dtype: "f64", requiresGrad });
const arr = (t: Tensor) => Array.from(t.data as Float64Array);
function near(got: number, want: number, tol = 1e-9, what = "value"): void {
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);
}
function allNear(got: ArrayLike<number>, want: readonly number[], tol = 1e-9, what = "values"): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) near(got[i], want[i], tol, `${what}[${i}]`);
}
const sig = (x: number) => 1 / (1 + Math.exp(-x));

describe("CISPO and SAPO (TRL 1.9 loss types)", () => {
  test("CISPO: loss -min(w, epsHigh) A log pi with a detached weight; the gradient stays where the PPO clip zeroes it", () => {
    // one token: log pi = ln 0.5, old = ln 0.25, so w = 2
    for (const [epsHigh, weight] of [
      [5, 2],
      [1.5, 1.5],
    ] as const) {
      const logp = f64([[Math.log(0.5)]], true);
      const out = grpoLoss(
        { perTokenLogps: logp, oldPerTokenLogps: f64([[Math.log(0.25)]]), advantages: f64([0.7]), completionMask: f64([[1]]) },
        { lossType: "cispo", epsilonHigh: epsHigh },
      );
      near(out.loss.item(), -weight * 0.7 * Math.log(0.5), 1e-12, `cispo loss at epsHigh ${epsHigh}`);
      out.loss.backward();
      near(arr(logp.grad as Tensor)[0], -weight * 0.7, 1e-12, "d loss / d log pi");
    }
    // the clipped surrogate at the same point (A > 0, w = 2 > 1 + 0.2): clipped, no gradient
    const logp = f64([[Math.log(0.5)]], true);
    grpoLoss(
      { perTokenLogps: logp, oldPerTokenLogps: f64([[Math.log(0.25)]]), advantages: f64([0.7]), completionMask: f64([[1]]) },
      { lossType: "dapo" },
    ).loss.backward();
    near(arr(logp.grad as Tensor)[0], 0, 0);
  });

  test("CISPO normalises by the whole batch's active tokens, like dapo", () => {
    const x = { perTokenLogps: f64([[-1, -2, -3]]), advantages: f64([1]), completionMask: f64([[1, 1, 0]]), numItemsInBatch: 4 };
    // ratio 1, weight 1: loss = -A (log p1 + log p2) / 4
    near(grpoLoss(x, { lossType: "cispo", epsilonHigh: 5 }).loss.item(), 3 / 4, 1e-12);
  });

  test("SAPO: -(4/tau) sigmoid(tau (w - 1)) A; at w = 1 the value is -2A/tau and the gradient is -A; tau 1 / 1.05 by the sign of A", () => {
    for (const a of [1, -1, 0.4]) {
      const logp = f64([[-0.3]], true);
      const out = grpoLoss({ perTokenLogps: logp, advantages: f64([a]), completionMask: f64([[1]]) }, { lossType: "sapo" });
      const tau = a > 0 ? 1 : 1.05;
      near(out.loss.item(), (-2 * a) / tau, 1e-12, `value at A = ${a}`);
      out.loss.backward();
      near(arr(logp.grad as Tensor)[0], -a, 1e-12, `gradient at A = ${a}`);
    }
    // w = 2, A = 1: -4 sigmoid(1); gradient d/dlog pi = -4 sigmoid'(1) w = -8 s (1 - s)
    const logp = f64([[Math.log(0.5)]], true);
    const out = grpoLoss(
      { perTokenLogps: logp, oldPerTokenLogps: f64([[Math.log(0.25)]]), advantages: f64([1]), completionMask: f64([[1]]) },
      { lossType: "sapo" },
    );
    near(out.loss.item(), -4 * sig(1), 1e-12);
    out.loss.backward();
    near(arr(logp.grad as Tensor)[0], -8 * sig(1) * (1 - sig(1)), 1e-12);
  });

  test("SAPO aggregates per sequence then over sequences (TRL groups it with grpo)", () => {
    // ratio 1, tau 1: per-token -2A; row 0 two tokens, row 1 one token -> mean over rows of -2A
    const x = {
      perTokenLogps: f64([
        [-1, -1],
        [-1, -9],
      ]),
      advantages: f64([1, 3]),
      completionMask: f64([
        [1, 1],
        [1, 0],
      ]),
    };
    near(grpoLoss(x, { lossType: "sapo" }).loss.item(), (-2 - 6) / 2, 1e-12);
  });

  test("unknown loss type and bad SAPO temperatures are errors", () => {
    const x = { perTokenLogps: f64([[-1]]), advantages: f64([1]), completionMask: f64([[1]]) };
    assert.throws(() => grpoLoss(x, { lossType: "vespo" as never }), /lossType must be one of .*cispo, sapo/);
    assert.throws(() => grpoLoss(x, { lossType: "sapo", sapoTemperatureNeg: 0 }), LossError);
  });
});

describe("entropy bonus and rollout-correction weights in grpoLoss", () => {
  test("loss = policy loss - entropyCoef * mean token entropy; d loss / d entropy = -coef / N", () => {
    const ent = f64([[0.5, 1.5, 9]], true);
    const x = { perTokenLogps: f64([[-1, -2, -3]]), advantages: f64([2]), completionMask: f64([[1, 1, 0]]), entropies: ent };
    const out = grpoLoss(x, { lossType: "bnpo", entropyCoef: 0.1 });
    near(out.policyLoss.item(), -2, 1e-12); // ratio 1: -A over the two counted tokens
    near(out.loss.item(), -2 - 0.1 * 1, 1e-12); // mean entropy of counted tokens = 1
    out.loss.backward();
    allNear(arr(ent.grad as Tensor), [-0.05, -0.05, 0], 1e-12);
    // dapo: the entropy sum is divided by the global token count, as the policy term
    const y = grpoLoss({ ...x, entropies: f64([[0.5, 1.5, 9]]), numItemsInBatch: 4 }, { lossType: "dapo", entropyCoef: 0.1 });
    near(y.loss.item(), (-2 * 2) / 4 - (0.1 * 2) / 4, 1e-12);
    assert.throws(() => grpoLoss({ ...x, entropies: undefined }, { entropyCoef: 0.1 }), /needs entropies/);
  });

  test("importance-sampling weights multiply the per-token policy loss before the KL term", () => {
    const x = {
      perTokenLogps: f64([[-1, -2]]),
      refPerTokenLogps: f64([[-1, -2]]), // KL 0 at these points
      advantages: f64([1]),
      completionMask: f64([[1, 1]]),
      importanceSamplingWeights: f64([[0.5, 0]]),
    };
    near(grpoLoss(x, { lossType: "bnpo", beta: 0.3 }).loss.item(), (-0.5 - 0) / 2, 1e-12);
    near(grpoLoss({ ...x, importanceSamplingWeights: f64([[2]]) }, { lossType: "bnpo" }).loss.item(), -2, 1e-12);
    assert.throws(() => grpoLoss({ ...x, importanceSamplingWeights: f64([[1, 1, 1]]) }), /importanceSamplingWeights/);
  });
});

describe("PPO with rollout-correction weights", () => {
  test("the per-token policy loss is multiplied by the weights before the masked mean; the value loss is not", () => {
    const mask = f64([[1, 1, 0]]);
    const x = {
      logprobs: f64([[-1, -2, -3]], true),
      oldLogprobs: f64([[-1, -2, -3]]),
      values: f64([[0.5, 0.5, 0.5]]),
      oldValues: f64([[0.5, 0.5, 0.5]]),
      advantages: f64([[2, -1, 7]]),
      returns: f64([[1, 1, 1]]),
      mask,
    };
    const plain = ppoLoss(x, { whitenAdvantages: false });
    near(plain.pgLoss.item(), (-2 + 1) / 2, 1e-12); // ratio 1: -A
    const weighted = ppoLoss({ ...x, importanceSamplingWeights: f64([[0.5, 3, 9]]) }, { whitenAdvantages: false });
    near(weighted.pgLoss.item(), (-2 * 0.5 + 1 * 3) / 2, 1e-12);
    near(weighted.vfLoss.item(), plain.vfLoss.item(), 0);
    near(ppoLoss({ ...x, importanceSamplingWeights: f64([[0]]) }, { whitenAdvantages: false }).pgLoss.item(), 0, 0);
  });
});

describe("rollout correction (TRL vllm_importance_sampling_mode)", () => {
  // per-token log ratios log pi_train - log pi_sampling: row 0 [ln 2, ln 4], row 1 [ln 0.5, (masked)]
  const train = f64([
    [Math.log(0.2), Math.log(0.4)],
    [Math.log(0.1), -1],
  ]);
  const sampling = f64([
    [Math.log(0.1), Math.log(0.1)],
    [Math.log(0.2), -7],
  ]);
  const mask = f64([
    [1, 1],
    [1, 0],
  ]);
  const x = { trainLogps: train, samplingLogps: sampling, mask };

  test("token_truncate clamps each ratio into [floor, cap]; token_mask zeroes ratios outside", () => {
    allNear(arr(rolloutCorrection(x, { mode: "token_truncate", cap: 3, floor: null }).weights), [2, 3, 0.5, Math.exp(6) > 3 ? 3 : 0], 1e-6);
    allNear(arr(rolloutCorrection(x, { mode: "token_truncate", cap: 3, floor: 0.6 }).weights).slice(0, 3), [2, 3, 0.6], 1e-6);
    allNear(arr(rolloutCorrection(x, { mode: "token_mask", cap: 3, floor: null }).weights).slice(0, 3), [2, 0, 0.5], 1e-6);
  });

  test("sequence modes use the product of the counted tokens' ratios, one weight per row", () => {
    const t = rolloutCorrection(x, { mode: "sequence_truncate", cap: 3, floor: null });
    assert.deepEqual(t.weights.shape, [2, 1]);
    allNear(arr(t.weights), [3, 0.5], 1e-6); // row 0: 2 * 4 = 8 -> 3
    const m = rolloutCorrection(x, { mode: "sequence_mask", cap: 10, floor: 0.6 });
    allNear(arr(m.weights), [8, 0], 1e-6);
    near(m.metrics["rollout_corr/masked_fraction"], 0.5, 1e-12);
    near(m.metrics["sampling/importance_sampling_ratio/max"], 8, 1e-6);
  });

  test("metrics: |log ratio| mean / max over counted tokens, KL(sampling || train), k3, chi-square", () => {
    const d = [Math.log(2), Math.log(4), Math.log(0.5)];
    const m = rolloutCorrection(x, { mode: "token_truncate" }).metrics;
    near(m["sampling/sampling_logp_difference/mean"], d.reduce((a, v) => a + Math.abs(v), 0) / 3, 1e-6);
    near(m["sampling/sampling_logp_difference/max"], Math.log(4), 1e-6);
    near(m["rollout_corr/kl"], -(d[0] + d[1] + d[2]) / 3, 1e-6);
    near(m["rollout_corr/k3_kl"], d.reduce((a, v) => a + Math.exp(v) - v - 1, 0) / 3, 1e-6);
    near(m["rollout_corr/chi2_token"], (4 + 16 + 0.25) / 3 - 1, 1e-5);
    near(m["rollout_corr/chi2_seq"], (64 + 0.25) / 2 - 1, 1e-4);
    assert.throws(() => rolloutCorrection(x, { mode: "token" as never }), /mode must be one of/);
    assert.throws(() => rolloutCorrection(x, { cap: 1, floor: 2 }), /floor/);
  });
});

describe("REINFORCE++ advantages (OpenRLHF)", () => {
  test("returns-to-go whitened over all counted tokens; the group-mean baseline variant", () => {
    const mask = f64([
      [1, 1],
      [1, 1],
    ]);
    // rewards 1 and 0, no KL: returns [1, 1, 0, 0] -> mean 0.5, biased std 0.5 -> [1, 1, -1, -1]
    allNear(arr(reinforcePlusPlusAdvantages({ rewards: f64([1, 0]), mask })), [1, 1, -1, -1], 1e-9);
    allNear(
      arr(reinforcePlusPlusAdvantages({ rewards: f64([3, 1]), mask }, { baseline: "group_mean", numGenerations: 2 })),
      [1, 1, -1, -1],
      1e-9,
    );
  });

  test("per-token KL penalty and the score at the last real token, discounted; padding stays 0", () => {
    // row 0: 3 tokens, kl [0.1, 0.2, 0.3], r = 1, klCoef 0.5: token rewards [-.05, -.1, -.15 + 1]; row 1: 1 token, r = 0, kl 0.2
    const mask = f64([
      [1, 1, 1],
      [1, 0, 0],
    ]);
    const kl = f64([
      [0.1, 0.2, 0.3],
      [0.2, 5, 5],
    ]);
    const gamma = 0.9;
    const r0 = [-0.05, -0.1, 0.85];
    const g2 = r0[2];
    const g1 = r0[1] + gamma * g2;
    const g0 = r0[0] + gamma * g1;
    const ret = [g0, g1, g2, -0.1];
    const mu = ret.reduce((a, b) => a + b, 0) / 4;
    const sd = Math.sqrt(ret.reduce((a, b) => a + (b - mu) ** 2, 0) / 4);
    const got = arr(reinforcePlusPlusAdvantages({ rewards: f64([1, 0]), mask, kl }, { klCoef: 0.5, gamma }));
    allNear(got, [(g0 - mu) / sd, (g1 - mu) / sd, (g2 - mu) / sd, (-0.1 - mu) / sd, 0, 0], 1e-9);
    assert.throws(() => reinforcePlusPlusAdvantages({ rewards: f64([1, 0]), mask }, { klCoef: 0.5 }), /needs kl/);
    assert.throws(
      () =>
        reinforcePlusPlusAdvantages({ rewards: f64([1, 0, 1]), mask: f64([[1], [1], [1]]) }, { baseline: "group_mean", numGenerations: 2 }),
      /groups/,
    );
  });
});

describe("GKD generalized JSD (TRL GKDTrainer.generalized_jsd_loss)", () => {
  // one position, vocab 2: student p = [.5, .5], teacher p = [.75, .25]
  const s = () => f64([[[0, 0]]], true);
  const t = f64([[[Math.log(3), 0]]]);
  const mask = f64([[1]]);
  const kl = (p: number[], q: number[]) => p.reduce((a, pi, i) => a + pi * Math.log(pi / q[i]), 0);
  const ps = [0.5, 0.5];
  const pt = [0.75, 0.25];

  test("beta 0 is KL(teacher || student), with gradient p_s - p_t on the student logits", () => {
    const logits = s();
    const out = gkdLoss({ studentLogits: logits, teacherLogits: t, mask }, { beta: 0 });
    near(out.loss.item(), kl(pt, ps), 1e-12);
    near(out.loss.item(), 0.130812035, 1e-8);
    out.loss.backward();
    allNear(arr(logits.grad as Tensor), [0.5 - 0.75, 0.5 - 0.25], 1e-12);
  });

  test("beta 1 is KL(student || teacher), with gradient p_i (log p_i/t_i - KL)", () => {
    const logits = s();
    const out = gkdLoss({ studentLogits: logits, teacherLogits: t, mask }, { beta: 1 });
    const k = kl(ps, pt);
    near(out.loss.item(), k, 1e-12);
    out.loss.backward();
    allNear(
      arr(logits.grad as Tensor),
      ps.map((p, i) => p * (Math.log(p / pt[i]) - k)),
      1e-12,
    );
  });

  test("beta 0.5: beta KL(t || M) + (1 - beta) KL(s || M) with M the mixture; beta 0.9 too", () => {
    for (const beta of [0.5, 0.9]) {
      const m = ps.map((p, i) => (1 - beta) * p + beta * pt[i]);
      const want = beta * kl(pt, m) + (1 - beta) * kl(ps, m);
      near(gkdLoss({ studentLogits: s(), teacherLogits: t, mask }, { beta }).loss.item(), want, 1e-12, `beta ${beta}`);
    }
    near(gkdLoss({ studentLogits: s(), teacherLogits: t, mask }, { beta: 0.5 }).loss.item(), 0.033822, 1e-6);
  });

  test("masked positions are excluded and the mean is over counted positions (or numItemsInBatch); temperature divides both", () => {
    const logits = f64(
      [
        [
          [0, 0],
          [5, -5],
        ],
      ],
      true,
    );
    const teacher = f64([
      [
        [Math.log(3), 0],
        [0, 0],
      ],
    ]);
    const out = gkdLoss({ studentLogits: logits, teacherLogits: teacher, mask: f64([[1, 0]]) }, { beta: 0 });
    near(out.loss.item(), kl(pt, ps), 1e-12);
    near(
      gkdLoss({ studentLogits: logits, teacherLogits: teacher, mask: f64([[1, 0]]), numItemsInBatch: 4 }, { beta: 0 }).loss.item(),
      kl(pt, ps) / 4,
      1e-12,
    );
    // temperature 2: teacher logits [ln 3 / 2, 0] -> p = [sqrt 3, 1] / (sqrt 3 + 1)
    const r = Math.sqrt(3) / (Math.sqrt(3) + 1);
    near(gkdLoss({ studentLogits: s(), teacherLogits: t, mask }, { beta: 0, temperature: 2 }).loss.item(), kl([r, 1 - r], ps), 1e-12);
    assert.throws(() => gkdLoss({ studentLogits: s(), teacherLogits: t, mask }, { beta: 1.5 }), /beta must be in \[0, 1\]/);
    assert.throws(() => gkdLoss({ studentLogits: s(), teacherLogits: f64([[[0, 0, 0]]]), mask }), /teacherLogits/);
  });
});

describe("reverse-KL on-policy distillation", () => {
  test("advantages log pi_teacher - log pi_student on counted tokens; through grpoLoss the gradient is (log pi_s - log pi_t) / N", () => {
    const student = f64([[-1, -2, -0.5]], true);
    const teacher = f64([[-1.5, -1, -4]]);
    const mask = f64([[1, 1, 0]]);
    const adv = reverseKlAdvantages({ studentLogps: student, teacherLogps: teacher, mask });
    allNear(arr(adv), [-0.5, 1, 0], 1e-12);
    near(sampledReverseKl({ studentLogps: student, teacherLogps: teacher, mask }), (0.5 - 1) / 2, 1e-12);
    const out = grpoLoss({ perTokenLogps: student, advantages: adv, completionMask: mask }, { lossType: "bnpo" });
    out.loss.backward();
    allNear(arr(student.grad as Tensor), [0.5 / 2, -1 / 2, 0], 1e-12);
  });
});
