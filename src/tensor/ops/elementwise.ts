// Elementwise ops: unary maps, broadcasting binary ops, where, casts. Forward only; their
// vector-Jacobian products are in src/tensor/gradients.ts.

import { kernels } from "../../backend/index.js";
import type { BinaryOp, UnaryOp } from "../../backend/types.js";
import { broadcastShapes, broadcastStrides, sameShape } from "../shape_utils.js";
import { allocateUninit, type DType, type FloatDType, full, onDevice, record, type Storage, Tensor, TensorError } from "../tensor.js";

export type Scalarish = Tensor | number;

export function floatDtype(op: string, ...ts: Tensor[]): FloatDType {
  let dt: FloatDType | null = null;
  for (const t of ts) {
    if (t.dtype === "i32") throw new TensorError(`[${op}] expects float tensors, got i32 (cast with .float())`);
    if (dt !== null && dt !== t.dtype) throw new TensorError(`[${op}] mixes ${dt} and ${t.dtype} tensors`);
    dt = t.dtype;
  }
  return dt ?? "f32";
}

/** A number becomes a scalar tensor of the other operand's float dtype (filled on the backend: no host copy). */
export function asTensor(x: Scalarish, like: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  return full([], x, like.dtype === "i32" ? "f32" : like.dtype);
}

export function unaryOp(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const dt = floatDtype(op, x);
  const k = kernels();
  const xs = onDevice(op, x, k.device);
  const out = new Tensor(allocateUninit(dt, x.size, op), x.shape);
  k.unary(op, out.storage, xs, p0, p1);
  return record(op, out, [x], { p0, p1 });
}

export function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const dt = floatDtype(op, a, b);
  const k = kernels();
  const as = onDevice(op, a, k.device);
  const bs = onDevice(op, b, k.device);
  const outShape = sameShape(a.shape, b.shape) ? [...a.shape] : broadcastShapes(op, a.shape, b.shape);
  const out = new Tensor(
    allocateUninit(
      dt,
      outShape.reduce((x, y) => x * y, 1),
      op,
    ),
    outShape,
  );
  k.binary(op, out.storage, as, bs, {
    outShape,
    aStrides: broadcastStrides(a.shape, outShape),
    bStrides: broadcastStrides(b.shape, outShape),
  });
  return record(op, out, [a, b]);
}

export const neg = (x: Tensor) => unaryOp("neg", x);
export const exp = (x: Tensor) => unaryOp("exp", x);
export const log = (x: Tensor) => unaryOp("log", x);
export const log1p = (x: Tensor) => unaryOp("log1p", x);
export const expm1 = (x: Tensor) => unaryOp("expm1", x);
export const sqrt = (x: Tensor) => unaryOp("sqrt", x);
export const rsqrt = (x: Tensor) => unaryOp("rsqrt", x);
export const abs = (x: Tensor) => unaryOp("abs", x);
export const sign = (x: Tensor) => unaryOp("sign", x);
export const sigmoid = (x: Tensor) => unaryOp("sigmoid", x);
export const tanh = (x: Tensor) => unaryOp("tanh", x);
export const relu = (x: Tensor) => unaryOp("relu", x);
export const silu = (x: Tensor) => unaryOp("silu", x);
export const softplus = (x: Tensor) => unaryOp("softplus", x);
export const logSigmoid = (x: Tensor) => unaryOp("logSigmoid", x);
/** log(1 - exp(x)) for x <= 0, accurate near 0 and for very negative x. */
export const log1mexp = (x: Tensor) => unaryOp("log1mexp", x);
export const square = (x: Tensor) => unaryOp("square", x);
export const reciprocal = (x: Tensor) => unaryOp("reciprocal", x);

export function clamp(x: Tensor, min: number | null, max: number | null): Tensor {
  return unaryOp("clamp", x, min ?? Number.NEGATIVE_INFINITY, max ?? Number.POSITIVE_INFINITY);
}

export function add(a: Scalarish, b: Scalarish): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("addScalar", a, b);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("addScalar", b, a);
  return binaryOp("add", a as Tensor, b as Tensor);
}

export function sub(a: Scalarish, b: Scalarish): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("addScalar", a, -b);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("addScalar", neg(b), a);
  return binaryOp("sub", a as Tensor, b as Tensor);
}

export function mul(a: Scalarish, b: Scalarish): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("mulScalar", a, b);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("mulScalar", b, a);
  return binaryOp("mul", a as Tensor, b as Tensor);
}

export function div(a: Scalarish, b: Scalarish): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("mulScalar", a, 1 / b);
  if (typeof a === "number" && b instanceof Tensor) return mul(reciprocal(b), a);
  return binaryOp("div", a as Tensor, b as Tensor);
}

export function pow(a: Tensor, b: Scalarish): Tensor {
  if (typeof b === "number") return unaryOp("powScalar", a, b);
  return binaryOp("pow", a, b);
}

export function minimum(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("minimum", ta, asTensor(b, ta));
}

export function maximum(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("maximum", ta, asTensor(b, ta));
}

/** Comparison results are float 0/1 tensors (never differentiable). */
export function gt(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("gt", ta, asTensor(b, ta));
}

export function ge(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("ge", ta, asTensor(b, ta));
}

export function eq(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("eq", ta, asTensor(b, ta));
}

export function lt(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("gt", asTensor(b, ta), ta);
}

export function le(a: Scalarish, b: Scalarish): Tensor {
  const ta = a instanceof Tensor ? a : asTensor(a, b as Tensor);
  return binaryOp("ge", asTensor(b, ta), ta);
}

/** where(cond, a, b): a where cond != 0, else b; all three broadcast together. */
export function where(cond: Tensor, a: Scalarish, b: Scalarish): Tensor {
  const ref = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  const ta = ref === null ? full([], a as number) : asTensor(a, ref);
  const tb = asTensor(b, ta);
  const dt = floatDtype("where", ta, tb);
  const c = cond.dtype === dt ? cond : cast(cond, dt);
  const shape = broadcastShapes("where", broadcastShapes("where", c.shape, ta.shape), tb.shape);
  const ce = expandData(c, shape);
  const ae = expandData(ta, shape);
  const be = expandData(tb, shape);
  const out = new Tensor(allocateUninit(dt, ce.length, "where"), shape);
  kernels().where(out.storage, ce, ae, be);
  return record("where", out, [ta, tb], { cond: new Tensor(ce, shape) });
}

/** The storage of t broadcast to shape, contiguous (no autograd). */
export function expandData(t: Tensor, shape: readonly number[]): Storage {
  const k = kernels();
  const ts = onDevice("expand", t, k.device);
  if (sameShape(t.shape, shape)) return ts;
  const out = allocateUninit(
    t.dtype,
    shape.reduce((x, y) => x * y, 1),
    "expand",
  );
  k.copyStrided(out, ts, shape, broadcastStrides(t.shape, shape), 0);
  return out;
}

/** Convert between dtypes (float to i32 truncates toward zero); float↔float casts carry gradients. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const k = kernels();
  const xs = onDevice("cast", x, k.device);
  const out = new Tensor(allocateUninit(dtype, x.size, "cast"), x.shape);
  k.cast(out.storage, xs);
  if (dtype === "i32") return out;
  return x.dtype === "i32" ? out : record("cast", out, [x], { from: x.dtype });
}
