// The gradient hook of the shared training loops: after every micro-batch of an optimizer step has run backward and
// before clipping and the optimizer, each loop (offline, online group-RL, online policy) calls syncGradients() on the
// parameters the optimizer updates. Single-process training registers nothing and the call does nothing. Data-parallel
// training registers an all-reduce here (NCCL on cuda: average each .grad in place across ranks, ideally bucketed into a
// few flat buffers), so no trainer changes shape. The loss each rank backpropagates is already normalised by the units
// of its own step (tokens, pairs); a DP launcher that shards a step's rows makes ranks' unit counts equal, or divides by
// the global count and sums instead of averaging.

import type { Tensor } from "../tensor/tensor.js";

/** Called once per optimizer step with the parameters whose .grad is about to be clipped and applied. */
export type GradientSync = (params: readonly Tensor[]) => void;

let hook: GradientSync | null = null;

/** Register the step's gradient hook (null removes it); returns the previous one. */
export function setGradientSync(fn: GradientSync | null): GradientSync | null {
  const prev = hook;
  hook = fn;
  return prev;
}

/** What the loops call between the last backward and clipping. */
export function syncGradients(params: readonly Tensor[]): void {
  if (hook !== null) hook(params);
}
