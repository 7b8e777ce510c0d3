// Matrix products: batched matmul with transposes and batch broadcasting, and linear (x W^T + b, the
// HF/PyTorch weight layout). A 2-D weight times a batched input runs as one large GEMM.

import { kernels, mathMode } from "../../backend/index.js";
import { broadcastShapes, sameShape } from "../shape_utils.js";
import { allocateUninit, onDevice, record, shapeStr, sizeOf, Tensor, TensorError } from "../tensor.js";
import { linearPacked, packedFor } from "./decode.js";
import { add, floatDtype } from "./elementwise.js";
import { expand } from "./shape.js";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** op(a) @ op(b) over the last two axes, broadcasting leading (batch) axes. */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const dt = floatDtype("matmul", a, b);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new TensorError(`[matmul] needs at least 2-D operands, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    throw new TensorError(
      `[matmul] inner dimensions differ: ${shapeStr(a.shape)}${transA ? "ᵀ" : ""} @ ${shapeStr(b.shape)}${transB ? "ᵀ" : ""} (${k} vs ${kb})`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes("matmul", aBatch, bBatch);
  const batch = sizeOf(batchShape);
  let A = a;
  let B = b;
  let strideA = m * k;
  let strideB = k * n;
  // fold a batched A into one tall GEMM when B is a single matrix and A is not transposed
  let mm = m;
  let bb = batch;
  if (sizeOf(bBatch) === 1 && !transA && sameShape(aBatch, batchShape)) {
    mm = m * batch;
    bb = 1;
  } else {
    if (sizeOf(aBatch) === 1) strideA = 0;
    else if (!sameShape(aBatch, batchShape)) A = expand(a, [...batchShape, ...a.shape.slice(-2)]);
    if (sizeOf(bBatch) === 1) strideB = 0;
    else if (!sameShape(bBatch, batchShape)) B = expand(b, [...batchShape, ...b.shape.slice(-2)]);
  }
  const kk = kernels();
  const as = onDevice("matmul", A, kk.device);
  const bs = onDevice("matmul", B, kk.device);
  const math = dt === "f64" ? "fp32" : mathMode(kk);
  const out = new Tensor(allocateUninit(dt, batch * m * n, "matmul"), [...batchShape, m, n]);
  kk.matmul(out.storage, as, bs, bb, mm, n, k, transA, transB, strideA, strideB, m * n, false, math);
  return record("matmul", out, [a, b], { transA, transB });
}

/** y = x W^T (+ bias): x [..., in], weight [out, in] (PyTorch layout), bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new TensorError(`[linear] input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)} (out, in)`);
  }
  const packed = packedFor(weight); // inside withPackedWeights (decode), with gradients off
  if (packed !== undefined && !x.requiresGrad && x.dtype === "f32") return linearPacked(x, packed, bias);
  const y = matmul(x, weight, { transB: true });
  return bias ? add(y, bias) : y;
}
