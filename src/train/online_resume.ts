// A generation batch in flight (sampled ahead by asynchronous rollouts, or partly trained on: numIterations > 1),
// as JSON for the checkpoint's trainer state, and back. Resuming then continues with the same completions,
// rewards, old / reference log-probs and update plan instead of sampling new ones, so an interrupted run equals
// the uninterrupted one. Float32 values survive JSON exactly (each is a double).
// Not here: advantages (the algorithm's prepare() recomputes them from the restored batch).

import type { RewardBreakdown } from "../rewards/types.js";
import type { PromptExample, Rollout } from "./rollout.js";

/** What the loop keeps of a generation batch between its sampling and its last optimizer step. */
export interface PendingBatch {
  rollout: Rollout;
  rewards: RewardBreakdown | null;
  counts: boolean[];
  old: Float32Array[] | null;
  ref: Float32Array[] | null;
  /** Rollout metrics before the algorithm's prepare(). */
  metrics: Record<string, number>;
  /** The update plan (logged steps of optimizer steps of micro-batches), fixed once the batch is first trained on. */
  plan: number[][][][] | null;
  /** The next logged step of the plan (0-based). */
  iteration: number;
  /** The logged step at which the batch was sampled (staleness = step of use - version). */
  version: number;
}

/** JSON form: prompts by their row index, typed arrays as plain arrays. */
export interface PendingBatchJson {
  prompts: number[];
  rollout: Omit<Rollout, "prompts">;
  rewards: RewardBreakdown | null;
  counts: boolean[];
  old: number[][] | null;
  ref: number[][] | null;
  metrics: Record<string, number>;
  plan: number[][][][] | null;
  iteration: number;
  version: number;
}

export function pendingToJson(p: PendingBatch): PendingBatchJson {
  const { prompts, ...rollout } = p.rollout;
  return {
    prompts: prompts.map((x) => x.index),
    rollout,
    rewards: p.rewards,
    counts: p.counts,
    old: p.old === null ? null : p.old.map((a) => Array.from(a)),
    ref: p.ref === null ? null : p.ref.map((a) => Array.from(a)),
    metrics: p.metrics,
    plan: p.plan,
    iteration: p.iteration,
    version: p.version,
  };
}

/** Inverse of pendingToJson; `prompts` are the run's prompts, looked up by row index. */
export function pendingFromJson(j: PendingBatchJson, prompts: readonly PromptExample[], where: string): PendingBatch {
  const byIndex = new Map(prompts.map((p) => [p.index, p]));
  const rollout: Rollout = {
    ...j.rollout,
    prompts: j.prompts.map((i) => {
      const p = byIndex.get(i);
      if (p === undefined) throw new Error(`${where}: the saved generation batch names prompt row ${i}, which the dataset does not have`);
      return p;
    }),
  };
  return {
    rollout,
    // NaN rewards were written as null; the totals (what training uses) are always finite numbers
    rewards: j.rewards,
    counts: j.counts,
    old: j.old === null ? null : j.old.map((a) => Float32Array.from(a)),
    ref: j.ref === null ? null : j.ref.map((a) => Float32Array.from(a)),
    metrics: j.metrics,
    plan: j.plan,
    iteration: j.iteration,
    version: j.version,
  };
}
