// Shape ops: reshape (a view), permute/transpose, slice, concat, stack, expand, squeeze/unsqueeze, detach.
// Every non-view op materialises a new contiguous tensor with the backend's copyStrided kernel.

import { kernels } from "../../backend/index.js";
import { coalesceDims } from "../../backend/layout.js";
import { broadcastShapes, broadcastStrides, normAxis, sameShape, stridesOf } from "../shape_utils.js";
import { allocateUninit, onDevice, record, shapeStr, sizeOf, Tensor, TensorError } from "../tensor.js";

/** Same data, new shape; one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const inferAt = s.indexOf(-1);
  if (inferAt >= 0) {
    const known = s.reduce((a, d, i) => (i === inferAt ? a : a * d), 1);
    if (known === 0 || x.size % known !== 0) {
      throw new TensorError(`[reshape] cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    }
    s[inferAt] = x.size / known;
  }
  if (sizeOf(s) !== x.size) throw new TensorError(`[reshape] cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  if (sameShape(s, x.shape)) return x;
  const out = view(x, s);
  return record("reshape", out, [x], { shape: x.shape });
}

/** A tensor sharing x's storage (and host index copy) under another shape of the same size. */
function view(x: Tensor, shape: readonly number[]): Tensor {
  const out = new Tensor(x.storage, shape);
  out.hostShadow = x.hostShadow;
  return out;
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.size]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis("unsqueeze", axis, x.ndim + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis("squeeze", axis, x.ndim);
  if (x.shape[a] !== 1) throw new TensorError(`[squeeze] axis ${axis} of ${shapeStr(x.shape)} is not 1`);
  const s = [...x.shape];
  s.splice(a, 1);
  return reshape(x, s);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) throw new TensorError(`[permute] ${dims.length} dims given for ${shapeStr(x.shape)}`);
  const axes = dims.map((d) => normAxis("permute", d, x.ndim));
  if (new Set(axes).size !== axes.length) throw new TensorError(`[permute] repeated axis in [${dims.join(", ")}]`);
  if (axes.every((a, i) => a === i)) return x;
  const st = stridesOf(x.shape);
  const shape = axes.map((a) => x.shape[a]);
  const k = kernels();
  const xs = onDevice("permute", x, k.device);
  const out = new Tensor(allocateUninit(x.dtype, x.size, "permute"), shape);
  k.copyStrided(
    out.storage,
    xs,
    shape,
    axes.map((a) => st[a]),
    0,
  );
  return record("permute", out, [x], { dims: axes });
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normAxis("transpose", dim0, x.ndim);
  const b = normAxis("transpose", dim1, x.ndim);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** Elements start..end (exclusive, negatives count from the end) along axis. */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis("slice", axis, x.ndim);
  const n = x.shape[a];
  let s = start < 0 ? start + n : start;
  let e = end === undefined ? n : end < 0 ? end + n : end;
  s = Math.max(0, Math.min(n, s));
  e = Math.max(s, Math.min(n, e));
  if (s === 0 && e === n) return x;
  const shape = [...x.shape];
  shape[a] = e - s;
  const st = stridesOf(x.shape);
  const k = kernels();
  const xs = onDevice("slice", x, k.device);
  const out = new Tensor(allocateUninit(x.dtype, sizeOf(shape), "slice"), shape);
  k.copyStrided(out.storage, xs, shape, st, s * st[a]);
  return record("slice", out, [x], { axis: a, start: s, inputShape: x.shape });
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new TensorError("[concat] needs at least one tensor");
  const first = xs[0];
  const a = normAxis("concat", axis, first.ndim);
  let total = 0;
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.dtype !== first.dtype || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new TensorError(
        `[concat] ${t.dtype} ${shapeStr(t.shape)} does not match ${first.dtype} ${shapeStr(first.shape)} off axis ${a}`,
      );
    }
    total += t.shape[a];
  }
  if (xs.length === 1) return first;
  const shape = [...first.shape];
  shape[a] = total;
  const k = kernels();
  const inputs = xs.map((t) => onDevice("concat", t, k.device));
  const out = new Tensor(allocateUninit(first.dtype, sizeOf(shape), "concat"), shape);
  const outStrides = stridesOf(shape);
  let offset = 0;
  xs.forEach((t, i) => {
    // each input is a block of out: its own shape at out's strides, starting `offset` rows along the axis
    if (t.size > 0) {
      const c = coalesceDims(t.shape, [outStrides]);
      k.copyToStrided(out.storage, inputs[i], c.shape, c.strides[0], offset * outStrides[a]);
    }
    offset += t.shape[a];
  });
  return record("concat", out, [...xs], { axis: a, sizes: xs.map((t) => t.shape[a]) });
}

export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new TensorError("[stack] needs at least one tensor");
  const a = normAxis("stack", axis, xs[0].ndim + 1);
  return concat(
    xs.map((t) => unsqueeze(t, a)),
    a,
  );
}

/** Broadcast to a larger shape (materialised). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes("expand", x.shape, shape);
  if (!sameShape(target, shape)) throw new TensorError(`[expand] cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  if (sameShape(x.shape, shape)) return x;
  const k = kernels();
  const xs = onDevice("expand", x, k.device);
  const out = new Tensor(allocateUninit(x.dtype, sizeOf(shape), "expand"), shape);
  k.copyStrided(out.storage, xs, shape, broadcastStrides(x.shape, shape), 0);
  return record("expand", out, [x], { inputShape: x.shape });
}

/** A tensor sharing data with x but cut from the graph. */
export function detach(x: Tensor): Tensor {
  return view(x, x.shape);
}

/** A copy with its own storage (no autograd link). */
export function clone(x: Tensor): Tensor {
  const k = kernels();
  const xs = onDevice("clone", x, k.device);
  const out = new Tensor(allocateUninit(x.dtype, x.size, "clone"), x.shape);
  k.copyStrided(out.storage, xs, [x.size], [1], 0);
  out.hostShadow = x.hostShadow;
  return out;
}
