// The fused ops of src/tensor/ops/fused.ts written again from plain primitives (matmul, where, logsumexp,
// gather, slice/concat, elementwise). They are the test oracles: slower and memory-hungry (attention builds
// the full [B, H, T, S] score matrix), but their gradients come for free from the gradient table.
// Not for production use; call the fused ops.

import { add, exp, floatDtype, mul, neg, rsqrt, silu, sub, where } from "./ops/elementwise.js";
import type { AttentionOptions } from "./ops/fused.js";
import { gather } from "./ops/indexing.js";
import { matmul } from "./ops/linalg.js";
import { logsumexp, mean } from "./ops/reduce.js";
import { concat, expand, reshape, slice, squeeze, unsqueeze } from "./ops/shape.js";
import { shapeStr, type Tensor, TensorError, tensor } from "./tensor.js";

/** exp(x - logsumexp(x)) along axis. */
export function softmaxComposite(x: Tensor, axis = -1): Tensor {
  return exp(logSoftmaxComposite(x, axis));
}

/** x - logsumexp(x) along axis. */
export function logSoftmaxComposite(x: Tensor, axis = -1): Tensor {
  return sub(x, logsumexp(x, axis, true));
}

/** x * rsqrt(mean(x^2, -1) + eps) * weight. */
export function rmsNormComposite(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const rstd = rsqrt(add(mean(mul(x, x), -1, true), eps)); // [..., 1]
  return mul(mul(x, rstd), weight);
}

/** Rotate-half RoPE: x [B, H, T, Dh], cos/sin [B, T, Dh/2] or [T, Dh/2]; x*cos + rotate_half(x)*sin. */
export function ropeComposite(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const dh = x.shape[x.ndim - 1];
  const half = dh / 2;
  const full = (c: Tensor) => {
    const cc = concat([c, c], -1); // [B, T, Dh] or [T, Dh]
    return cc.ndim === 3 ? unsqueeze(cc, 1) : cc; // [B, 1, T, Dh] broadcasts over heads
  };
  const x1 = slice(x, -1, 0, half);
  const x2 = slice(x, -1, half, dh);
  const rotated = concat([neg(x2), x1], -1); // rotate_half(x)
  return add(mul(x, full(cos)), mul(rotated, full(sin)));
}

/** log_softmax(logits)[..., target]: logits [..., V], targets [...] i32 → [...]. */
export function tokenLogprobsComposite(logits: Tensor, targets: Tensor): Tensor {
  return squeeze(gather(logSoftmaxComposite(logits, -1), -1, unsqueeze(targets, -1)), -1);
}

/** silu(gate) * up. */
export function swigluComposite(gate: Tensor, up: Tensor): Tensor {
  return mul(silu(gate), up);
}

/**
 * Attention from plain ops: repeat kv heads for GQA, scores = q k^T * scale, causal and key masks as -Infinity
 * via where, softmax, @ v. Rows that see no key give 0 output (and 0 gradient), like the fused kernel.
 */
export function attentionComposite(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const dt = floatDtype("attentionComposite", q, k, v);
  const [b, h, t, dh] = q.shape;
  const [, hkv, s] = k.shape;
  if (q.ndim !== 4 || k.ndim !== 4 || h % hkv !== 0) {
    throw new TensorError(`[attentionComposite] q ${shapeStr(q.shape)} and k ${shapeStr(k.shape)} do not fit`);
  }
  const group = h / hkv;
  const repeat = (x: Tensor) => reshape(expand(unsqueeze(x, 2), [b, hkv, group, s, dh]), [b, h, s, dh]); // [B, H, S, Dh]
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(dh);
  const keyMask = opts.keyMask ?? null;
  // visible [B, 1, T, S] and rowAny [B, 1, T, 1] as constants (no gradient), built on the host (a test oracle)
  const vis = new Float64Array(b * t * s);
  const any = new Float64Array(b * t);
  const km = keyMask === null ? null : keyMask.hostData();
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      for (let j = 0; j < s; j++) {
        const ok = (!causal || j <= ti + (s - t)) && (km === null || km[bi * s + j] !== 0);
        if (ok) {
          vis[(bi * t + ti) * s + j] = 1;
          any[bi * t + ti] = 1;
        }
      }
    }
  }
  const visible = tensor(dt === "f64" ? vis : Float32Array.from(vis), { shape: [b, 1, t, s] });
  const rowAny = tensor(dt === "f64" ? any : Float32Array.from(any), { shape: [b, 1, t, 1] });
  const scores = mul(matmul(q, repeat(k), { transB: true }), scale); // [B, H, T, S]
  const masked = where(visible, scores, Number.NEGATIVE_INFINITY);
  // a row with no visible key would be softmax of all -Infinity (NaN): give it zeros, then zero its weights
  const safe = where(rowAny, masked, 0);
  const p = mul(softmaxComposite(safe, -1), rowAny);
  return matmul(p, repeat(v)); // [B, H, T, Dh]
}
