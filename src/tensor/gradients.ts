// The gradient table: for every recorded op, its vector-Jacobian product written in tensor ops.
// An entry gets the output gradient g, the node (inputs + ctx) and the output, and returns one gradient
// (or null) per input. Fused ops call their backward kernels here; composites need no entry at all.

import { kernels } from "../backend/index.js";
import type { Buf, MathMode, UnaryOp } from "../backend/types.js";
import { add, cast, div, eq, exp, ge, gt, log, mul, neg, pow, sigmoid, sign, sub, unaryOp, where } from "./ops/elementwise.js";
import { gather, scatterAdd } from "./ops/indexing.js";
import { matmul } from "./ops/linalg.js";
import { sum, sumToShape } from "./ops/reduce.js";
import { concat, expand, permute, reshape, slice } from "./ops/shape.js";
import { allocate, allocateUninit, type DType, type Node, onDevice, type Storage, Tensor, zeros } from "./tensor.js";

export type GradFn = (g: Tensor, node: Node, out: Tensor) => (Tensor | null)[];

const ctxOf = <T>(node: Node) => node.ctx as T;
const p0 = (node: Node) => ctxOf<{ p0: number }>(node).p0;
const p1 = (node: Node) => ctxOf<{ p1: number }>(node).p1;

/** Gradient of a broadcasting binary op for input i: reduce g back to that input's shape. */
const unbroadcast = (g: Tensor, node: Node, i: number) => sumToShape(g, node.inputs[i].shape);

/** A tensor shaped like `like` filled by a kernel; `overwrites`: the kernel writes every element (no zeroing). */
function fromKernel(op: string, like: Tensor, fill: (out: Storage) => void, overwrites = true): Tensor {
  const t = new Tensor((overwrites ? allocateUninit : allocate)(like.dtype, like.size, op), like.shape);
  fill(t.storage);
  return t;
}

/** A tensor's storage as a backward kernel input (on the current backend's device). */
const inp = (op: string, t: Tensor): Storage => onDevice(op, t, kernels().device);

const UNARY_GRADS: Record<UnaryOp, GradFn> = {
  neg: (g) => [neg(g)],
  exp: (g, _n, out) => [mul(g, out)],
  log: (g, n) => [div(g, n.inputs[0])],
  log1p: (g, n) => [div(g, add(n.inputs[0], 1))],
  expm1: (g, _n, out) => [mul(g, add(out, 1))],
  sqrt: (g, _n, out) => [div(mul(g, 0.5), out)],
  rsqrt: (g, _n, out) => [mul(g, mul(pow(out, 3), -0.5))],
  abs: (g, n) => [mul(g, sign(n.inputs[0]))],
  sign: () => [null],
  sigmoid: (g, _n, out) => [mul(g, mul(out, sub(1, out)))],
  tanh: (g, _n, out) => [mul(g, sub(1, mul(out, out)))],
  relu: (g, n) => [mul(g, unaryOp("gtScalar", n.inputs[0], 0))],
  silu: (g, n) => [mul(g, unaryOp("siluGrad", n.inputs[0]))],
  softplus: (g, n) => [mul(g, sigmoid(n.inputs[0]))],
  logSigmoid: (g, n) => [mul(g, sigmoid(neg(n.inputs[0])))],
  // d/dx log(1 - e^x) = -e^x / (1 - e^x) = -exp(x - out)
  log1mexp: (g, n, out) => [neg(mul(g, exp(sub(n.inputs[0], out))))],
  square: (g, n) => [mul(g, mul(n.inputs[0], 2))],
  reciprocal: (g, _n, out) => [neg(mul(g, mul(out, out)))],
  // x^0 is constant: its gradient is 0 even at x = 0 (where p * x^(p-1) would be 0 * Infinity = NaN)
  powScalar: (g, n) => [p0(n) === 0 ? zeros(g.shape, g.dtype) : mul(g, mul(pow(n.inputs[0], p0(n) - 1), p0(n)))],
  // PyTorch passes the gradient where lo <= x <= hi
  clamp: (g, n) => [mul(g, mul(ge(n.inputs[0], p0(n)), ge(p1(n), n.inputs[0])))],
  addScalar: (g) => [g],
  mulScalar: (g, n) => [mul(g, p0(n))],
  gtScalar: () => [null],
  siluGrad: () => [null],
};

/** Ties of minimum/maximum split the gradient in half, as PyTorch does. */
function minMaxGrad(g: Tensor, node: Node, pick: (a: Tensor, b: Tensor) => Tensor): (Tensor | null)[] {
  const [a, b] = node.inputs;
  const ta = add(pick(a, b), mul(eq(a, b), 0.5));
  return [unbroadcast(mul(g, ta), node, 0), unbroadcast(mul(g, sub(1, ta)), node, 1)];
}

function matmulGrad(g: Tensor, node: Node): (Tensor | null)[] {
  const [a, b] = node.inputs;
  const { transA, transB } = ctxOf<{ transA: boolean; transB: boolean }>(node);
  // C = op(A) op(B): dop(A) = G op(B)^T, dop(B) = op(A)^T G; transposed storage swaps operands
  const da = a.requiresGrad ? (transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB })) : null;
  const db = b.requiresGrad
    ? b.ndim === 2 && a.ndim > 2
      ? flatWeightGrad(a, g, transA, transB)
      : transB
        ? matmul(g, a, { transA: true, transB: transA })
        : matmul(a, g, { transA: !transA })
    : null;
  return [da && sumToShape(da, a.shape), db && sumToShape(db, b.shape)];
}

/** dB of a batched A [.., M, K] times a 2-D B, as one GEMM over the flattened batch. */
function flatWeightGrad(a: Tensor, g: Tensor, transA: boolean, transB: boolean): Tensor {
  if (transA) {
    const db = transB ? matmul(g, a, { transA: true, transB: true }) : matmul(a, g);
    return sum(
      db,
      Array.from({ length: a.ndim - 2 }, (_, i) => i),
    );
  }
  const k = a.shape[a.ndim - 1];
  const n = g.shape[g.ndim - 1];
  const a2 = reshape(a, [-1, k]);
  const g2 = reshape(g, [-1, n]);
  return transB ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
}

export const GRADIENTS = {
  ...UNARY_GRADS,
  add: (g, n) => [unbroadcast(g, n, 0), unbroadcast(g, n, 1)],
  sub: (g, n) => [unbroadcast(g, n, 0), unbroadcast(neg(g), n, 1)],
  mul: (g, n) => [unbroadcast(mul(g, n.inputs[1]), n, 0), unbroadcast(mul(g, n.inputs[0]), n, 1)],
  div: (g, n) => {
    const [a, b] = n.inputs;
    return [unbroadcast(div(g, b), n, 0), unbroadcast(neg(div(mul(g, a), mul(b, b))), n, 1)];
  },
  pow: (g, n, out) => {
    const [a, b] = n.inputs;
    const da = mul(g, mul(b, pow(a, sub(b, 1))));
    // d/db a^b = a^b ln a; PyTorch defines it as 0 where a == 0 and b >= 0
    const db = mul(g, where(eq(a, 0), 0, mul(out, log(a))));
    return [unbroadcast(da, n, 0), unbroadcast(db, n, 1)];
  },
  minimum: (g, n) => minMaxGrad(g, n, (a, b) => gt(b, a)),
  maximum: (g, n) => minMaxGrad(g, n, (a, b) => gt(a, b)),
  gt: () => [null, null],
  ge: () => [null, null],
  eq: () => [null, null],
  where: (g, n) => {
    const { cond } = ctxOf<{ cond: Tensor }>(n);
    return [unbroadcast(where(cond, g, 0), n, 0), unbroadcast(where(cond, 0, g), n, 1)];
  },
  cast: (g, n) => [cast(g, ctxOf<{ from: DType }>(n).from)],
  sum: (g, n) => {
    const { inputShape, axis } = ctxOf<{ inputShape: number[]; axis: number }>(n);
    const keep = [...inputShape];
    keep[axis] = 1;
    return [expand(reshape(g, keep), inputShape)];
  },
  max: (g, n) => {
    const { axis, indices } = ctxOf<{ axis: number; indices: Tensor }>(n);
    const x = n.inputs[0];
    const g1 = reshape(g, indices.shape);
    return [scatterAdd(zeros(x.shape, x.dtype), axis, indices, g1)];
  },
  logsumexp: (g, n, out) => {
    const { axis } = ctxOf<{ axis: number }>(n);
    const x = n.inputs[0];
    const keep = [...x.shape];
    keep[axis] = 1;
    // a row of all -Infinity has lse -Infinity: give it gradient 0 instead of exp(-inf + inf) = NaN
    const o = reshape(out, keep);
    const p = exp(sub(x, where(eq(o, Number.NEGATIVE_INFINITY), 0, o)));
    return [mul(p, reshape(g, keep))];
  },
  reshape: (g, n) => [reshape(g, ctxOf<{ shape: number[] }>(n).shape)],
  permute: (g, n) => {
    const { dims } = ctxOf<{ dims: number[] }>(n);
    const inv = new Array<number>(dims.length);
    dims.forEach((d, i) => {
      inv[d] = i;
    });
    return [permute(g, inv)];
  },
  slice: (g, n) => {
    const { axis, start, inputShape } = ctxOf<{ axis: number; start: number; inputShape: number[] }>(n);
    const parts: Tensor[] = [];
    const pad = (len: number) => {
      const s = [...inputShape];
      s[axis] = len;
      return zeros(s, g.dtype);
    };
    if (start > 0) parts.push(pad(start));
    parts.push(g);
    const after = inputShape[axis] - start - g.shape[axis];
    if (after > 0) parts.push(pad(after));
    return [concat(parts, axis)];
  },
  concat: (g, n) => {
    const { axis, sizes } = ctxOf<{ axis: number; sizes: number[] }>(n);
    let off = 0;
    return sizes.map((len) => {
      const part = slice(g, axis, off, off + len);
      off += len;
      return part;
    });
  },
  expand: (g, n) => [sumToShape(g, ctxOf<{ inputShape: number[] }>(n).inputShape)],
  matmul: matmulGrad,
  gather: (g, n) => {
    const { axis, idx } = ctxOf<{ axis: number; idx: Tensor }>(n);
    const x = n.inputs[0];
    return [scatterAdd(zeros(x.shape, x.dtype), axis, idx, g)];
  },
  scatterAdd: (g, n) => {
    const { axis, idx } = ctxOf<{ axis: number; idx: Tensor }>(n);
    return [g, reshape(gather(g, axis, idx), n.inputs[1].shape)];
  },
  indexSelect: (g, n) => {
    const { ids, n: count } = ctxOf<{ ids: Buf; n: number }>(n);
    const table = n.inputs[0];
    const [rows, d] = table.shape;
    const gs = inp("indexSelect", g);
    return [fromKernel("indexSelect", table, (out) => kernels().indexAdd(out, gs, ids, count, d, rows), false)];
  },
  softmax: (g, _n, out) => [mul(out, sub(g, sum(mul(g, out), -1, true)))],
  logSoftmax: (g, _n, out) => [sub(g, mul(exp(out), sum(g, -1, true)))],
  tokenLogprobs: (g, n) => {
    const { targets, lse, rows } = ctxOf<{ targets: Buf; lse: Buf; rows: number }>(n);
    const logits = n.inputs[0];
    const v = logits.shape[logits.ndim - 1];
    const gs = inp("tokenLogprobs", g);
    const ls = inp("tokenLogprobs", logits);
    return [fromKernel("tokenLogprobs", logits, (out) => kernels().tokenLogprobsBackward(out, gs, ls, lse, targets, rows, v))];
  },
  rmsNorm: (g, n) => {
    const { rstd, rows, d } = ctxOf<{ rstd: Buf; rows: number; d: number }>(n);
    const [x, w] = n.inputs;
    const gs = inp("rmsNorm", g);
    const xs = inp("rmsNorm", x);
    const ws = inp("rmsNorm", w);
    const dw = new Tensor(allocateUninit(w.dtype, w.size, "rmsNorm"), w.shape);
    const dx = fromKernel("rmsNorm", x, (out) => kernels().rmsNormBackward(out, dw.storage, gs, xs, ws, rstd, rows, d));
    return [dx, dw];
  },
  rope: (g, n) => {
    const { cos, sin } = ctxOf<{ cos: Buf; sin: Buf }>(n);
    const [b, h, t, dh] = g.shape;
    const gs = inp("rope", g);
    return [fromKernel("rope", g, (out) => kernels().rope(out, gs, cos, sin, b, h, t, dh, true))];
  },
  attention: (g, n, out) => {
    const { lse, mask, causal, scale, math } = ctxOf<{ lse: Buf; mask: Buf | null; causal: boolean; scale: number; math: MathMode }>(n);
    const [q, k, v] = n.inputs;
    const [b, h, t, dh] = q.shape;
    const [, hkv, s] = k.shape;
    const dq = new Tensor(allocateUninit(q.dtype, q.size, "attention"), q.shape);
    const dk = new Tensor(allocateUninit(k.dtype, k.size, "attention"), k.shape);
    const dv = new Tensor(allocateUninit(v.dtype, v.size, "attention"), v.shape);
    kernels().attentionBackward(
      dq.storage,
      dk.storage,
      dv.storage,
      inp("attention", g),
      inp("attention", q),
      inp("attention", k),
      inp("attention", v),
      inp("attention", out),
      lse,
      mask,
      b,
      h,
      hkv,
      t,
      s,
      dh,
      scale,
      causal,
      math,
    );
    return [dq, dk, dv];
  },
  swiglu: (g, n) => {
    const [gate, up] = n.inputs;
    const dgate = new Tensor(allocateUninit(gate.dtype, gate.size, "swiglu"), gate.shape);
    const dup = new Tensor(allocateUninit(up.dtype, up.size, "swiglu"), up.shape);
    kernels().swigluBackward(dgate.storage, dup.storage, inp("swiglu", g), inp("swiglu", gate), inp("swiglu", up));
    return [dgate, dup];
  },
} satisfies Record<string, GradFn>;

export type OpName = keyof typeof GRADIENTS;
