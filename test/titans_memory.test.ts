// Titans neural memory (src/models/titans.ts): the closed-form per-token surprise against autograd in float64 on
// `ref`, finite-difference gradients through the chunked scan, chunked = sequential reference, memorisation,
// forgetting, momentum on a hand example, planted-deviation surprise (AUROC), and the MAG model wrapper.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { backendName, setBackend } from "../src/backend/index.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { CausalLM } from "../src/models/causal_lm.js";
import {
  type MemoryGates,
  type MemoryState,
  memoryForward,
  memoryGrad,
  memoryLoss,
  memoryScan,
  NeuralMemory,
  resolveNeuralMemoryConfig,
  TitansCausalLM,
  TitansError,
} from "../src/models/titans.js";
import { Rng } from "../src/nn/rng.js";
import { add, full, grad, mul, noGrad, slice, sub, sum, type Tensor, tensor, zeros } from "../src/tensor/index.js";
import { assertClose, gradcheck, randomTensor } from "./helpers/check.js";

const B = 2;
const T = 7;
const DK = 3;
const DV = 2;
const DM = 4;

let prev: string;
before(() => {
  prev = backendName();
  setBackend("ref");
});
after(() => {
  setBackend(prev as "ref");
});

function f64(shape: number[], seed: number, scale = 1, requiresGrad = false): Tensor {
  const t = randomTensor(shape, { seed, dtype: "f64" });
  const out = mul(t, scale);
  out.requiresGrad = requiresGrad;
  return out;
}

function state0(seed: number): MemoryState {
  return {
    w1: f64([B, DM, DK], seed, 0.8),
    w2: f64([B, DV, DM], seed + 1, 0.8),
    s1: zeros([B, DM, DK], "f64"),
    s2: zeros([B, DV, DM], "f64"),
  };
}

/** Row 0 gets the values, row 1 the values × 0.9 (unless same). */
function gatesOf(theta: number[], eta: number[], alpha: number[], same = false): MemoryGates {
  const g = (xs: number[]) => tensor([...xs, ...xs.map((x) => (same ? x : x * 0.9))], { dtype: "f64", shape: [B, xs.length] });
  return { theta: g(theta), eta: g(eta), alpha: g(alpha) };
}

/** Reference: token by token, autograd's gradient of ℓ at the chunk-start weights, then the paper's recurrence. */
function referenceScan(s0: MemoryState, k: Tensor, v: Tensor, gates: MemoryGates, chunk: number): MemoryState {
  let { w1, w2, s1, s2 } = s0;
  let c1 = w1;
  let c2 = w2;
  for (let t = 0; t < k.shape[1]; t++) {
    if (t % chunk === 0) {
      c1 = w1;
      c2 = w2;
    }
    const p1 = noGrad(() => add(c1, 0));
    const p2 = noGrad(() => add(c2, 0));
    p1.requiresGrad = true;
    p2.requiresGrad = true;
    const kt = slice(k, 1, t, t + 1);
    const vt = slice(v, 1, t, t + 1);
    const { grads } = grad(() => sum(memoryLoss({ w1: p1, w2: p2 }, kt, vt)), [p1, p2]); // rows are independent
    noGrad(() => {
      const col = (g: Tensor) => slice(g, 1, t, t + 1).reshape([B, 1, 1]);
      s1 = sub(mul(s1, col(gates.eta)), mul(grads[0], col(gates.theta)));
      s2 = sub(mul(s2, col(gates.eta)), mul(grads[1], col(gates.theta)));
      w1 = add(mul(w1, sub(1, col(gates.alpha))), s1);
      w2 = add(mul(w2, sub(1, col(gates.alpha))), s2);
    });
  }
  return { w1, w2, s1, s2 };
}

const THETA = [0.5, 0.3, 0.7, 0.2, 0.6, 0.4, 0.5];
const ETA = [0.9, 0.5, 0.8, 0.0, 0.7, 0.6, 0.95];
const ALPHA = [0.1, 0.0, 0.3, 0.05, 0.2, 0.5, 0.1];

describe("Titans memory: closed-form surprise", () => {
  test("per-token gradient in closed form equals autograd's grad of ℓ w.r.t. the memory weights (f64, ref)", () => {
    const s = state0(1);
    const w1 = s.w1;
    const w2 = s.w2;
    w1.requiresGrad = true;
    w2.requiresGrad = true;
    const k = f64([B, T, DK], 3);
    const v = f64([B, T, DV], 4);
    const { g1, g2, loss } = noGrad(() => memoryGrad({ w1, w2 }, k, v));
    let worst = 0;
    for (let t = 0; t < T; t++) {
      // sum over the batch of ℓ(b, t): each row's weights only see their own token
      const { grads } = grad(() => sum(slice(memoryLoss({ w1, w2 }, k, v), 1, t, t + 1)), [w1, w2]);
      assertClose(grads[0], slice(g1, 1, t, t + 1).reshape([B, DM, DK]), { atol: 1e-12, rtol: 1e-10, what: `dW1 t=${t}` });
      assertClose(grads[1], slice(g2, 1, t, t + 1).reshape([B, DV, DM]), { atol: 1e-12, rtol: 1e-10, what: `dW2 t=${t}` });
      for (let i = 0; i < grads[0].size; i++) worst = Math.max(worst, Math.abs(grads[0].data[i] - slice(g1, 1, t, t + 1).data[i]));
    }
    assert.ok(worst < 1e-12, `max |closed form − autograd| = ${worst}`);
    // and ℓ is the squared retrieval error
    const y = memoryForward({ w1, w2 }, k);
    assertClose(
      loss,
      noGrad(() => sum(mul(sub(y, v), sub(y, v)), -1)),
      { atol: 1e-12 },
    );
  });

  test("the chunked scan is differentiable: finite differences through gates, keys, values and M_0", () => {
    const s = state0(5);
    const k = f64([B, 5, DK], 6, 1, true);
    const v = f64([B, 5, DV], 7, 1, true);
    const th = f64([B, 5], 8, 0.3, true);
    const et = f64([B, 5], 9, 0.4, true);
    const al = f64([B, 5], 10, 0.2, true);
    const w1 = f64([B, DM, DK], 11, 0.8, true);
    const q = f64([B, 5, DK], 12);
    gradcheck(
      (kk, vv, a, b, c, ww) => {
        const r = memoryScan({ ...s, w1: ww }, { k: kk, v: vv, q }, { theta: a, eta: b, alpha: c }, 2);
        return add(add(sum(r.state.w2), sum(mul(r.state.s1, r.state.w1))), add(sum(r.loss), sum(r.retrieved as Tensor)));
      },
      [k, v, th, et, al, w1],
      { atol: 1e-6, rtol: 1e-5, what: "memoryScan" },
    );
  });
});

describe("Titans memory: update semantics", () => {
  const k = f64([B, T, DK], 21);
  const v = f64([B, T, DV], 22);
  const gates = gatesOf(THETA, ETA, ALPHA);

  test("chunk size 1 equals the sequential recurrence S_t = ηS − θ∇ℓ(M_{t−1}), M_t = (1−α)M + S", () => {
    const got = memoryScan(state0(20), { k, v }, gates, 1).state;
    const ref = referenceScan(state0(20), k, v, gates, 1);
    for (const key of ["w1", "w2", "s1", "s2"] as const) assertClose(got[key], ref[key], { atol: 1e-12, rtol: 1e-10, what: key });
  });

  test("chunk size 3 (partial last chunk) equals the recurrence with gradients at the chunk-start weights", () => {
    const got = memoryScan(state0(20), { k, v }, gates, 3).state;
    const ref = referenceScan(state0(20), k, v, gates, 3);
    for (const key of ["w1", "w2", "s1", "s2"] as const) assertClose(got[key], ref[key], { atol: 1e-12, rtol: 1e-10, what: key });
    const seq = memoryScan(state0(20), { k, v }, gates, 1).state;
    let d = 0;
    for (let i = 0; i < seq.w1.size; i++) d = Math.max(d, Math.abs(seq.w1.data[i] - got.w1.data[i]));
    assert.ok(d > 1e-4, "chunking must change the result (gradients taken at older weights)");
  });

  test("memorisation: retrieval error for stored keys drops after writing the pairs", () => {
    const kk = f64([B, 3, DK], 31);
    const vv = f64([B, 3, DV], 32);
    const hid = 16; // wider than the other tests' memory, so 3 pairs fit easily
    const s: MemoryState = {
      w1: f64([B, hid, DK], 33),
      w2: f64([B, DV, hid], 34, 0.25),
      s1: zeros([B, hid, DK], "f64"),
      s2: zeros([B, DV, hid], "f64"),
    };
    const before = memoryLoss(s, kk, vv);
    const reps = 100;
    const cat = (x: Tensor) => {
      let out = x;
      for (let r = 1; r < reps; r++) out = concatT(out, x);
      return out;
    };
    const kAll = cat(kk);
    const vAll = cat(vv);
    const n = kAll.shape[1];
    const g: MemoryGates = { theta: full([B, n], 0.1, "f64"), eta: full([B, n], 0.5, "f64"), alpha: full([B, n], 0, "f64") };
    const after = memoryLoss(memoryScan(s, { k: kAll, v: vAll }, g, 1).state, kk, vv);
    const mb = sum(before).item() / before.size;
    const ma = sum(after).item() / after.size;
    assert.ok(ma < 0.01 * mb, `mean retrieval error ${mb.toFixed(4)} -> ${ma.toFixed(6)}`);
  });

  test("forgetting α = 1 with η = 0, θ = 0 resets the memory: what follows runs as from an empty memory", () => {
    const th = [0.5, 0.4, 0.0, 0.3, 0.6];
    const et = [0.8, 0.7, 0.0, 0.6, 0.9];
    const al = [0.1, 0.2, 1.0, 0.1, 0.3];
    const k5 = slice(k, 1, 0, 5);
    const v5 = slice(v, 1, 0, 5);
    const whole = memoryScan(state0(40), { k: k5, v: v5 }, gatesOf(th, et, al, true), 1).state;
    const mid = memoryScan(
      state0(40),
      { k: slice(k5, 1, 0, 3), v: slice(v5, 1, 0, 3) },
      gatesOf(th.slice(0, 3), et.slice(0, 3), al.slice(0, 3), true),
      1,
    ).state;
    assert.equal(Math.max(...Array.from(mid.w1.data, Math.abs), ...Array.from(mid.s2.data, Math.abs)), 0);
    const fresh = {
      w1: zeros([B, DM, DK], "f64"),
      w2: zeros([B, DV, DM], "f64"),
      s1: zeros([B, DM, DK], "f64"),
      s2: zeros([B, DV, DM], "f64"),
    };
    const tail = memoryScan(
      fresh,
      { k: slice(k5, 1, 3, 5), v: slice(v5, 1, 3, 5) },
      gatesOf(th.slice(3), et.slice(3), al.slice(3), true),
      1,
    ).state;
    for (const key of ["w1", "w2", "s1", "s2"] as const) assertClose(whole[key], tail[key], { atol: 1e-14, what: key });
  });

  test("momentum by hand: one chunk of 3 equal tokens gives M_3 = M_0 − θg(3 + 2η + η²), S_3 = −θg(1 + η + η²)", () => {
    const s = state0(50);
    const k1 = f64([B, 1, DK], 51);
    const v1 = f64([B, 1, DV], 52);
    const k3 = concatT(concatT(k1, k1), k1);
    const v3 = concatT(concatT(v1, v1), v1);
    const { g2 } = memoryGrad(s, k1, v1);
    const g = g2.reshape([B, DV, DM]);
    const theta = 0.2;
    const eta = 0.5;
    const cst = (x: number) => full([B, 3], x, "f64");
    const r = memoryScan(s, { k: k3, v: v3 }, { theta: cst(theta), eta: cst(eta), alpha: cst(0) }, 3).state;
    assertClose(r.w2, sub(s.w2, mul(g, theta * 4.25)), { atol: 1e-13, what: "M_3 (α = 0)" });
    assertClose(r.s2, mul(g, -theta * 1.75), { atol: 1e-13, what: "S_3" });
    // with α = 0.5: M_3 = α-decayed: 0.125 M_0 − θg(0.25·1 + 0.5·1.5 + 1.75) = 0.125 M_0 − 2.75 θg
    const r2 = memoryScan(s, { k: k3, v: v3 }, { theta: cst(theta), eta: cst(eta), alpha: cst(0.5) }, 3).state;
    assertClose(r2.w2, sub(mul(s.w2, 0.125), mul(g, theta * 2.75)), { atol: 1e-13, what: "M_3 (α = 0.5)" });
  });
});

function concatT(a: Tensor, b: Tensor): Tensor {
  return noGrad(() => {
    const [bb, ta, d] = a.shape;
    const tb = b.shape[1];
    const out = zeros([bb, ta + tb, d], a.dtype);
    for (let i = 0; i < bb; i++) {
      out.data.set(a.data.subarray(i * ta * d, (i + 1) * ta * d), i * (ta + tb) * d);
      out.data.set(b.data.subarray(i * tb * d, (i + 1) * tb * d), (i * (ta + tb) + ta) * d);
    }
    return out;
  });
}

/** Rank AUROC (ties count half). */
function auroc(pos: number[], neg: number[]): number {
  let s = 0;
  for (const p of pos) for (const n of neg) s += p > n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

describe("Titans memory: surprise as a signal", () => {
  test("surprise is higher on planted deviations than on a repeating pattern (AUROC > 0.9)", () => {
    const D = 16;
    const rng = new Rng(7);
    const mem = new NeuralMemory(resolveNeuralMemoryConfig({ dim: D, keyDim: 16, valueDim: 16, memoryHidden: 32, chunkSize: 1 }), { rng });
    const period = 5;
    const n = 160;
    const pattern = Array.from({ length: period }, () => Array.from({ length: D }, () => rng.normal()));
    const planted = new Set<number>();
    while (planted.size < 16) planted.add(2 * period + rng.int(n - 2 * period));
    const xs: number[] = [];
    for (let t = 0; t < n; t++) xs.push(...(planted.has(t) ? Array.from({ length: D }, () => rng.normal()) : pattern[t % period]));
    const x = tensor(xs, { shape: [1, n, D] });
    const run = noGrad(() => mem.forward(x));
    const pos: number[] = [];
    const neg: number[] = [];
    for (let t = 2 * period; t < n; t++) (planted.has(t) ? pos : neg).push(run.loss.data[t]);
    const a = auroc(pos, neg);
    const early = run.loss.data.slice(0, period).reduce((p, c) => p + c, 0) / period;
    const late = neg.reduce((p, c) => p + c, 0) / neg.length;
    console.log(
      `# planted-deviation surprise AUROC ${a.toFixed(3)}; mean ℓ first period ${early.toFixed(3)}, later pattern tokens ${late.toFixed(3)}`,
    );
    assert.ok(a > 0.9, `AUROC ${a}`);
    assert.ok(late < 0.5 * early, "the memory learns the pattern");
  });
});

describe("TitansCausalLM (memory as gate)", () => {
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: 12,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
  });
  const ids = tensor([1, 2, 3, 4, 5, 6, 7, 8, 3, 2, 1, 0], { dtype: "i32", shape: [2, 6] });

  test("a fresh model equals its base CausalLM; the memory branch trains once out_proj moves", () => {
    const titans = new TitansCausalLM(
      cfg,
      { afterLayer: 0, memory: { chunkSize: 2, keyDim: 8, valueDim: 8, memoryHidden: 16 } },
      { rng: new Rng(1) },
    );
    const base = new CausalLM(cfg);
    const state = new Map([...titans.stateDict()].filter(([k]) => !k.startsWith("titans.")));
    base.loadStateDict(state);
    const a = noGrad(() => titans.forward({ inputIds: ids }).logits);
    const b = noGrad(() => base.forward({ inputIds: ids }).logits);
    assertClose(a, b, { atol: 0, rtol: 0, what: "logits at init" });
    titans.titans.outProj.weight.data.fill(0.05);
    const { grads } = grad(
      () => sum(titans.forward({ inputIds: ids }).logits),
      [titans.titans.memory.wK.weight, titans.titans.memory.thetaProj.weight, titans.titans.memory.w1Init],
    );
    for (const g of grads)
      assert.ok(
        Array.from(g.data).some((x) => x !== 0 && Number.isFinite(x)),
        "outer-loop gradient reaches the memory",
      );
    assert.ok(titans.numParameters() > base.numParameters());
  });

  test("rejects a KV cache and a bad afterLayer", () => {
    assert.throws(() => new TitansCausalLM(cfg, { afterLayer: 2 }), TitansError);
    const m = new TitansCausalLM(cfg, { afterLayer: 1 });
    assert.throws(() => m.forwardHidden({ inputIds: ids, kvCache: { k: [], v: [] } }), /KV-cache/);
    assert.throws(() => resolveNeuralMemoryConfig({ dim: 4, chunksize: 2 } as never), /unknown config key 'chunksize'/);
  });
});
