// Numerical faults caught before they reach the weights: a NaN/Inf loss or gradient is found before the optimizer
// step and, per `onNonfinite`, stops the run with a message naming the step and the first offending parameter, or
// drops that step's update (counted and logged). A collapse — the gradient norm at zero for several steps in a row,
// typically with the loss stuck at ln(vocab) after a learning rate far too high — is warned about once.
// Not here: refusing non-finite weights in a checkpoint (checkpoint.ts does, whatever the loop did).

import { totalNorm } from "../nn/clip.js";
import type { Tensor } from "../tensor/tensor.js";

export type OnNonfinite = "stop" | "skip";

export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

/** Steps in a row with a zero gradient norm before the collapse warning. */
export const COLLAPSE_STEPS = 5;

/** Global L2 norm of the gradients (float64 accumulation; on a device one reduction), NaN or Infinity when any gradient is. */
export function gradNorm(params: Iterable<Tensor>): number {
  return totalNorm([...params].map((p) => p.grad).filter((g): g is Tensor => g !== null));
}

/** The first (in `named` order) parameter whose gradient holds a NaN or infinite value, with that value. */
export function firstNonFiniteGrad(named: readonly [string, Tensor][]): { name: string; index: number; value: number } | null {
  for (const [name, t] of named) {
    const g = t.grad;
    if (g === null) continue;
    const d = g.hostData(); // only on the way to an error: one download per gradient on a device
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return { name, index: i, value: d[i] };
  }
  return null;
}

export interface GuardVerdict {
  /** Apply the update (false: drop it and zero the gradients). */
  apply: boolean;
  /** The gradient norm before clipping (what trainers log). */
  norm: number;
}

/**
 * Checks each optimizer step of one run. `check` is called with the step's loss and gradients in place, before
 * clipping and the update; it throws a NonFiniteError (stop) or returns apply: false (skip).
 */
export class NonFiniteGuard {
  /** Updates dropped so far (skip mode). */
  skipped = 0;
  private zeroRun = 0;
  private warned = false;

  constructor(
    private readonly label: string,
    private readonly mode: OnNonfinite,
    private readonly named: readonly [string, Tensor][],
    private readonly opts: { watchCollapse?: boolean; warn?: (msg: string) => void } = {},
  ) {}

  private warn(msg: string): void {
    if (this.opts.warn) this.opts.warn(msg);
    else process.stderr.write(`${msg}\n`);
  }

  /** `step` counts from 1 (the step about to be taken); `loss` is null when the loop has no single loss. */
  check(step: number, loss: number | null): GuardVerdict {
    const norm = gradNorm(this.named.map(([, t]) => t));
    const lossBad = loss !== null && !Number.isFinite(loss);
    if (Number.isFinite(norm) && !lossBad) {
      this.watchCollapse(step, loss, norm);
      return { apply: true, norm };
    }
    const bad = firstNonFiniteGrad(this.named);
    const what = lossBad
      ? `the loss is ${loss}${bad ? `, and the gradient of '${bad.name}' holds ${bad.value} at index ${bad.index}` : ""}`
      : bad
        ? `the gradient of '${bad.name}' holds ${bad.value} at index ${bad.index} (gradient norm ${norm})`
        : `the gradient norm is ${norm}`;
    if (this.mode === "stop") {
      throw new NonFiniteError(
        `[${this.label}] non-finite values at step ${step}: ${what}; no update was applied and the checkpoints on disk are intact (--on-nonfinite skip drops such steps instead)`,
      );
    }
    this.skipped++;
    this.warn(`[${this.label}] step ${step}: ${what}; update skipped (${this.skipped} so far)`);
    return { apply: false, norm };
  }

  private watchCollapse(step: number, loss: number | null, norm: number): void {
    if (this.opts.watchCollapse === false) return;
    this.zeroRun = norm === 0 ? this.zeroRun + 1 : 0;
    if (this.zeroRun < COLLAPSE_STEPS || this.warned) return;
    this.warned = true;
    this.warn(
      `[${this.label}] warning: the gradient norm has been 0 for ${this.zeroRun} steps (step ${step}, loss ${loss}): training has collapsed ` +
        "(e.g. a learning rate far too high saturated the model, so the loss sits at ln(vocab)); the run goes on but learns nothing",
    );
  }
}
