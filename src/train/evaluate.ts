// Held-out evaluation for any trainer through its own TrainingTask: the task's loss and metrics over the eval rows,
// without gradients, in micro-batches, averaged by the task's units (pairs, examples, tokens) exactly as the
// loop averages a training step; the loop logs them with an `eval_` prefix (TRL: eval_loss,
// eval_rewards/accuracies, eval_rewards/margins, ...). Not here: trainer-specific evaluators (sft, rm, prm).

import { noGradAsync } from "../tensor/index.js";
import type { TrainingTask } from "./loop.js";
import type { Metrics } from "./metrics.js";

/** Mean loss and metrics of `task` over `rows`, `batchSize` rows per forward pass (no gradient). */
export async function evaluateTask<Row>(task: TrainingTask<Row>, rows: readonly Row[], batchSize: number): Promise<Metrics> {
  let units = 0;
  let loss = 0;
  const sums: Record<string, number> = {};
  for (let i = 0; i < rows.length; i += batchSize) {
    const mb = rows.slice(i, i + batchSize);
    const w = task.countUnits(mb);
    const res = await noGradAsync(async () => task.lossSum(mb));
    loss += res.loss.item();
    for (const [k, v] of Object.entries(res.metrics ?? {})) sums[k] = (sums[k] ?? 0) + v * w;
    units += w;
  }
  const out: Metrics = { loss: units > 0 ? loss / units : 0 };
  for (const [k, v] of Object.entries(sums)) out[k] = units > 0 ? v / units : 0;
  return out;
}
