// Invariants and hand-computed goldens for src/losses (shared/reference/alignment-methods.md section 5):
// closed forms at policy == reference, worked examples, GRPO / GSPO / RLOO / PPO / GAE identities, masking,
// accumulation (two halves with a global dapo normaliser equal the whole), config validation. f64 on `ref`.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import {
  bradleyTerryLoss,
  cpoLoss,
  DPO_LOSSES,
  type DpoLossType,
  dpoLoss,
  type GrpoLossType,
  gae,
  grpoAdvantages,
  grpoLoss,
  klEstimator,
  ktoLoss,
  LossError,
  orpoLoss,
  ppoLoss,
  prmStepLoss,
  processAdvantages,
  rlooAdvantages,
} from "../src/losses/index.js";
import { slice, type Tensor, tensor } from "../src/tensor/index.js";

setBackend("ref");

const f64 = (x: number[] | number[][], requiresGrad = false) => tensor(x, { dtype: "f64", requiresGrad });
const arr = (t: Tensor) => Array.from(t.data as Float64Array);

function near(got: number, want: number, tol = 1e-6, what = "value"): void {
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);
}

function allNear(got: ArrayLike<number>, want: readonly number[], tol = 1e-6, what = "values"): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) near(got[i], want[i], tol, `${what}[${i}]`);
}

/** Policy == reference: Delta_c = Delta_r = 0 for every pair. */
function equalPair(requiresGrad = false) {
  const pc = f64([-10, -7, -3], requiresGrad);
  const pr = f64([-12, -2, -9], requiresGrad);
  return { policyChosenLogps: pc, policyRejectedLogps: pr, refChosenLogps: f64([-10, -7, -3]), refRejectedLogps: f64([-12, -2, -9]) };
}

describe("DPO family", () => {
  // section 5 closed forms at initialisation, beta = 0.1
  const AT_INIT: Partial<Record<DpoLossType, number>> = {
    sigmoid: Math.LN2,
    robust: Math.LN2,
    aot: Math.LN2,
    aot_unpaired: Math.LN2,
    sigmoid_norm: Math.LN2,
    hinge: 1,
    ipo: 25,
    sppo_hard: 50,
    nca_pair: 2 * Math.LN2,
    bco_pair: 2 * Math.LN2,
    apo_zero: 1,
    apo_down: 1,
    discopop: 0.5 * Math.LN2 + 0.5,
    exo_pair: 2.761231,
  };

  test("sigmoid loss is ln 2 when policy equals reference, with gradient -beta/2 per pair / B", () => {
    const x = equalPair(true);
    const { loss, chosenRewards } = dpoLoss(x, { lossType: "sigmoid", beta: 0.1 });
    near(loss.item(), Math.LN2, 1e-12);
    allNear(arr(chosenRewards), [0, 0, 0]);
    loss.backward();
    allNear(arr(x.policyChosenLogps.grad as Tensor), [-0.05 / 3, -0.05 / 3, -0.05 / 3], 1e-12);
    allNear(arr(x.policyRejectedLogps.grad as Tensor), [0.05 / 3, 0.05 / 3, 0.05 / 3], 1e-12);
  });

  for (const [type, want] of Object.entries(AT_INIT)) {
    test(`${type} at policy == reference is ${want.toFixed(6)}`, () => {
      const cfg = { lossType: type as DpoLossType, beta: 0.1, labelSmoothing: type === "exo_pair" ? 1e-3 : 0 };
      near(dpoLoss(equalPair(), cfg).loss.item(), want, 1e-6);
    });
  }

  test("every DPO loss type except sft has a closed form checked above", () => {
    const types = Object.keys(DPO_LOSSES).filter((t) => t !== "sft");
    for (const t of types) assert.ok(t in AT_INIT, `no init golden for ${t}`);
  });

  test("worked example: Delta_c = 1, Delta_r = -0.5", () => {
    const x = {
      policyChosenLogps: f64([-10]),
      policyRejectedLogps: f64([-12]),
      refChosenLogps: f64([-11]),
      refRejectedLogps: f64([-11.5]),
    };
    near(dpoLoss(x, { lossType: "sigmoid" }).loss.item(), 0.620957);
    near(dpoLoss(x, { lossType: "hinge" }).loss.item(), 0.85, 1e-12);
    near(dpoLoss(x, { lossType: "robust", labelSmoothing: 0.1 }).loss.item(), 0.602207);
  });

  test("a loss list is sum_k w_k mean(L_k); sft adds the chosen token-mean NLL", () => {
    const x = {
      ...equalPair(),
      chosenTokenLogps: f64([
        [-1, -2, 0],
        [-3, 0, 0],
        [-0.5, -0.5, -0.5],
      ]),
      chosenMask: f64([
        [1, 1, 0],
        [1, 0, 0],
        [1, 1, 1],
      ]),
    };
    const nll = (1 + 2 + 3 + 1.5) / 6;
    const out = dpoLoss(x, { lossType: ["sigmoid", "sft"], lossWeights: [1, 0.5] });
    near(out.loss.item(), Math.LN2 + 0.5 * nll, 1e-12);
    near(arr(out.losses).reduce((a, b) => a + b) / 3, out.loss.item(), 1e-12, "mean(losses)");
    const viaScalar = dpoLoss({ ...equalPair(), chosenNll: f64([nll]) }, { lossType: ["sigmoid", "sft"], lossWeights: [1, 0.5] });
    near(viaScalar.loss.item(), out.loss.item(), 1e-12);
  });

  test("f-divergences: forward_kl and js change the margin as g(u) says", () => {
    const x = {
      policyChosenLogps: f64([-10]),
      policyRejectedLogps: f64([-12]),
      refChosenLogps: f64([-11]),
      refRejectedLogps: f64([-11.5]),
    };
    const softplus = (z: number) => Math.log1p(Math.exp(z));
    const fwd = -Math.exp(-1) + Math.exp(0.5); // g(1) - g(-0.5) with g(u) = -e^-u
    near(dpoLoss(x, { fDivergenceType: "forward_kl" }).loss.item(), softplus(-0.1 * fwd), 1e-12);
    const ls = (u: number) => -softplus(-u);
    near(dpoLoss(x, { fDivergenceType: "js_divergence" }).loss.item(), softplus(-0.1 * (ls(1) - ls(-0.5))), 1e-12);
    const alpha = (u: number) => Math.exp(-0.5 * u) / -0.5;
    near(dpoLoss(x, { fDivergenceType: "alpha_divergence" }).loss.item(), softplus(-0.1 * (alpha(1) - alpha(-0.5))), 1e-12);
  });

  test("bad configs are rejected with the component named", () => {
    assert.throws(() => dpoLoss(equalPair(), { lossType: "nope" as DpoLossType }), /\[dpoLoss\] lossType must be one of/);
    assert.throws(() => dpoLoss(equalPair(), { betaa: 1 } as never), /\[dpoLoss\] unknown config key 'betaa'/);
    assert.throws(() => dpoLoss(equalPair(), { lossType: ["sigmoid"], lossWeights: [1, 2] }), LossError);
    assert.throws(() => dpoLoss(equalPair(), { lossType: "sft" }), /needs chosenTokenLogps/);
  });
});

describe("KTO, ORPO, CPO, reward, PRM", () => {
  test("KTO worked examples and 0.5 at z0 = 0", () => {
    const kl = { policyKlLogps: f64([-1, -2]), refKlLogps: f64([-1.2, -2.2]) }; // mean 0.2
    const out = ktoLoss({
      policyChosenLogps: f64([-4.5]),
      refChosenLogps: f64([-5]),
      policyRejectedLogps: f64([-5.3]),
      refRejectedLogps: f64([-5]),
      ...kl,
    });
    near(out.kl.item(), 0.2, 1e-12);
    allNear(arr(out.losses), [0.492501, 0.487503]);
    const init = ktoLoss({
      policyChosenLogps: f64([-4]),
      refChosenLogps: f64([-4]),
      policyRejectedLogps: f64([-3]),
      refRejectedLogps: f64([-3]),
      policyKlLogps: f64([-1]),
      refKlLogps: f64([-0.5]),
    });
    near(init.kl.item(), 0, 0, "negative KL is clamped to 0");
    allNear(arr(init.losses), [0.5, 0.5], 1e-12);
  });

  test("ORPO odds-ratio term and SimPO worked examples", () => {
    const c = f64([-0.5]);
    const r = f64([-0.9]);
    const o = orpoLoss({ chosenAvgLogps: c, rejectedAvgLogps: r, nllLoss: f64([0]) });
    near(o.logOdds.item(), 0.810917);
    near(o.loss.item(), 0.036773);
    near(cpoLoss({ chosenLogps: c, rejectedLogps: r }, { lossType: "simpo", beta: 2, simpoGamma: 0.5, cpoAlpha: 0 }).loss.item(), 0.554355);
  });

  test("reward: equal scores give ln 2; margin shifts the logit", () => {
    near(bradleyTerryLoss({ rewardsChosen: f64([0.3, -1]), rewardsRejected: f64([0.3, -1]) }).loss.item(), Math.LN2, 1e-12);
    const withMargin = bradleyTerryLoss({ rewardsChosen: f64([1]), rewardsRejected: f64([0]), margin: f64([1]) });
    near(withMargin.loss.item(), Math.LN2, 1e-12);
  });

  test("PRM: -100 labels are ignored", () => {
    const out = prmStepLoss({ stepLogits: f64([0, 5, 0]), labels: f64([1, -100, 0]) });
    near(out.loss.item(), Math.LN2, 1e-12);
  });
});

/** A GRPO batch of 2 groups of 3 completions, T = 4, with ragged masks. */
function grpoBatch(rewards: number[]) {
  const logp = f64(
    [
      [-0.3, -1.2, -0.8, -2.0],
      [-0.9, -0.1, -1.5, -0.7],
      [-1.1, -0.6, -0.2, -0.4],
      [-0.5, -0.5, -1.9, -1.0],
      [-2.2, -0.3, -0.6, -0.9],
      [-0.7, -1.4, -0.1, -0.3],
    ],
    true,
  );
  const old = f64([
    [-0.4, -1.0, -0.9, -2.1],
    [-0.8, -0.3, -1.4, -0.6],
    [-1.0, -0.7, -0.3, -0.5],
    [-0.6, -0.4, -1.7, -1.2],
    [-2.0, -0.4, -0.5, -1.0],
    [-0.9, -1.2, -0.2, -0.2],
  ]);
  const mask = f64([
    [1, 1, 1, 1],
    [1, 1, 0, 0],
    [1, 1, 1, 0],
    [1, 0, 0, 0],
    [1, 1, 1, 1],
    [1, 1, 0, 0],
  ]);
  const advantages = grpoAdvantages(f64(rewards), { numGenerations: 3 });
  return {
    perTokenLogps: logp,
    oldPerTokenLogps: old,
    refPerTokenLogps: f64(old.toArray() as number[][]),
    completionMask: mask,
    advantages,
  };
}

describe("GRPO / GSPO", () => {
  test("section 5 advantages for group rewards [1, 0, 0, 0]", () => {
    allNear(arr(grpoAdvantages(f64([1, 0, 0, 0]), { numGenerations: 4 })), [1.4997, -0.4999, -0.4999, -0.4999], 1e-4);
  });

  for (const lossType of ["grpo", "bnpo", "dr_grpo", "dapo"] as GrpoLossType[]) {
    test(`${lossType}: equal rewards in every group give zero advantages and zero gradient (beta = 0)`, () => {
      const x = grpoBatch([0.7, 0.7, 0.7, -1, -1, -1]);
      allNear(arr(x.advantages), [0, 0, 0, 0, 0, 0], 0);
      const { loss } = grpoLoss(x, { lossType, beta: 0, maxCompletionLength: 4 });
      near(loss.item(), 0, 1e-15);
      loss.backward();
      allNear(arr(x.perTokenLogps.grad as Tensor), new Array(24).fill(0), 1e-15);
    });

    test(`${lossType}: all-masked completions give zero loss and zero gradient`, () => {
      const x = grpoBatch([1, 0, 0.5, 0.2, 0.9, 0.1]);
      const zeroMask = f64(new Array(6).fill([0, 0, 0, 0]));
      const { loss } = grpoLoss({ ...x, completionMask: zeroMask }, { lossType, beta: 0.04 });
      assert.equal(loss.item(), 0);
      loss.backward();
      allNear(arr(x.perTokenLogps.grad as Tensor), new Array(24).fill(0), 0);
    });
  }

  test("GSPO equals GRPO for one-token completions (loss and gradient)", () => {
    const one = () => {
      const x = grpoBatch([1, 0, 0.5, 0.2, 0.9, 0.1]);
      return {
        ...x,
        perTokenLogps: slice(x.perTokenLogps, 1, 0, 1),
        oldPerTokenLogps: slice(x.oldPerTokenLogps, 1, 0, 1),
        refPerTokenLogps: slice(x.refPerTokenLogps, 1, 0, 1),
        completionMask: slice(x.completionMask, 1, 0, 1),
        leaf: x.perTokenLogps,
      };
    };
    for (const lossType of ["grpo", "dapo"] as GrpoLossType[]) {
      const a = one();
      const b = one();
      const la = grpoLoss(a, { lossType, importanceSamplingLevel: "token", beta: 0.04, epsilonHigh: 0.28 }).loss;
      const lb = grpoLoss(b, { lossType, importanceSamplingLevel: "sequence", beta: 0.04, epsilonHigh: 0.28 }).loss;
      near(lb.item(), la.item(), 1e-14, `${lossType} loss`);
      la.backward();
      lb.backward();
      allNear(arr(b.leaf.grad as Tensor), arr(a.leaf.grad as Tensor), 1e-14, `${lossType} grad`);
    }
  });

  test("on-policy (no old log-probs): ratio 1, dapo loss is -sum(A_i |o_i|) / sum |o_i|", () => {
    const x = grpoBatch([1, 0, 0.5, 0.2, 0.9, 0.1]);
    const { loss } = grpoLoss({ ...x, oldPerTokenLogps: undefined }, { lossType: "dapo" });
    const a = arr(x.advantages);
    const lens = [4, 2, 3, 1, 4, 2];
    near(loss.item(), -a.reduce((s, ai, i) => s + ai * lens[i], 0) / 16, 1e-12);
  });

  test("delta caps the unclipped ratio (two-sided clipping)", () => {
    const base = { perTokenLogps: f64([[1], [1]], true), oldPerTokenLogps: f64([[0], [0]]), completionMask: f64([[1], [1]]) };
    const pos = grpoLoss({ ...base, advantages: f64([1, 1]) }, { lossType: "bnpo", delta: 1.5 });
    near(pos.loss.item(), -1.2, 1e-12); // clipped term wins for A > 0
    const neg = grpoLoss({ ...base, advantages: f64([-1, -1]) }, { lossType: "bnpo", delta: 1.5 });
    near(neg.loss.item(), 1.5, 1e-12); // without delta this would be e = 2.718
    const uncapped = grpoLoss({ ...base, advantages: f64([-1, -1]) }, { lossType: "bnpo" });
    near(uncapped.loss.item(), Math.E, 1e-12);
  });

  test("accumulation: two halves with the global dapo token count sum to the whole batch", () => {
    const whole = grpoBatch([1, 0, 0.5, 0.2, 0.9, 0.1]);
    const cfg = { lossType: "dapo" as const, beta: 0.04 };
    const full = grpoLoss(whole, cfg).loss;
    const halves = [0, 3].map((s) => {
      const x = grpoBatch([1, 0, 0.5, 0.2, 0.9, 0.1]);
      const part = (t: Tensor) => slice(t, 0, s, s + 3);
      return grpoLoss(
        {
          perTokenLogps: part(x.perTokenLogps),
          oldPerTokenLogps: part(x.oldPerTokenLogps),
          refPerTokenLogps: part(x.refPerTokenLogps),
          completionMask: part(x.completionMask),
          advantages: part(x.advantages),
          numItemsInBatch: 16,
        },
        cfg,
      ).loss.item();
    });
    near(halves[0] + halves[1], full.item(), 1e-14);
  });

  test("k3 KL is zero at equality and matches its formula", () => {
    const kl = klEstimator(f64([-1, -2]), f64([-1, -1.5]), "k3");
    allNear(arr(kl), [0, Math.exp(0.5) - 0.5 - 1], 1e-14);
    allNear(arr(klEstimator(f64([-1]), f64([-1.5]), "k1")), [0.5], 1e-14);
    allNear(arr(klEstimator(f64([-1]), f64([-1.5]), "k2")), [0.125], 1e-14);
  });
});

describe("RLOO, PPO, GAE, process supervision", () => {
  test("RLOO with G = 2 is the difference of the two rewards", () => {
    allNear(arr(rlooAdvantages(f64([3, 1, -0.5, 2]), { numGenerations: 2 })), [2, -2, -2.5, 2.5], 1e-14);
    allNear(arr(rlooAdvantages(f64([1, 0, 0, 0]), { numGenerations: 4 })), [1, -1 / 3, -1 / 3, -1 / 3], 1e-14);
  });

  test("PPO with zero advantages gives zero policy gradient (value loss still trains values)", () => {
    const logprobs = f64(
      [
        [-1, -2, -0.5],
        [-0.3, -1.1, -0.9],
      ],
      true,
    );
    const values = f64(
      [
        [0.5, 0.1, -0.2],
        [1, 0.3, 0.2],
      ],
      true,
    );
    const out = ppoLoss({
      logprobs,
      oldLogprobs: f64([
        [-1.1, -1.8, -0.7],
        [-0.2, -1.0, -1.0],
      ]),
      values,
      oldValues: f64([
        [0.4, 0.2, -0.1],
        [0.9, 0.3, 0.4],
      ]),
      advantages: f64([
        [0, 0, 0],
        [0, 0, 0],
      ]),
      returns: f64([
        [1, 1, 1],
        [0, 0, 0],
      ]),
    });
    near(out.pgLoss.item(), 0, 0);
    out.loss.backward();
    allNear(arr(logprobs.grad as Tensor), [0, 0, 0, 0, 0, 0], 0);
    assert.ok(
      arr(values.grad as Tensor).some((v) => v !== 0),
      "value gradient should be nonzero",
    );
  });

  test("GAE with gamma = lam = 1 gives reward-to-go minus value; masked tail is zero", () => {
    const rewards = f64([[1, 2, 3, 9]]);
    const values = f64([[0.5, 0.5, 0.5, 9]]);
    const { advantages, returns } = gae({ rewards, values, mask: f64([[1, 1, 1, 0]]) }, { gamma: 1, lam: 1 });
    allNear(arr(advantages), [5.5, 4.5, 2.5, 0], 1e-14);
    allNear(arr(returns), [6, 5, 3, 0], 1e-14);
  });

  test("processAdvantages: hand example, two groups of two", () => {
    // group 1: step rewards [1, 0] (ends 1, 3) and [1, 1] (ends 0, 2): mean 0.75, Bessel std 0.5
    //   normalised [0.5, -1.5] and [0.5, 0.5]; token advantage = sum over steps ending at or after it
    // group 2: [3] (end 3) and [1] (end 1): mean 2, std sqrt(2), normalised +-1/sqrt(2)
    const adv = processAdvantages([[1, 0], [1, 1], [3], [1]], [[1, 3], [0, 2], [3], [1]], {
      numGenerations: 2,
      completionLength: 4,
      stdEpsilon: 0,
      dtype: "f64",
    });
    const s = Math.SQRT1_2;
    assert.deepEqual(adv.shape, [4, 4]);
    allNear(arr(adv), [-1, -1, -1.5, -1.5, 1, 0.5, 0.5, 0, s, s, s, s, -s, -s, 0, 0], 1e-14);
  });
});
