// Conformance of every native fused / elementwise kernel of the `cpu` backend against `refKernels`, on random
// inputs at awkward sizes (1, 7, 33, 1000, and 140,000, past the threading threshold) plus extreme values.
// Tolerances (float32): elementwise |got - want| <= 2e-6 |want| + 1e-7 (the 1e-7 covers cancellation points such as
// siluGrad's root); reductions, norms and attention: max |got - want| <= 1e-5 * max |want| (2e-5 for attention
// gradients, which sum over keys and rows, with max |want| floored at 0.05 since a single key gives exact zeros
// that float rounding does not). The suite reruns itself with NEXUS_SIMD=avx2 and =scalar.
// matmul is covered by native_gemm.test.ts; sort is not native.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { cpuUnavailableReason, createCpuKernels, loadCpuAddon } from "../src/backend/cpu.js";
import { refKernels } from "../src/backend/ref.js";
import { BINARY_OPS, type BinaryOp, type Kernels, UNARY_OPS, type UnaryOp } from "../src/backend/types.js";

const addon = loadCpuAddon();
const skip = addon === null ? `native addon unavailable: ${cpuUnavailableReason()}` : false;
const cpu: Kernels = addon === null ? refKernels : createCpuKernels(addon);
const isChild = process.env.NEXUS_NATIVE_TEST_CHILD === "1";
const SIZES = [1, 7, 33, 1000, 140_000]; // the last one past every kernel's threading threshold

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}
function randInt(n: number, seed: number, bound: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * bound));
}

/** Elementwise: |g - w| <= rtol |w| + atol; NaN matches NaN, infinities must match exactly. */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rtol = 2e-6, atol = 1e-7): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      assert.equal(g, w, `${what}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    assert.ok(Math.abs(g - w) <= rtol * Math.abs(w) + atol, `${what}[${i}]: got ${g}, want ${w}`);
  }
}
/** Reductions: max |g - w| <= tol * max(max |w|, floor) over the finite entries; non-finite entries must match. */
function assertScaled(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-5, floor = 1e-30): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = floor;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i])) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(want[i])) {
      assert.ok(
        Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])),
        `${what}[${i}]: got ${got[i]}, want ${want[i]}`,
      );
      continue;
    }
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  assert.ok(worst <= tol * scale, `${what}: max error ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol} * ${scale}`);
}

/** Runs `fn` on both backends with fresh copies of `outs` and compares them. */
function both(
  outs: Float32Array[],
  fn: (k: Kernels, o: Float32Array[]) => void,
  what: string,
  scaled = false,
  tol?: number,
  floor?: number,
): void {
  const a = outs.map((o) => o.slice());
  const b = outs.map((o) => o.slice());
  fn(cpu, a);
  fn(refKernels, b);
  a.forEach((o, i) => {
    if (scaled) assertScaled(o, b[i], `${what} #${i}`, tol, floor);
    else assertClose(o, b[i], `${what} #${i}`, tol, tol === undefined ? undefined : 0);
  });
}

function unaryInput(op: UnaryOp, n: number, seed: number): { x: Float32Array; p0: number; p1: number } {
  const ranges: Partial<Record<UnaryOp, [number, number]>> = {
    log: [1e-3, 50],
    sqrt: [0, 50],
    rsqrt: [1e-3, 50],
    log1p: [-0.99, 50],
    log1mexp: [-20, -1e-6],
    exp: [-100, 80],
    expm1: [-5, 5],
    reciprocal: [0.01, 10],
    powScalar: [0.01, 5],
  };
  const [lo, hi] = ranges[op] ?? [-12, 12];
  const params: Partial<Record<UnaryOp, [number, number]>> = {
    powScalar: [1.7, 0],
    clamp: [-0.25, 0.5],
    addScalar: [0.1, 0],
    mulScalar: [-3.3, 0],
    gtScalar: [0.2, 0],
  };
  const [p0, p1] = params[op] ?? [0, 0];
  return { x: rand(n, seed, lo, hi), p0, p1 };
}

describe(`native kernels vs ref (${addon?.fusedSimd ?? "unavailable"})`, { skip }, () => {
  if (process.env.NEXUS_SIMD && addon) {
    test("NEXUS_SIMD selects the requested kernel table", () => assert.equal(addon.fusedSimd, process.env.NEXUS_SIMD));
  }

  test("unary: every op at every size", () => {
    for (const op of UNARY_OPS) {
      for (const n of SIZES) {
        const { x, p0, p1 } = unaryInput(op, n, n * 31 + op.length);
        both([new Float32Array(n)], (k, [o]) => k.unary(op, o, x, p0, p1), `unary ${op} n=${n}`);
      }
    }
    for (const p of [2, 1, 0.5, -1.5, 3]) {
      const x = rand(33, 5, 0.1, 4);
      both([new Float32Array(33)], (k, [o]) => k.unary("powScalar", o, x, p, 0), `powScalar ${p}`);
    }
  });

  test("unary: extreme values", () => {
    const x = Float32Array.of(-200, -104, -100, -88, -1e-7, 0, -0, 1e-7, 50, 88, 88.7, 89, 100, 1e4, -1e4, Infinity, -Infinity, Number.NaN);
    for (const op of [
      "exp",
      "sigmoid",
      "softplus",
      "logSigmoid",
      "silu",
      "siluGrad",
      "tanh",
      "neg",
      "abs",
      "sign",
      "relu",
      "clamp",
      "square",
      "expm1",
    ] as const) {
      both([new Float32Array(x.length)], (k, [o]) => k.unary(op, o, x, -1, 1), `unary ${op} extremes`);
    }
    const neg = Float32Array.of(-1e-7, -50, -Math.LN2, -0.7, -1e-30, -1e4, 0, -Infinity);
    both([new Float32Array(neg.length)], (k, [o]) => k.unary("log1mexp", o, neg, 0, 0), "log1mexp extremes");
    const pos = Float32Array.of(0, 1e-38, 1e-45, 1, 1.0000001, 0.9999999, 3e38, Infinity, -1, Number.NaN);
    for (const op of ["log", "log1p", "sqrt", "rsqrt", "reciprocal"] as const) {
      both([new Float32Array(pos.length)], (k, [o]) => k.unary(op, o, pos, 0, 0), `unary ${op} extremes`);
    }
    // named values, each on a fresh array (assert.ok narrows o[i] to a literal otherwise)
    const run = (op: UnaryOp, ...xs: number[]) => {
      const o = new Float32Array(xs.length);
      cpu.unary(op, o, Float32Array.from(xs), 0, 0);
      return [...o];
    };
    const ls = run("logSigmoid", 100, -100, 0, -1e4);
    assert.ok(Math.abs(ls[0]) < 1e-40 && ls[1] === -100 && Math.abs(ls[2] + Math.LN2) < 1e-7 && ls[3] === -1e4, `logSigmoid: ${ls}`);
    const sp = run("softplus", 100, -100, 0, 1e4);
    assert.ok(sp[0] === 100 && sp[1] > 0 && sp[1] < 1e-40 && sp[3] === 1e4, `softplus: ${sp}`);
    assert.deepEqual(run("exp", -200, 0, 1, 89), [0, 1, Math.fround(Math.E), Infinity]);
    const sg = run("sigmoid", 100, -100, 0, -1e4);
    assert.ok(sg[0] === 1 && sg[1] > 0 && sg[1] < 1e-40 && sg[2] === 0.5 && sg[3] === 0, `sigmoid: ${sg}`);
    const lm = run("log1mexp", -1e-7, -50, -Math.LN2, -1);
    assert.ok(Math.abs(lm[0] - Math.log(1e-7)) < 1e-5 && Math.abs(lm[1] + Math.exp(-50)) < 1e-27, `log1mexp: ${lm}`);
  });

  test("binary: every op on each layout path", () => {
    const layouts = [
      { name: "same", shape: [1000], as: [1], bs: [1], na: 1000, nb: 1000 },
      { name: "scalar b", shape: [33], as: [1], bs: [0], na: 33, nb: 1 },
      { name: "scalar a", shape: [7], as: [0], bs: [1], na: 1, nb: 7 },
      { name: "row bias", shape: [37, 33], as: [33, 1], bs: [0, 1], na: 37 * 33, nb: 33 },
      { name: "column", shape: [33, 7], as: [1, 0], bs: [0, 1], na: 33, nb: 7 },
      { name: "3-d mixed", shape: [3, 5, 7], as: [7, 0, 1], bs: [0, 1, 0], na: 21, nb: 5 },
      { name: "big bias", shape: [2048, 48], as: [48, 1], bs: [0, 1], na: 2048 * 48, nb: 48 },
      { name: "size-1 dims", shape: [1, 9, 1, 4], as: [0, 4, 0, 1], bs: [0, 0, 0, 1], na: 36, nb: 4 },
    ];
    for (const op of BINARY_OPS) {
      for (const L of layouts) {
        const n = L.shape.reduce((p, d) => p * d, 1);
        const pos = op === "pow";
        const a = rand(L.na, L.na + 1, pos ? 0.1 : -3, 3);
        const b = rand(L.nb, L.nb + 7, pos ? -2 : -3, 3);
        if (!pos) for (let i = 0; i < Math.min(a.length, b.length); i += 3) b[i] = a[i]; // ties for eq/ge/min/max
        const layout = { outShape: L.shape, aStrides: L.as, bStrides: L.bs };
        both([new Float32Array(n)], (k, [o]) => k.binary(op as BinaryOp, o, a, b, layout), `binary ${op} ${L.name}`);
      }
    }
    const a = Float32Array.of(Number.NaN, 1, Number.NaN, -0, Infinity, 1, -1);
    const b = Float32Array.of(1, Number.NaN, Number.NaN, 0, Infinity, Infinity, Number.NaN);
    for (const op of BINARY_OPS) {
      both([new Float32Array(7)], (k, [o]) => k.binary(op, o, a, b, { outShape: [7], aStrides: [1], bStrides: [1] }), `binary ${op} NaN`);
    }
  });

  test("where", () => {
    for (const n of SIZES) {
      const c = rand(n, 3).map((v) => (v > 0.3 ? 0 : v));
      if (n > 2) c[1] = Number.NaN;
      both([new Float32Array(n)], (k, [o]) => k.where(o, c, rand(n, 4), rand(n, 5)), `where n=${n}`);
    }
  });

  test("sum, max, logsumexp over [outer, n, inner]", () => {
    const shapes = [
      [1, 1, 1],
      [7, 33, 1],
      [1, 1000, 1],
      [1, 1000, 33],
      [3, 7, 5],
      [1, 4096, 576],
      [1000, 1, 1],
      [2, 33, 1000],
      [5, 0, 3],
    ];
    for (const [outer, n, inner] of shapes) {
      const x = rand(outer * n * inner, outer + n + inner, -4, 4);
      const what = `[${outer}, ${n}, ${inner}]`;
      both([new Float32Array(outer * inner)], (k, [o]) => k.sum(o, x, outer, n, inner), `sum ${what}`, true);
      both([new Float32Array(outer * inner)], (k, [o]) => k.logsumexp(o, x, outer, n, inner), `logsumexp ${what}`, true);
      const ia = new Int32Array(outer * inner);
      const ib = new Int32Array(outer * inner);
      for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i]); // ties
      both([new Float32Array(outer * inner)], (k, [o]) => k.max(o, k === cpu ? ia : ib, x, outer, n, inner), `max ${what}`);
      assert.deepEqual(ia, ib, `argmax ${what}`);
    }
    const ext = Float32Array.of(1e4, -1e4, 0, -Infinity, -Infinity, -Infinity, Infinity, 1, 2, Number.NaN, 1, 2);
    both([new Float32Array(4)], (k, [o]) => k.logsumexp(o, ext, 4, 3, 1), "logsumexp extremes", true);
    both([new Float32Array(3)], (k, [o]) => k.logsumexp(o, ext, 1, 4, 3), "logsumexp extremes inner", true);
    const o = new Float32Array(1);
    cpu.logsumexp(o, Float32Array.of(1e4, 1e4), 1, 2, 1);
    assert.ok(Math.abs(o[0] - (1e4 + Math.LN2)) < 2e-3, `logsumexp(1e4, 1e4) = ${o[0]}`);
    const nan = Float32Array.of(1, Number.NaN, 3, Number.NaN);
    const io = new Int32Array(1);
    cpu.max(o, io, nan, 1, 4, 1);
    assert.ok(Number.isNaN(o[0]) && io[0] === 1, "max keeps the first NaN");
  });

  test("softmax and logSoftmax", () => {
    for (const [rows, n] of [
      [1, 1],
      [7, 33],
      [33, 1000],
      [4, 49152],
      [3, 7],
    ]) {
      const x = rand(rows * n, rows * n, -8, 8);
      if (rows === 3) x.set([1e4, -1e4, 0, 1e4, 1e4, -1e4, 5], 0);
      for (const op of ["softmax", "logSoftmax"] as const) {
        both([new Float32Array(rows * n)], (k, [o]) => k[op](o, x, rows, n), `${op} [${rows}, ${n}]`, true);
      }
    }
  });

  test("tokenLogprobs and its backward", () => {
    for (const [rows, v] of [
      [1, 7],
      [7, 33],
      [33, 1000],
      [3, 49152],
      [64, 2048],
    ]) {
      const logits = rand(rows * v, rows + v, -10, 10);
      if (rows === 1) logits.set([1e4, -1e4, 0, 1e4, -1e4, 3, 2]);
      const t = randInt(rows, v, v);
      both(
        [new Float32Array(rows), new Float32Array(rows)],
        (k, [o, l]) => k.tokenLogprobs(o, l, logits, t, rows, v),
        `tokenLogprobs [${rows}, ${v}]`,
        true,
      );
      const lse = new Float32Array(rows);
      refKernels.tokenLogprobs(new Float32Array(rows), lse, logits, t, rows, v);
      const dout = rand(rows, 9);
      both(
        [new Float32Array(rows * v)],
        (k, [d]) => k.tokenLogprobsBackward(d, dout, logits, lse, t, rows, v),
        `tokenLogprobsBackward [${rows}, ${v}]`,
        true,
      );
    }
  });

  test("rmsNorm and its backward", () => {
    // d = 1 with a large eps: with eps << x^2 the d = 1 gradient is pure cancellation (1 - x^2 rstd^2)
    for (const [rows, d, eps] of [
      [1, 1, 0.5],
      [7, 33, 1e-5],
      [33, 1000, 1e-5],
      [1000, 64, 1e-6],
      [2048, 576, 1e-5],
    ]) {
      const x = rand(rows * d, d, -2, 2);
      const w = rand(d, d + 1, 0.5, 1.5);
      both(
        [new Float32Array(rows * d), new Float32Array(rows)],
        (k, [y, r]) => k.rmsNorm(y, r, x, w, rows, d, eps),
        `rmsNorm [${rows}, ${d}]`,
        true,
      );
      const rstd = new Float32Array(rows);
      refKernels.rmsNorm(new Float32Array(rows * d), rstd, x, w, rows, d, eps);
      const dy = rand(rows * d, 77);
      both(
        [new Float32Array(rows * d), new Float32Array(d).fill(9)],
        (k, [dx, dw]) => k.rmsNormBackward(dx, dw, dy, x, w, rstd, rows, d),
        `rmsNormBackward [${rows}, ${d}]`,
        true,
      );
    }
  });

  test("rope, forward, inverse and in place", () => {
    for (const [b, h, t, dh] of [
      [1, 1, 1, 2],
      [2, 3, 7, 16],
      [2, 4, 33, 64],
      [1, 2, 5, 6],
      [2, 9, 64, 64],
    ]) {
      const x = rand(b * h * t * dh, dh);
      const cos = rand((b * t * dh) / 2, 1);
      const sin = rand((b * t * dh) / 2, 2);
      for (const inverse of [false, true]) {
        both([new Float32Array(x.length)], (k, [o]) => k.rope(o, x, cos, sin, b, h, t, dh, inverse), `rope ${[b, h, t, dh]} ${inverse}`);
        both([x.slice()], (k, [o]) => k.rope(o, o, cos, sin, b, h, t, dh, inverse), `rope in place ${[b, h, t, dh]}`);
      }
    }
  });

  test("swiglu and its backward", () => {
    for (const n of SIZES) {
      const g = rand(n, n, -10, 10);
      if (n > 4) g.set([100, -100, 0, -1e4]);
      const u = rand(n, n + 1, -2, 2);
      both([new Float32Array(n)], (k, [o]) => k.swiglu(o, g, u), `swiglu n=${n}`);
      both(
        [new Float32Array(n), new Float32Array(n)],
        (k, [dg, du]) => k.swigluBackward(dg, du, rand(n, 5), g, u),
        `swigluBackward n=${n}`,
      );
    }
  });

  test("adamw in place", () => {
    for (const n of SIZES) {
      const p = rand(n, 1);
      const m = rand(n, 2, -0.01, 0.01);
      const v = rand(n, 3, 0, 1e-4);
      const g = rand(n, 4);
      both(
        [p, m, v],
        (k, [pp, mm, vv]) => k.adamw(pp, g, mm, vv, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.999 ** 3),
        `adamw n=${n}`,
        false,
        2e-6,
      );
    }
  });

  test("copyStrided: transpose, permute, broadcast, slices, Int32Array", () => {
    const x = rand(1000 * 33, 11);
    const cases: [number[], number[], number][] = [
      [[33, 1000], [1, 33], 0], // 2-D transpose
      [[2, 5, 3, 7], [105, 7, 35, 1], 0], // [B,T,H,Dh] -> [B,H,T,Dh]-style permute
      [[3, 7, 5], [1, 3, 21], 0], // full reversal of axes
      [[40, 33], [0, 1], 5], // broadcast rows, offset
      [[10, 4], [33, 3], 2], // strided slice
      [[1, 1], [0, 0], 17], // every dim size 1
      [[], [], 9], // scalar
      [[4, 0, 3], [1, 1, 1], 0], // empty
      [[64, 512], [1, 64], 0], // transpose past the threading threshold
    ];
    for (const [shape, strides, offset] of cases) {
      const n = shape.reduce((p, d) => p * d, 1);
      both([new Float32Array(n)], (k, [o]) => k.copyStrided(o, x, shape, strides, offset), `copyStrided ${shape} ${strides}`);
      const xi = Int32Array.from(x, (v) => Math.round(v * 1e6));
      const a = new Int32Array(n);
      const b = new Int32Array(n);
      cpu.copyStrided(a, xi, shape, strides, offset);
      refKernels.copyStrided(b, xi, shape, strides, offset);
      assert.deepEqual(a, b, `copyStrided int32 ${shape}`);
    }
  });

  test("indexSelect, indexAdd (duplicate ids), gather, scatterAdd", () => {
    for (const [rows, n, d] of [
      [5, 7, 1],
      [50, 1000, 33],
      [300, 2048, 576],
    ]) {
      const table = rand(rows * d, d);
      const ids = randInt(n, n, rows);
      both([new Float32Array(n * d)], (k, [o]) => k.indexSelect(o, table, ids, n, d, rows), `indexSelect ${[rows, n, d]}`);
      const src = rand(n * d, 3);
      both([table], (k, [t]) => k.indexAdd(t, src, ids, n, d, rows), `indexAdd ${[rows, n, d]}`, false, 1e-6);
    }
    const [outer, nIn, nIdx, inner] = [3, 7, 5, 4];
    const x = rand(outer * nIn * inner, 1);
    const idx = randInt(outer * nIdx * inner, 2, nIn);
    both([new Float32Array(outer * nIdx * inner)], (k, [o]) => k.gather(o, x, idx, outer, nIn, nIdx, inner), "gather");
    const src = rand(outer * nIdx * inner, 3);
    both([rand(outer * nIn * inner, 4)], (k, [o]) => k.scatterAdd(o, src, idx, outer, nIn, nIdx, inner), "scatterAdd");
  });

  test("attention forward and backward", () => {
    interface Case {
      b: number;
      h: number;
      hkv: number;
      t: number;
      s: number;
      dh: number;
      causal: boolean;
      mask?: boolean;
    }
    const cases: Case[] = [
      { b: 1, h: 1, hkv: 1, t: 1, s: 1, dh: 16, causal: false },
      { b: 2, h: 4, hkv: 2, t: 7, s: 7, dh: 32, causal: true },
      { b: 2, h: 4, hkv: 2, t: 5, s: 33, dh: 16, causal: true, mask: true },
      { b: 2, h: 4, hkv: 4, t: 33, s: 7, dh: 64, causal: false, mask: true },
      { b: 1, h: 9, hkv: 3, t: 1, s: 70, dh: 64, causal: true }, // decode with a KV cache
      { b: 3, h: 4, hkv: 2, t: 2, s: 37, dh: 7, causal: true, mask: true }, // decode path: odd dh, masked keys
      { b: 2, h: 9, hkv: 3, t: 33, s: 33, dh: 64, causal: true, mask: true },
      { b: 1, h: 2, hkv: 1, t: 9, s: 5, dh: 16, causal: true }, // t > s: the first rows see no key
      { b: 2, h: 2, hkv: 2, t: 6, s: 11, dh: 7, causal: false, mask: true }, // dh not a multiple of the lanes
      { b: 1, h: 2, hkv: 2, t: 70, s: 130, dh: 20, causal: false },
      { b: 2, h: 2, hkv: 1, t: 130, s: 130, dh: 32, causal: true, mask: true }, // several row and key blocks
      { b: 2, h: 9, hkv: 3, t: 3, s: 300, dh: 64, causal: true, mask: true }, // speculative decode over 3 key blocks
    ];
    for (const c of cases) {
      const { b, h, hkv, t, s, dh, causal } = c;
      const what = JSON.stringify(c);
      const q = rand(b * h * t * dh, t + 1, -2, 2);
      const k = rand(b * hkv * s * dh, s + 2, -2, 2);
      const v = rand(b * hkv * s * dh, s + 3);
      let mask: Float32Array | null = null;
      if (c.mask) {
        mask = rand(b * s, 4).map((x) => (x > -0.4 ? 1 : 0));
        mask.fill(0, 0, s); // batch 0 sees no key at all: lse -inf, out 0
      }
      const scale = 1 / Math.sqrt(dh);
      const outs = [new Float32Array(b * h * t * dh), new Float32Array(b * h * t)];
      both(
        outs,
        (kk, [o, l]) => kk.attention(o, l, q, k, v, mask, b, h, hkv, t, s, dh, scale, causal, s, "fp32"),
        `attention ${what}`,
        true,
      );
      const out = outs[0].slice();
      const lse = outs[1].slice();
      refKernels.attention(out, lse, q, k, v, mask, b, h, hkv, t, s, dh, scale, causal, s, "fp32");
      if (c.mask) assert.equal(lse[0], Number.NEGATIVE_INFINITY, "a fully masked row has lse -inf");
      const dout = rand(out.length, 99);
      const grads = [new Float32Array(q.length), new Float32Array(k.length).fill(7), new Float32Array(v.length).fill(7)];
      both(
        grads,
        (kk, [dq, dk, dv]) => kk.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, mask, b, h, hkv, t, s, dh, scale, causal, "fp32"),
        `attentionBackward ${what}`,
        true,
        2e-5,
        0.05,
      );
    }
  });

  test("native argument checks throw tagged RangeErrors", () => {
    assert.throws(() => cpu.rmsNorm(new Float32Array(4), new Float32Array(2), new Float32Array(3), new Float32Array(2), 2, 2, 1e-5), {
      name: "RangeError",
      message: /^\[cpu rmsNorm\] x has 3 elements, needs 4 \(rows \* d\)/,
    });
    assert.throws(() => cpu.tokenLogprobs(new Float32Array(1), new Float32Array(1), new Float32Array(4), Int32Array.of(4), 1, 4), {
      message: /^\[cpu tokenLogprobs\] targets\[0\] = 4 is outside \[0, 4\)/,
    });
    const z = new Float32Array(64);
    assert.throws(() => cpu.attention(z, z, z, z, z, null, 1, 3, 2, 1, 1, 4, 0.5, false), { message: /^\[cpu attention\] h \(3\)/ });
    assert.throws(() => cpu.unary("nope" as UnaryOp, z, z, 0, 0), { message: /^\[cpu unary\] unknown unary op 'nope'/ });
  });
});

if (!isChild && addon !== null) {
  const levels = addon.fusedSimd === "avx512" ? ["avx2", "scalar"] : addon.fusedSimd === "avx2" ? ["scalar"] : [];
  describe("native kernels on lower SIMD levels", () => {
    for (const level of levels) {
      test(`NEXUS_SIMD=${level}`, () => {
        const { NODE_TEST_CONTEXT: _, ...env } = process.env;
        const file = fileURLToPath(import.meta.url);
        const r = spawnSync(process.execPath, ["--enable-source-maps", "--import", "tsx", "--test-reporter=tap", file], {
          env: { ...env, NEXUS_SIMD: level, NEXUS_NATIVE_TEST_CHILD: "1" },
          encoding: "utf8",
          timeout: 300_000,
        });
        const tail = `${r.stdout}\n${r.stderr}`.split("\n").slice(-40).join("\n");
        assert.equal(r.status, 0, `child with NEXUS_SIMD=${level} failed:\n${tail}`);
        assert.match(r.stdout, /# pass [1-9]\d*\n# fail 0/, `child with NEXUS_SIMD=${level} ran no test:\n${tail}`);
      });
    }
  });
}
