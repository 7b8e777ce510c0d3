// Reductions along axes: sum, mean, max/argmax, logsumexp, masked sum/mean, and sumToShape (the
// transpose of broadcasting, used by gradients). Kernels see [outer, n, inner] views.

import { kernels } from "../../backend/index.js";
import { normAxis, sameShape, splitAt } from "../shape_utils.js";
import { allocateUninit, onDevice, record, shapeStr, Tensor, TensorError } from "../tensor.js";
import { cast, div, floatDtype, mul } from "./elementwise.js";
import { reshape } from "./shape.js";

export type Axes = number | readonly number[] | undefined;

function reducedShape(shape: readonly number[], axis: number, keepdim: boolean): number[] {
  const s = [...shape];
  if (keepdim) s[axis] = 1;
  else s.splice(axis, 1);
  return s;
}

function sumAxis(x: Tensor, axis: number, keepdim: boolean): Tensor {
  const dt = floatDtype("sum", x);
  const [outer, n, inner] = splitAt(x.shape, axis);
  const k = kernels();
  const xs = onDevice("sum", x, k.device);
  const out = new Tensor(allocateUninit(dt, outer * inner, "sum"), reducedShape(x.shape, axis, keepdim));
  k.sum(out.storage, xs, outer, n, inner);
  return record("sum", out, [x], { inputShape: x.shape, axis });
}

function axesOf(op: string, x: Tensor, axes: Axes): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === "number" ? [axes] : [...axes];
  return [...new Set(list.map((a) => normAxis(op, a, x.ndim)))].sort((a, b) => b - a);
}

/** Sum over the given axes (all when omitted). */
export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  if (axes === undefined && !keepdim) return sumAxis(reshape(x, [x.size]), 0, false);
  let out = x;
  for (const a of axesOf("sum", x, axes)) out = sumAxis(out, a, keepdim);
  return out;
}

export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  let n = 1;
  for (const a of axesOf("mean", x, axes)) n *= x.shape[a];
  return div(sum(x, axes, keepdim), n);
}

/** Max along one axis; gradient flows to the first maximal element. */
export function max(x: Tensor, axis = -1, keepdim = false): Tensor {
  return maxWithIndices(x, axis, keepdim).values;
}

export function maxWithIndices(x: Tensor, axis = -1, keepdim = false): { values: Tensor; indices: Tensor } {
  const dt = floatDtype("max", x);
  const a = normAxis("max", axis, x.ndim);
  const [outer, n, inner] = splitAt(x.shape, a);
  if (n === 0) throw new TensorError(`[max] axis ${axis} of ${shapeStr(x.shape)} is empty`);
  const shape = reducedShape(x.shape, a, keepdim);
  const k = kernels();
  const xs = onDevice("max", x, k.device);
  const values = new Tensor(allocateUninit(dt, outer * inner, "max"), shape);
  const indices = new Tensor(allocateUninit("i32", outer * inner, "max"), shape);
  k.max(values.storage, indices.storage, xs, outer, n, inner);
  record("max", values, [x], { axis: a, indices: reshape(indices, reducedShape(x.shape, a, true)) });
  return { values, indices };
}

export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return maxWithIndices(x, axis, keepdim).indices;
}

export function min(x: Tensor, axis = -1, keepdim = false): Tensor {
  return mul(max(mul(x, -1), axis, keepdim), -1);
}

/** Stable log(sum(exp(x))) along one axis (±Infinity rows stay infinite, no NaN). */
export function logsumexp(x: Tensor, axis = -1, keepdim = false): Tensor {
  const dt = floatDtype("logsumexp", x);
  const a = normAxis("logsumexp", axis, x.ndim);
  const [outer, n, inner] = splitAt(x.shape, a);
  const k = kernels();
  const xs = onDevice("logsumexp", x, k.device);
  const out = new Tensor(allocateUninit(dt, outer * inner, "logsumexp"), reducedShape(x.shape, a, keepdim));
  k.logsumexp(out.storage, xs, outer, n, inner);
  return record("logsumexp", out, [x], { axis: a });
}

function checkMask(op: string, x: Tensor, mask: Tensor): Tensor {
  if (!sameShape(x.shape, mask.shape)) {
    throw new TensorError(`[${op}] mask ${shapeStr(mask.shape)} does not match values ${shapeStr(x.shape)}`);
  }
  return mask.dtype === x.dtype ? mask : cast(mask, x.dtype);
}

/** sum(x * mask) over axes. */
export function maskedSum(x: Tensor, mask: Tensor, axes?: Axes, keepdim = false): Tensor {
  return sum(mul(x, checkMask("maskedSum", x, mask)), axes, keepdim);
}

/** sum(x * mask) / sum(mask) over axes (0 / 0 gives NaN, as in PyTorch). */
export function maskedMean(x: Tensor, mask: Tensor, axes?: Axes, keepdim = false): Tensor {
  const m = checkMask("maskedMean", x, mask);
  return div(sum(mul(x, m), axes, keepdim), sum(m, axes, keepdim));
}

/** Sum a broadcast result back down to `shape` (the adjoint of broadcasting). */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  let out = g;
  const lead = g.ndim - shape.length;
  for (let i = 0; i < lead; i++) out = sumAxis(out, 0, false);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && out.shape[i] !== 1) out = sumAxis(out, i, true);
  }
  return out;
}
