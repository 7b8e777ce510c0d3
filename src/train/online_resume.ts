// A generation batch that is only partly trained on (numIterations > 1 and the run stopped between its
// passes), as JSON for the checkpoint's trainer state, and back. Resuming then continues the same batch with
// the same completions, rewards and old/reference log-probs instead of sampling a new one, so an interrupted
// run equals the uninterrupted one. Float32 values survive JSON exactly (each is a double).
// Not here: advantages (the algorithm's prepare() recomputes them from the restored batch).

import type { RewardBreakdown } from "../rewards/types.js";
import type { PromptExample, Rollout } from "./rollout.js";

/** What the loop keeps of a generation batch between its optimizer steps. */
export interface PendingBatch {
  rollout: Rollout;
  rewards: RewardBreakdown;
  counts: boolean[];
  old: Float32Array[] | null;
  ref: Float32Array[] | null;
  /** Rollout metrics before the algorithm's prepare(). */
  metrics: Record<string, number>;
  /** The next pass over the batch (0-based). */
  iteration: number;
}

/** JSON form: prompts by their row index, typed arrays as plain arrays. */
export interface PendingBatchJson {
  prompts: number[];
  numGenerations: number;
  promptIds: number[][];
  completionIds: number[][];
  completions: string[];
  finishReasons: Rollout["finishReasons"];
  samplingLogprobs: number[][];
  rewards: RewardBreakdown;
  counts: boolean[];
  old: number[][] | null;
  ref: number[][] | null;
  metrics: Record<string, number>;
  iteration: number;
}

export function pendingToJson(p: PendingBatch): PendingBatchJson {
  const r = p.rollout;
  return {
    prompts: r.prompts.map((x) => x.index),
    numGenerations: r.numGenerations,
    promptIds: r.promptIds,
    completionIds: r.completionIds,
    completions: r.completions,
    finishReasons: r.finishReasons,
    samplingLogprobs: r.samplingLogprobs,
    rewards: p.rewards,
    counts: p.counts,
    old: p.old === null ? null : p.old.map((a) => Array.from(a)),
    ref: p.ref === null ? null : p.ref.map((a) => Array.from(a)),
    metrics: p.metrics,
    iteration: p.iteration,
  };
}

/** Inverse of pendingToJson; `prompts` are the run's prompts, looked up by row index. */
export function pendingFromJson(j: PendingBatchJson, prompts: readonly PromptExample[], where: string): PendingBatch {
  const byIndex = new Map(prompts.map((p) => [p.index, p]));
  const rollout: Rollout = {
    prompts: j.prompts.map((i) => {
      const p = byIndex.get(i);
      if (p === undefined) throw new Error(`${where}: the saved generation batch names prompt row ${i}, which the dataset does not have`);
      return p;
    }),
    numGenerations: j.numGenerations,
    promptIds: j.promptIds,
    completionIds: j.completionIds,
    completions: j.completions,
    finishReasons: j.finishReasons,
    samplingLogprobs: j.samplingLogprobs,
  };
  return {
    rollout,
    // NaN rewards were written as null; the totals (what training uses) are always finite numbers
    rewards: j.rewards,
    counts: j.counts,
    old: j.old === null ? null : j.old.map((a) => Float32Array.from(a)),
    ref: j.ref === null ? null : j.ref.map((a) => Float32Array.from(a)),
    metrics: j.metrics,
    iteration: j.iteration,
  };
}
