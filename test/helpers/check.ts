// Test helpers for the engine: a seeded PRNG, random tensors, a closeness assertion that reports the worst
// element, and a float64 finite-difference gradient check on the `ref` backend. Test-only: nothing in src/
// imports this file.

import assert from "node:assert/strict";
import { withBackend } from "../../src/backend/index.js";
import { type DType, grad, mul, noGrad, sum, Tensor, tensor } from "../../src/tensor/index.js";

/** mulberry32: a tiny, fast, seeded 32-bit PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomOptions {
  seed?: number;
  dtype?: DType;
  /** Uniform in [low, high); for i32, integers in [low, high). */
  low?: number;
  high?: number;
  requiresGrad?: boolean;
}

/** A tensor of uniform random values from a seeded PRNG (same seed, same values, on every backend). */
export function randomTensor(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const rand = mulberry32(opts.seed ?? 0);
  const dtype = opts.dtype ?? "f32";
  const low = opts.low ?? -1;
  const high = opts.high ?? 1;
  let n = 1;
  for (const d of shape) n *= d;
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const u = rand();
    values[i] = dtype === "i32" ? Math.floor(low + u * (high - low)) : low + u * (high - low);
  }
  return tensor(values, { shape, dtype, requiresGrad: opts.requiresGrad ?? false });
}

/** Distinct random values (a shuffled grid plus jitter), for max/sort/min-max gradients that need no ties. */
export function distinctTensor(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const rand = mulberry32(opts.seed ?? 0);
  let n = 1;
  for (const d of shape) n *= d;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const low = opts.low ?? -1;
  const high = opts.high ?? 1;
  const step = (high - low) / Math.max(n, 1);
  const values = order.map((k) => low + (k + 0.25 + 0.5 * rand()) * step);
  return tensor(values, { shape, dtype: opts.dtype ?? "f32", requiresGrad: opts.requiresGrad ?? false });
}

type Numeric = Tensor | number | ArrayLike<number> | readonly unknown[];

function flat(x: Numeric): { values: Float64Array; shape: number[] | null } {
  if (x instanceof Tensor) return { values: Float64Array.from(x.hostData()), shape: [...x.shape] };
  if (typeof x === "number") return { values: Float64Array.of(x), shape: null };
  if (ArrayBuffer.isView(x)) return { values: Float64Array.from(x as ArrayLike<number>), shape: null };
  const out: number[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) walk(e);
    else out.push(Number(v));
  };
  walk(x);
  return { values: Float64Array.from(out), shape: null };
}

function unravel(i: number, shape: number[] | null): string {
  if (shape === null || shape.length === 0) return `${i}`;
  const idx: number[] = [];
  let r = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(r % shape[d]);
    r = Math.floor(r / shape[d]);
  }
  return `[${idx.join(", ")}]`;
}

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  /** Label printed in the failure message. */
  what?: string;
}

/**
 * Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaN matches NaN, infinities must match
 * exactly). Shapes are compared when both sides are tensors. Fails with the max abs difference and where.
 */
export function assertClose(actual: Numeric, expected: Numeric, opts: CloseOptions = {}): void {
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const what = opts.what ? `${opts.what}: ` : "";
  const a = flat(actual);
  const e = flat(expected);
  if (a.shape !== null && e.shape !== null) {
    assert.deepEqual(a.shape, e.shape, `${what}shape [${a.shape.join(", ")}] != expected [${e.shape.join(", ")}]`);
  }
  assert.equal(a.values.length, e.values.length, `${what}${a.values.length} values != expected ${e.values.length}`);
  const shape = a.shape ?? e.shape;
  let worst = -1;
  let worstDiff = 0;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i];
    const y = e.values[i];
    let diff: number;
    let excess: number;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      diff = Number.isNaN(x) && Number.isNaN(y) ? 0 : Number.POSITIVE_INFINITY;
      excess = diff;
    } else if (!Number.isFinite(x) || !Number.isFinite(y)) {
      diff = x === y ? 0 : Number.POSITIVE_INFINITY;
      excess = diff;
    } else {
      diff = Math.abs(x - y);
      excess = diff - (atol + rtol * Math.abs(y));
    }
    if (excess > 0) bad++;
    if (worst < 0 || excess > worstExcess) {
      worst = i;
      worstDiff = diff;
      worstExcess = excess;
    }
  }
  if (bad > 0) {
    assert.fail(
      `${what}${bad}/${a.values.length} values differ (atol ${atol}, rtol ${rtol}); max abs diff ${worstDiff} at ` +
        `${unravel(worst, shape)}: got ${a.values[worst]}, expected ${e.values[worst]}`,
    );
  }
}

/** Fixed random weights in the shape of `out`, so sum(out * w) checks every output element's gradient. */
export function weightsLike(out: Tensor, seed = 12345): Tensor {
  return randomTensor(out.shape, { seed, dtype: out.dtype === "i32" ? "f32" : out.dtype, low: -1, high: 1 });
}

/** Value and gradients of sum(fn(...xs) * w) with respect to every input that requires grad (autograd). */
export function gradsOf(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], seed = 12345): { out: Tensor; grads: Tensor[] } {
  const params = inputs.filter((x) => x.requiresGrad);
  let out: Tensor | null = null;
  const { grads } = grad(() => {
    out = fn(...inputs);
    return sum(mul(out, weightsLike(out, seed)));
  }, params);
  return { out: out as unknown as Tensor, grads };
}

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
  what?: string;
}

/**
 * Central finite differences in float64 on `ref` of L = sum(fn(...inputs) * w) (w fixed random) against the
 * autograd gradient, for every input that requires grad. Inputs must be float64. Returns the analytic grads.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): Tensor[] {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const seed = opts.seed ?? 12345;
  const what = opts.what ?? "gradcheck";
  for (const x of inputs) {
    if (x.requiresGrad && x.dtype !== "f64") throw new Error(`[gradcheck] inputs that require grad must be f64, got ${x.dtype}`);
  }
  const params = inputs.filter((x) => x.requiresGrad);
  if (params.length === 0) throw new Error("[gradcheck] no input requires grad");
  return withBackend("ref", () => {
    const { out, grads } = gradsOf(fn, inputs, seed);
    const w = weightsLike(out, seed);
    const loss = (): number =>
      noGrad(() => {
        const o = fn(...inputs);
        let s = 0;
        for (let i = 0; i < o.size; i++) s += o.data[i] * w.data[i];
        return s;
      });
    params.forEach((p, pi) => {
      const numeric = new Float64Array(p.size);
      for (let i = 0; i < p.size; i++) {
        const orig = p.data[i];
        p.data[i] = orig + eps;
        const up = loss();
        p.data[i] = orig - eps;
        const down = loss();
        p.data[i] = orig;
        numeric[i] = (up - down) / (2 * eps);
      }
      assertClose(grads[pi], numeric, { atol, rtol, what: `${what} d/d input ${inputs.indexOf(p)} ${p.toString()}` });
    });
    return grads;
  });
}

/** Every op name recorded in the graph below t (to check a test exercises the op it claims to). */
export function opsInGraph(t: Tensor): Set<string> {
  const ops = new Set<string>();
  const seen = new Set<Tensor>();
  const stack = [t];
  while (stack.length > 0) {
    const x = stack.pop() as Tensor;
    if (seen.has(x)) continue;
    seen.add(x);
    if (x.node) {
      ops.add(x.node.op);
      stack.push(...x.node.inputs);
    }
  }
  return ops;
}
