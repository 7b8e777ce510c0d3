// Fused transformer ops: softmax / logSoftmax, token log-probs and cross-entropy without a [.., V]
// log-softmax, RMSNorm, RoPE, attention (causal, padding mask, GQA) and SwiGLU. Each is one primitive
// with a backward kernel; src/tensor/composite.ts holds the same maths in plain ops as the test oracle.

import { kernels, mathMode } from "../../backend/index.js";
import type { Buf } from "../../backend/types.js";
import { normAxis, sameShape } from "../shape_utils.js";
import { allocateUninit, isGradEnabled, onDevice, record, shapeStr, Tensor, TensorError } from "../tensor.js";
import { cast, eq, exp, floatDtype, mul, sub, where } from "./elementwise.js";
import { maskedMean, sum } from "./reduce.js";
import { expand, reshape, slice, transpose } from "./shape.js";

function lastAxisOp(name: "softmax" | "logSoftmax", x: Tensor, axis: number): Tensor {
  const a = normAxis(name, axis, x.ndim);
  if (a !== x.ndim - 1) {
    // other axes: move the axis last and back (rarely used; the fast path is the last axis)
    return transpose(lastAxisOp(name, transpose(x, a, -1), -1), a, -1);
  }
  const dt = floatDtype(name, x);
  const n = x.shape[a];
  const k = kernels();
  const xs = onDevice(name, x, k.device);
  const out = new Tensor(allocateUninit(dt, x.size, name), x.shape);
  k[name](out.storage, xs, x.size / Math.max(n, 1), n);
  return record(name, out, [x], {});
}

export const softmax = (x: Tensor, axis = -1): Tensor => lastAxisOp("softmax", x, axis);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => lastAxisOp("logSoftmax", x, axis);

function checkTargets(op: string, logits: Tensor, targets: Tensor): Buf {
  if (targets.dtype !== "i32") throw new TensorError(`[${op}] targets must be i32, got ${targets.dtype}`);
  if (!sameShape(targets.shape, logits.shape.slice(0, -1))) {
    throw new TensorError(`[${op}] targets ${shapeStr(targets.shape)} must equal logits ${shapeStr(logits.shape)} without the last axis`);
  }
  const v = logits.shape[logits.ndim - 1];
  const s = onDevice(op, targets, kernels().device);
  // range-checked where the values are on the host; device-made targets are guarded by the kernel (NaN)
  const d = targets.device === "host" ? (targets.data as Int32Array) : targets.hostShadow;
  if (d !== null) {
    for (let i = 0; i < d.length; i++) {
      if (d[i] < 0 || d[i] >= v) throw new TensorError(`[${op}] target ${d[i]} at position ${i} is out of range [0, ${v})`);
    }
  }
  return s;
}

/**
 * log_softmax(logits)[target] for each position: logits [..., V], targets [...] (i32) → [...].
 * Never materialises the [..., V] log-softmax (TRL's selective_log_softmax).
 */
export function tokenLogprobs(logits: Tensor, targets: Tensor): Tensor {
  const dt = floatDtype("tokenLogprobs", logits);
  const tg = checkTargets("tokenLogprobs", logits, targets);
  const v = logits.shape[logits.ndim - 1];
  const rows = targets.size;
  const k = kernels();
  const ls = onDevice("tokenLogprobs", logits, k.device);
  const out = new Tensor(allocateUninit(dt, rows, "tokenLogprobs"), targets.shape);
  const lse = allocateUninit(dt, rows, "tokenLogprobs");
  k.tokenLogprobs(out.storage, lse, ls, tg, rows, v);
  return record("tokenLogprobs", out, [logits], { targets: tg, lse, rows });
}

export interface CrossEntropyOptions {
  /** Targets equal to this id are excluded (TRL/HF use -100). */
  ignoreIndex?: number;
  reduction?: "mean" | "sum" | "none";
}

/** Token cross-entropy: mean over non-ignored targets by default (HF's loss). */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100;
  // checked here: the ignored ids are remapped before tokenLogprobs could see a float target
  if (targets.dtype !== "i32") throw new TensorError(`[crossEntropy] targets must be i32, got ${targets.dtype}`);
  // mask and safe targets computed on the backend (ids < 2^24 are exact in f32)
  const tf = cast(targets, "f32");
  const drop = eq(tf, ignore);
  const safe = cast(where(drop, 0, tf), "i32");
  if (targets.hostShadow !== null) safe.hostShadow = Int32Array.from(targets.hostShadow, (x) => (x === ignore ? 0 : x));
  const mask = sub(1, drop);
  const m = mask.dtype === logits.dtype ? mask : cast(mask, logits.dtype);
  const nll = sub(0, tokenLogprobs(logits, safe));
  const reduction = opts.reduction ?? "mean";
  if (reduction === "none") return mul(nll, m);
  if (reduction === "sum") return sum(mul(nll, m));
  return maskedMean(nll, m);
}

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const dt = floatDtype("rmsNorm", x, weight);
  const d = x.shape[x.ndim - 1];
  if (weight.ndim !== 1 || weight.size !== d) {
    throw new TensorError(`[rmsNorm] weight has ${weight.size} elements, last dim is ${d}`);
  }
  const rows = x.size / d;
  const k = kernels();
  const xs = onDevice("rmsNorm", x, k.device);
  const ws = onDevice("rmsNorm", weight, k.device);
  const out = new Tensor(allocateUninit(dt, x.size, "rmsNorm"), x.shape);
  const rstd = allocateUninit(dt, rows, "rmsNorm");
  k.rmsNorm(out.storage, rstd, xs, ws, rows, d, eps);
  return record("rmsNorm", out, [x, weight], { rstd, rows, d });
}

/**
 * Rotary position embedding (HF rotate-half convention): x [B, H, T, Dh]; cos, sin [B, T, Dh/2] or [T, Dh/2]
 * (the angle for each position and frequency).
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const dt = floatDtype("rope", x, cos, sin);
  if (x.ndim !== 4) throw new TensorError(`[rope] x must be [B, H, T, Dh], got ${shapeStr(x.shape)}`);
  const [b, h, t, dh] = x.shape;
  if (dh % 2 !== 0) throw new TensorError(`[rope] head dim ${dh} must be even`);
  const per = t * (dh / 2);
  if (!sameShape(cos.shape, sin.shape) || (cos.size !== per && cos.size !== b * per)) {
    throw new TensorError(`[rope] cos/sin ${shapeStr(cos.shape)} must be [B, T, Dh/2] or [T, Dh/2] for x ${shapeStr(x.shape)}`);
  }
  // one table for every batch row: repeated on the backend ([T, Dh/2] -> [B, T, Dh/2])
  const full = (c: Tensor) => (c.size === per && b > 1 ? expand(reshape(c, [1, t, dh / 2]), [b, t, dh / 2]) : c);
  const k = kernels();
  const cs = onDevice("rope", full(cos), k.device);
  const ss = onDevice("rope", full(sin), k.device);
  const xs = onDevice("rope", x, k.device);
  const out = new Tensor(allocateUninit(dt, x.size, "rope"), x.shape);
  k.rope(out.storage, xs, cs, ss, b, h, t, dh, false);
  return record("rope", out, [x], { cos: cs, sin: ss });
}

export interface AttentionOptions {
  /** Causal mask aligned to the end: query t sees keys s <= t + (S - T). Default true. */
  causal?: boolean;
  /** [B, S] with 1 for real keys, 0 for padding; null = all real. */
  keyMask?: Tensor | null;
  /** Score scale; default 1 / sqrt(Dh). */
  scale?: number;
  /**
   * Attend to only the first `keyLength` keys of k/v (S = keyLength), which are storage [B, Hkv, capacity, Dh]
   * (a preallocated KV cache). Default: all of them. With gradients recorded the used keys are copied out first.
   */
  keyLength?: number;
}

/** Scaled dot-product attention with grouped-query heads: q [B, H, T, Dh], k/v [B, Hkv, S, Dh] → [B, H, T, Dh]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const dt = floatDtype("attention", q, k, v);
  if (q.ndim !== 4 || k.ndim !== 4 || !sameShape(k.shape, v.shape)) {
    throw new TensorError(
      `[attention] expects q [B,H,T,Dh], k/v [B,Hkv,S,Dh]; got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`,
    );
  }
  const [b, h, t, dh] = q.shape;
  const [kb, hkv, cap, kdh] = k.shape;
  if (kb !== b || kdh !== dh || h % hkv !== 0) {
    throw new TensorError(`[attention] q ${shapeStr(q.shape)} and k ${shapeStr(k.shape)} disagree (batch, head dim, or H % Hkv)`);
  }
  const s = opts.keyLength ?? cap;
  if (!Number.isInteger(s) || s < 0 || s > cap) throw new TensorError(`[attention] keyLength ${s} must be an integer in [0, ${cap}]`);
  if (s < cap && isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    // the backward kernel reads dense k/v: hand it the used keys as tensors of their own
    return attention(q, slice(k, 2, 0, s), slice(v, 2, 0, s), { ...opts, keyLength: undefined });
  }
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(dh);
  const kk = kernels();
  let mask: Buf | null = null;
  if (opts.keyMask) {
    if (!sameShape(opts.keyMask.shape, [b, s])) {
      throw new TensorError(`[attention] keyMask ${shapeStr(opts.keyMask.shape)} must be [${b}, ${s}]`);
    }
    mask = onDevice("attention", opts.keyMask.dtype === dt ? opts.keyMask : cast(opts.keyMask, dt), kk.device);
  }
  const math = dt === "f64" ? "fp32" : mathMode(kk);
  const qs = onDevice("attention", q, kk.device);
  const ks = onDevice("attention", k, kk.device);
  const vs = onDevice("attention", v, kk.device);
  const out = new Tensor(allocateUninit(dt, q.size, "attention"), q.shape);
  const lse = allocateUninit(dt, b * h * t, "attention");
  kk.attention(out.storage, lse, qs, ks, vs, mask, b, h, hkv, t, s, dh, scale, causal, cap, math);
  return record("attention", out, [q, k, v], { lse, mask, causal, scale, math });
}

/** silu(gate) * up, the SwiGLU activation of Llama's MLP. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const dt = floatDtype("swiglu", gate, up);
  if (!sameShape(gate.shape, up.shape)) throw new TensorError(`[swiglu] gate ${shapeStr(gate.shape)} and up ${shapeStr(up.shape)} differ`);
  const k = kernels();
  const gs = onDevice("swiglu", gate, k.device);
  const us = onDevice("swiglu", up, k.device);
  const out = new Tensor(allocateUninit(dt, gate.size, "swiglu"), gate.shape);
  k.swiglu(out.storage, gs, us);
  return record("swiglu", out, [gate, up], {});
}

/** Mean token entropy helper used by trainers' metrics: -sum p log p over the last axis. */
export function entropy(logits: Tensor): Tensor {
  const lp = logSoftmax(logits);
  return sub(0, sum(mul(exp(lp), lp), -1));
}
