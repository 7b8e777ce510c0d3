// Index ops: gather / scatterAdd along an axis, indexSelect over rows (embedding lookup), sort, oneHot.
// Index tensors are i32 and are range-checked here when their values are on the host (host tensors, and device
// tensors made from host values); indices computed on a device are guarded by the kernels (NaN / skipped rows).

import { kernels } from "../../backend/index.js";
import type { Buf } from "../../backend/types.js";
import { normAxis, splitAt } from "../shape_utils.js";
import { allocate, allocateUninit, onDevice, record, shapeStr, sizeOf, Tensor, TensorError } from "../tensor.js";
import { floatDtype } from "./elementwise.js";
import { reshape } from "./shape.js";

/** idx's storage on the current backend after the range check its host values allow. */
function checkIndex(op: string, idx: Tensor, limit: number): Buf {
  if (idx.dtype !== "i32") throw new TensorError(`[${op}] index must be i32, got ${idx.dtype}`);
  const s = onDevice(op, idx, kernels().device);
  const d = idx.device === "host" ? (idx.data as Int32Array) : idx.hostShadow;
  if (d !== null) {
    for (let i = 0; i < d.length; i++) {
      if (d[i] < 0 || d[i] >= limit) throw new TensorError(`[${op}] index ${d[i]} at position ${i} is out of range [0, ${limit})`);
    }
  }
  return s;
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
  const k = kernels();
  const xs = onDevice("gather", x, k.device);
  const out = new Tensor(allocateUninit(dt, idx.size, "gather"), idx.shape);
  k.gather(out.storage, xs, ids, outer, nIn, idx.shape[a], inner);
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
  const k = kernels();
  const ts = onDevice("scatterAdd", target, k.device);
  const ss = onDevice("scatterAdd", src, k.device);
  const out = new Tensor(allocateUninit(dt, target.size, "scatterAdd"), target.shape);
  k.copyStrided(out.storage, ts, [target.size], [1], 0);
  k.scatterAdd(out.storage, ss, ids, outer, nOut, idx.shape[a], inner);
  return record("scatterAdd", out, [target, src], { axis: a, idx });
}

/** Rows of a 2-D table: table [N, D], ids [...] → [..., D] (embedding lookup). */
export function indexSelect(table: Tensor, ids: Tensor): Tensor {
  const dt = floatDtype("indexSelect", table);
  if (table.ndim !== 2) throw new TensorError(`[indexSelect] table must be 2-D, got ${shapeStr(table.shape)}`);
  const d = table.shape[1];
  const idx = checkIndex("indexSelect", ids, table.shape[0]);
  const k = kernels();
  const ts = onDevice("indexSelect", table, k.device);
  const out = new Tensor(allocateUninit(dt, ids.size * d, "indexSelect"), [...ids.shape, d]);
  k.indexSelect(out.storage, ts, idx, ids.size, d, table.shape[0]);
  return record("indexSelect", out, [table], { ids: idx, n: ids.size });
}

export const embedding = (weight: Tensor, ids: Tensor): Tensor => indexSelect(weight, ids);

/** Stable sort along an axis; values carry gradients back to their source positions. */
export function sort(x: Tensor, axis = -1, descending = false): { values: Tensor; indices: Tensor } {
  const dt = floatDtype("sort", x);
  const a = normAxis("sort", axis, x.ndim);
  const [outer, n, inner] = splitAt(x.shape, a);
  const k = kernels();
  const xs = onDevice("sort", x, k.device);
  const values = new Tensor(allocateUninit(dt, x.size, "sort"), x.shape);
  const indices = new Tensor(allocateUninit("i32", x.size, "sort"), x.shape);
  k.sort(values.storage, indices.storage, xs, outer, n, inner, descending);
  record("gather", values, [x], { axis: a, idx: indices });
  return { values, indices };
}

/** One-hot float rows: ids [...] → [..., n] (built on the backend: scatter ones into zeros). */
export function oneHot(ids: Tensor, n: number): Tensor {
  const idx = checkIndex("oneHot", ids, n);
  const k = kernels();
  const out = new Tensor(allocate("f32", ids.size * n, "oneHot"), [...ids.shape, n]);
  const ones = allocateUninit("f32", ids.size, "oneHot");
  k.fill(ones, 1);
  k.scatterAdd(out.storage, ones, idx, ids.size, n, 1, 1);
  return out;
}

export function flatIds(ids: Tensor): Tensor {
  return reshape(ids, [sizeOf(ids.shape)]);
}
