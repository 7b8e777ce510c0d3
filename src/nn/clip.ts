// Gradient clipping by total norm, torch.nn.utils.clip_grad_norm_ semantics: the norm over all gradients
// together, coef = maxNorm / (total + 1e-6) clamped at 1, gradients scaled by coef. Returns the norm
// before clipping (what trainers log as grad_norm). On the host norms accumulate in float64; on a device each
// gradient's partial norm is reduced there (float32) and only the total crosses to the host (one download).
// Not here: per-parameter clipping or clipping by value.

import { kernels } from "../backend/index.js";
import { abs, concat, max, noGrad, pow, reshape, square, sum, type Tensor } from "../tensor/index.js";

export class ClipError extends Error {
  override name = "ClipError";
}

export interface ClipOptions {
  /** 2 (default), any p > 0, or Infinity for the max-abs norm. */
  normType?: number;
  /** Throw when the total norm is NaN or infinite (torch's error_if_nonfinite). */
  errorIfNonfinite?: boolean;
}

function hostAccumulate(grads: Tensor[], p: number): number {
  let acc = 0;
  for (const g of grads) {
    const d = g.data;
    if (p === Number.POSITIVE_INFINITY) for (let i = 0; i < d.length; i++) acc = Math.max(acc, Math.abs(d[i]));
    else if (p === 2) for (let i = 0; i < d.length; i++) acc += d[i] * d[i];
    else for (let i = 0; i < d.length; i++) acc += Math.abs(d[i]) ** p;
  }
  return acc;
}

function deviceAccumulate(grads: Tensor[], p: number): number {
  return noGrad(() => {
    const parts = grads.map((g) => {
      const flat = reshape(g, [g.size]);
      if (p === Number.POSITIVE_INFINITY) return reshape(max(abs(flat), 0), [1]);
      return reshape(sum(p === 2 ? square(flat) : pow(abs(flat), p)), [1]);
    });
    const all = concat(parts, 0);
    return (p === Number.POSITIVE_INFINITY ? max(all, 0) : sum(all)).item();
  });
}

/** The p-norm of all these tensors together (float64 sums on the host; on a device reduced there, one number down). */
export function totalNorm(tensors: readonly Tensor[], p = 2): number {
  const ts = tensors.filter((t) => t.size > 0);
  const acc = ts.length === 0 ? 0 : kernels().device !== "host" ? deviceAccumulate(ts, p) : hostAccumulate(ts, p);
  return p === Number.POSITIVE_INFINITY ? acc : p === 2 ? Math.sqrt(acc) : acc ** (1 / p);
}

/** Scale gradients in place so their total norm is at most maxNorm; returns the total norm. */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipOptions = {}): number {
  const p = opts.normType ?? 2;
  if (!(p > 0)) throw new ClipError(`[clipGradNorm] normType must be > 0, got ${p}`);
  const grads = [...params].map((t) => t.grad).filter((g): g is Tensor => g !== null && g.size > 0);
  const device = kernels().device !== "host";
  const total = totalNorm(grads, p);
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new ClipError(`[clipGradNorm] the total gradient norm is ${total}`);
  }
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1) {
    // defensive: if two parameters' gradients ever share one buffer, scale it once (it still counts per owner)
    const scaled = new Set<unknown>();
    const k = kernels();
    for (const g of grads) {
      if (scaled.has(g.storage)) continue;
      scaled.add(g.storage);
      if (device) {
        k.unary("mulScalar", g.storage, g.storage, coef, 0);
        g.hostShadow = null;
      } else {
        const d = g.data;
        for (let i = 0; i < d.length; i++) d[i] *= coef;
      }
    }
  }
  return total;
}
