// Index ops: gather / scatterAdd along an axis, indexSelect over rows (embedding lookup), sort.
// Index tensors are i32 and are range-checked here, before any kernel runs.

import { kernels } from "../../backend/index.js";
import type { FloatArray } from "../../backend/types.js";
import { normAxis, splitAt } from "../shape_utils.js";
import { allocate, record, shapeStr, sizeOf, Tensor, TensorError } from "../tensor.js";
import { floatDtype } from "./elementwise.js";
import { reshape } from "./shape.js";

function checkIndex(op: string, idx: Tensor, limit: number): Int32Array {
  if (idx.dtype !== "i32") throw new TensorError(`[${op}] index must be i32, got ${idx.dtype}`);
  const d = idx.data as Int32Array;
  for (let i = 0; i < d.length; i++) {
    if (d[i] < 0 || d[i] >= limit) throw new TensorError(`[${op}] index ${d[i]} at position ${i} is out of range [0, ${limit})`);
  }
  return d;
}

function checkIndexShape(op: string, x: Tensor, idx: Tensor, axis: number): void {
  if (idx.ndim !== x.ndim || idx.shape.some((d, i) => i !== axis && d !== x.shape[i])) {
    throw new TensorError(`[${op}] index ${shapeStr(idx.shape)} must match ${shapeStr(x.shape)} except on axis ${axis}`);
  }
}

/** out[..., j, ...] = x[..., idx[..., j, ...], ...] along axis (torch.gather). */
export function gather(x: Tensor, axis: number, idx: Tensor): Tensor {
  const dt = floatDtype("gather", x);
  const a = normAxis("gather", axis, x.ndim);
  checkIndexShape("gather", x, idx, a);
  const ids = checkIndex("gather", idx, x.shape[a]);
  const [outer, nIn, inner] = splitAt(x.shape, a);
  const out = new Tensor(allocate(dt, idx.size), idx.shape);
  kernels().gather(out.data as FloatArray, x.data as FloatArray, ids, outer, nIn, idx.shape[a], inner);
  return record("gather", out, [x], { axis: a, idx });
}

/** target + src accumulated at idx along axis (torch.scatter_add, out of place). */
export function scatterAdd(target: Tensor, axis: number, idx: Tensor, src: Tensor): Tensor {
  const dt = floatDtype("scatterAdd", target, src);
  const a = normAxis("scatterAdd", axis, target.ndim);
  checkIndexShape("scatterAdd", target, idx, a);
  if (src.size !== idx.size) throw new TensorError(`[scatterAdd] src ${shapeStr(src.shape)} must match index ${shapeStr(idx.shape)}`);
  const ids = checkIndex("scatterAdd", idx, target.shape[a]);
  const [outer, nOut, inner] = splitAt(target.shape, a);
  const out = new Tensor(allocate(dt, target.size), target.shape);
  out.data.set(target.data);
  kernels().scatterAdd(out.data as FloatArray, src.data as FloatArray, ids, outer, nOut, idx.shape[a], inner);
  return record("scatterAdd", out, [target, src], { axis: a, idx });
}

/** Rows of a 2-D table: table [N, D], ids [...] → [..., D] (embedding lookup). */
export function indexSelect(table: Tensor, ids: Tensor): Tensor {
  const dt = floatDtype("indexSelect", table);
  if (table.ndim !== 2) throw new TensorError(`[indexSelect] table must be 2-D, got ${shapeStr(table.shape)}`);
  const d = table.shape[1];
  const idx = checkIndex("indexSelect", ids, table.shape[0]);
  const out = new Tensor(allocate(dt, ids.size * d), [...ids.shape, d]);
  kernels().indexSelect(out.data as FloatArray, table.data as FloatArray, idx, ids.size, d);
  return record("indexSelect", out, [table], { ids: idx });
}

export const embedding = (weight: Tensor, ids: Tensor): Tensor => indexSelect(weight, ids);

/** Stable sort along an axis; values carry gradients back to their source positions. */
export function sort(x: Tensor, axis = -1, descending = false): { values: Tensor; indices: Tensor } {
  const dt = floatDtype("sort", x);
  const a = normAxis("sort", axis, x.ndim);
  const [outer, n, inner] = splitAt(x.shape, a);
  const values = new Tensor(allocate(dt, x.size), x.shape);
  const indices = new Tensor(new Int32Array(x.size), x.shape);
  kernels().sort(values.data as FloatArray, indices.data as Int32Array, x.data as FloatArray, outer, n, inner, descending);
  record("gather", values, [x], { axis: a, idx: indices });
  return { values, indices };
}

/** One-hot float rows: ids [...] → [..., n]. */
export function oneHot(ids: Tensor, n: number): Tensor {
  const idx = checkIndex("oneHot", ids, n);
  const out = new Tensor(new Float32Array(ids.size * n), [...ids.shape, n]);
  for (let i = 0; i < idx.length; i++) out.data[i * n + idx[i]] = 1;
  return out;
}

export function flatIds(ids: Tensor): Tensor {
  return reshape(ids, [sizeOf(ids.shape)]);
}
