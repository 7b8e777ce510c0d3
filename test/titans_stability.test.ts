// Titans memory stability (src/models/titans.ts inputNorm + boundedStep): on near-collinear states (every state
// a shared direction plus noise, like a language model's hidden states) the paper's chunked update sums C nearly
// equal gradients into one step C·θ/(1 − η) too large and diverges, and raw-scale inputs saturate the gates and
// blow up the values. With the guards every token's loss and surprise stay finite and the memory still learns;
// the bound leaves the paper's update untouched where it does not bind, and bounds the true curvature.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { backendName, setBackend } from "../src/backend/index.js";
import {
  type MemoryGates,
  type MemoryState,
  memoryForward,
  memoryLoss,
  memoryScan,
  NeuralMemory,
  resolveNeuralMemoryConfig,
} from "../src/models/titans.js";
import { Rng } from "../src/nn/rng.js";
import { full, grad, mul, noGrad, slice, sum, type Tensor, tensor, zeros } from "../src/tensor/index.js";
import { assertClose, gradcheck, randomTensor } from "./helpers/check.js";

const D = 96;
const T = 200;

/** b sequences of T states, each scale · (3·u + N(0, I)) for one shared unit direction u; the T states twice over. */
function collinear(seed: number, b: number, scale: number): { once: Tensor; twice: Tensor } {
  const rng = new Rng(seed);
  const u = Array.from({ length: D }, () => rng.normal());
  const n = Math.hypot(...u);
  const rows = Array.from({ length: b }, () => Array.from({ length: T * D }, (_, i) => scale * ((3 * u[i % D]!) / n + rng.normal())));
  return {
    once: tensor(rows.flat(), { shape: [b, T, D] }),
    twice: tensor(
      rows.flatMap((r) => [...r, ...r]),
      { shape: [b, 2 * T, D] },
    ),
  };
}

const finite = (x: Tensor) => Array.from(x.hostData()).every(Number.isFinite);
const rowMean = (x: Tensor, row: number, from: number, to: number) => {
  const d = x.hostData();
  let s = 0;
  for (let t = from; t < to; t++) s += d[row * x.shape[1] + t]!;
  return s / (to - from);
};

describe("Titans memory on near-collinear states", () => {
  test("loss and surprise stay finite for every token at any scale, batch and chunk size; a second pass has lower loss", () => {
    for (const seed of [0, 1, 2])
      for (const b of [1, 3])
        for (const scale of [1, 100])
          for (const chunkSize of [1, 16]) {
            const what = `seed ${seed} batch ${b} scale ${scale} chunk ${chunkSize}`;
            const mem = new NeuralMemory(resolveNeuralMemoryConfig({ dim: D, chunkSize }), { rng: new Rng(seed + 10) });
            const { twice } = collinear(seed, b, scale);
            const run = noGrad(() => mem.forward(twice));
            assert.ok(finite(run.loss) && finite(run.gradNorm), `${what}: non-finite loss or surprise`);
            for (let r = 0; r < b; r++) {
              const first = rowMean(run.loss, r, 0, T);
              const second = rowMean(run.loss, r, T, 2 * T);
              assert.ok(second < 0.95 * first, `${what} row ${r}: mean loss ${first.toFixed(3)} then ${second.toFixed(3)} on the repeat`);
            }
          }
  });

  test("without the guards (the paper's exact update on raw states) the same states diverge", () => {
    // the failure this file guards against: if these stop diverging, the test above no longer shows anything
    const paper = (chunkSize: number) =>
      new NeuralMemory(resolveNeuralMemoryConfig({ dim: D, chunkSize, inputNorm: false, boundedStep: false }), { rng: new Rng(12) });
    assert.ok(!finite(noGrad(() => paper(16).forward(collinear(2, 1, 1).once).loss)), "chunk 16, raw scale");
    assert.ok(!finite(noGrad(() => paper(1).forward(collinear(2, 1, 100).once).loss)), "chunk 1, 100x scale");
    // the step bound alone (input norm on) is what keeps chunk 16 finite
    const normOnly = new NeuralMemory(resolveNeuralMemoryConfig({ dim: D, chunkSize: 16, boundedStep: false }), { rng: new Rng(12) });
    assert.ok(!finite(noGrad(() => normOnly.forward(collinear(2, 1, 1).once).loss)), "chunk 16, input norm only");
  });

  test("inputNorm: the memory reads x and 100·x alike", () => {
    const mem = new NeuralMemory(resolveNeuralMemoryConfig({ dim: D }), { rng: new Rng(3) });
    const { once } = collinear(4, 2, 1);
    const a = noGrad(() => mem.forward(slice(once, 1, 0, 40)));
    const b = noGrad(() => mem.forward(mul(slice(once, 1, 0, 40), 100)));
    assertClose(b.loss, a.loss, { rtol: 1e-4, atol: 1e-5, what: "loss" });
    assertClose(b.gradNorm, a.gradNorm, { rtol: 1e-4, atol: 1e-5, what: "surprise" });
  });
});

describe("Titans memory: the step bound (f64, ref)", () => {
  let prev: string;
  before(() => {
    prev = backendName();
    setBackend("ref");
  });
  after(() => setBackend(prev as "ref"));

  const B = 2;
  const DK = 3;
  const DV = 2;
  const DM = 4;
  const f64 = (shape: number[], seed: number, scale = 1) => mul(randomTensor(shape, { seed, dtype: "f64" }), scale);
  const state = (seed: number): MemoryState => ({
    w1: f64([B, DM, DK], seed, 0.8),
    w2: f64([B, DV, DM], seed + 1, 0.8),
    s1: zeros([B, DM, DK], "f64"),
    s2: zeros([B, DV, DM], "f64"),
  });
  const gates = (n: number, theta: number, eta: number, alpha: number): MemoryGates => ({
    theta: full([B, n], theta, "f64"),
    eta: full([B, n], eta, "f64"),
    alpha: full([B, n], alpha, "f64"),
  });

  test("where it does not bind, the bounded scan is the paper's update bit for bit", () => {
    const k = f64([B, 7, DK], 2);
    const v = f64([B, 7, DV], 3);
    const g = gates(7, 1e-3, 0.6, 0.1);
    const exact = memoryScan(state(1), { k, v }, g, 3);
    const bounded = memoryScan(state(1), { k, v }, g, 3, { boundedStep: true });
    assert.deepEqual(Array.from(bounded.stepScale.data), new Array(B * 7).fill(1));
    for (const key of ["w1", "w2", "s1", "s2"] as const)
      assert.deepEqual(Array.from(bounded.state[key].data), Array.from(exact.state[key].data));
    // with a large step it binds, and only then
    const big = memoryScan(state(1), { k, v }, gates(7, 5, 0.6, 0.1), 3, { boundedStep: true });
    assert.ok(Array.from(big.stepScale.data).every((r) => r > 0 && r < 1));
  });

  test("the per-token curvature bound is at least the Gauss-Newton λ_max of ℓ w.r.t. (W1, W2)", () => {
    const s = state(5);
    const k = f64([B, 1, DK], 6);
    const v = f64([B, 1, DV], 7);
    const theta = 1e3; // binds: ρ = 1 / (θ L)
    const rho = memoryScan(s, { k, v }, gates(1, theta, 0, 0), 1, { boundedStep: true }).stepScale.data;
    // J rows: ∂y_j/∂(W1, W2) per sequence (rows of the batch have their own weights)
    const w1 = noGrad(() => mul(s.w1, 1));
    const w2 = noGrad(() => mul(s.w2, 1));
    w1.requiresGrad = true;
    w2.requiresGrad = true;
    const rows = Array.from({ length: DV }, (_, j) => grad(() => sum(slice(memoryForward({ w1, w2 }, k), 2, j, j + 1)), [w1, w2]).grads);
    for (let b = 0; b < B; b++) {
      const dot = (i: number, j: number) => {
        let acc = 0;
        for (const [p, n] of [
          [0, DM * DK],
          [1, DV * DM],
        ] as const)
          for (let e = 0; e < n; e++) acc += rows[i]![p]!.data[b * n + e]! * rows[j]![p]!.data[b * n + e]!;
        return acc;
      };
      const [a, c, d] = [dot(0, 0), dot(0, 1), dot(1, 1)];
      const lamMax = 2 * ((a + d) / 2 + Math.sqrt(((a - d) / 2) ** 2 + c * c)); // of 2JJᵀ (= that of 2JᵀJ)
      const bound = 1 / (rho[b]! * theta);
      assert.ok(bound >= lamMax * (1 - 1e-12), `row ${b}: bound ${bound} < λ_max ${lamMax}`);
      assert.ok(bound <= 2 * (a + d) + 1e-9, `row ${b}: bound ${bound} looser than 2·trace ${2 * (a + d)}`);
    }
  });

  test("a token repeated with a huge θ: the bounded memory stores it, the paper's update blows up and does not", () => {
    // the bound caps the step at the minimum of the linearised (Gauss-Newton) model, so the true loss may rise on
    // the first, largest step (the layers' bilinear term), but the memory converges instead of exploding
    const k1 = f64([B, 1, DK], 11);
    const v1 = f64([B, 1, DV], 12);
    const n = 30;
    const rep = (x: Tensor) => {
      const w = x.shape[2];
      const rows = Array.from({ length: B }, (_, b) => Array.from(x.data.slice(b * w, (b + 1) * w)));
      return tensor(
        rows.flatMap((r) => Array.from({ length: n }, () => r).flat()),
        { dtype: "f64", shape: [B, n, w] },
      );
    };
    const k = rep(k1);
    const v = rep(v1);
    const start = memoryLoss(state(10), k1, v1).data;
    for (const [chunk, eta] of [
      [1, 0],
      [1, 0.5],
      [5, 0.5],
    ] as const) {
      const what = `chunk ${chunk} η ${eta}`;
      const g = gates(n, 50, eta, 0);
      const bounded = memoryScan(state(10), { k, v }, g, chunk, { boundedStep: true });
      const end = memoryLoss(bounded.state, k1, v1).data;
      const paper = memoryScan(state(10), { k, v }, g, chunk);
      const paperEnd = memoryLoss(paper.state, k1, v1).data;
      for (let b = 0; b < B; b++) {
        const seen = Array.from(bounded.loss.data.slice(b * n, (b + 1) * n));
        assert.ok(Math.max(...seen) < 10 * start[b]!, `${what} row ${b}: ℓ peaked at ${Math.max(...seen)} from ${start[b]}`);
        assert.ok(end[b]! < 1e-2 * start[b]!, `${what} row ${b}: ℓ ${start[b]} -> ${end[b]}`);
        // unbounded: the first steps blow the loss up by 60x to 1e20, then the silu units are dead and nothing is stored
        const paperPeak = Math.max(...Array.from(paper.loss.data.slice(b * n, (b + 1) * n)));
        assert.ok(
          paperPeak > 10 * start[b]! && paperEnd[b]! > 0.1 * start[b]!,
          `${what} row ${b}: unbounded peak ${paperPeak}, end ${paperEnd[b]}`,
        );
      }
    }
  });

  test("the bounded scan is differentiable (finite differences where the bound binds)", () => {
    const k = mul(randomTensor([B, 5, DK], { seed: 21, dtype: "f64" }), 1);
    const v = mul(randomTensor([B, 5, DV], { seed: 22, dtype: "f64" }), 1);
    const th = full([B, 5], 2, "f64");
    const w1 = f64([B, DM, DK], 23, 0.8);
    for (const x of [k, v, th, w1]) x.requiresGrad = true;
    const g = gates(5, 0, 0.5, 0.1);
    const probe = memoryScan({ ...state(20), w1 }, { k, v }, { ...g, theta: th }, 2, { boundedStep: true });
    assert.ok(
      Array.from(probe.stepScale.data).every((r) => r < 1),
      "the bound must bind for this check",
    );
    gradcheck(
      (kk, vv, tt, ww) => {
        const r = memoryScan({ ...state(20), w1: ww }, { k: kk, v: vv }, { ...g, theta: tt }, 2, { boundedStep: true });
        return sum(mul(r.state.w2, r.state.w2)).add(sum(r.loss)).add(sum(r.state.w1));
      },
      [k, v, th, w1],
      { atol: 1e-6, rtol: 1e-5, what: "bounded memoryScan" },
    );
  });
});
