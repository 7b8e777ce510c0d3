// Gradient clipping by total norm, torch.nn.utils.clip_grad_norm_ semantics: the norm over all gradients
// together, coef = maxNorm / (total + 1e-6) clamped at 1, gradients scaled by coef. Returns the norm
// before clipping (what trainers log as grad_norm). Norms accumulate in float64.
// Not here: per-parameter clipping or clipping by value.

import type { Tensor } from "../tensor/index.js";

export class ClipError extends Error {
  override name = "ClipError";
}

export interface ClipOptions {
  /** 2 (default), any p > 0, or Infinity for the max-abs norm. */
  normType?: number;
  /** Throw when the total norm is NaN or infinite (torch's error_if_nonfinite). */
  errorIfNonfinite?: boolean;
}

/** Scale gradients in place so their total norm is at most maxNorm; returns the total norm. */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipOptions = {}): number {
  const p = opts.normType ?? 2;
  if (!(p > 0)) throw new ClipError(`[clipGradNorm] normType must be > 0, got ${p}`);
  const grads = [...params].map((t) => t.grad).filter((g): g is Tensor => g !== null);
  // defensive: if two parameters' gradients ever share one buffer, scale it once (it still counts per owner)
  let acc = 0;
  for (const g of grads) {
    const d = g.data;
    if (p === Number.POSITIVE_INFINITY) for (let i = 0; i < d.length; i++) acc = Math.max(acc, Math.abs(d[i]));
    else if (p === 2) for (let i = 0; i < d.length; i++) acc += d[i] * d[i];
    else for (let i = 0; i < d.length; i++) acc += Math.abs(d[i]) ** p;
  }
  const total = p === Number.POSITIVE_INFINITY ? acc : p === 2 ? Math.sqrt(acc) : acc ** (1 / p);
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new ClipError(`[clipGradNorm] the total gradient norm is ${total}`);
  }
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1) {
    const scaled = new Set<ArrayLike<number>>();
    for (const g of grads) {
      if (scaled.has(g.data)) continue;
      scaled.add(g.data);
      const d = g.data;
      for (let i = 0; i < d.length; i++) d[i] *= coef;
    }
  }
  return total;
}
