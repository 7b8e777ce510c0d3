// The whole state of a training run, saved and restored in one place: trainable weights, optimizer moments,
// step, running totals, RNG state, data position (cursor), a trainer's own typed state and its tensors (e.g. a
// synced reference), with the resolved config next to them. Every loop (runTraining, runOnlineRl, runOnline)
// checkpoints and resumes through `RunCheckpointer`; none restores fields by hand.
// Not here: the on-disk format and its atomicity (checkpoint.ts), deciding when to save (loop.ts afterStep).

import type { AdamW } from "../nn/optim.js";
import type { Rng } from "../nn/rng.js";
import type { Tensor } from "../tensor/tensor.js";
import { CheckpointError, latestCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";

/** Where a run stands: what a checkpoint records besides tensors, and what `restore()` hands back. */
export interface RunProgress<S extends Record<string, unknown> = Record<string, unknown>> {
  /** Optimizer steps taken. */
  step: number;
  /** Steps the run was planned for. */
  totalSteps: number;
  /** Fractional epochs consumed. */
  epoch: number;
  /** Running totals (e.g. `num_tokens`), kept across resume. */
  totals: Record<string, number>;
  /** Data position: rows or prompts consumed so far, for loops that do not derive it from the step. */
  cursor?: number;
  /** The trainer's own state (JSON-serialisable). */
  trainer?: S;
}

export interface RunCheckpointerOptions {
  /** Checkpoints go to `<outputDir>/checkpoint-<step>`; null keeps the run in memory (save and restore do nothing). */
  outputDir: string | null;
  /** Tags messages (`[sft] resumed from ...`). */
  label: string;
  quiet?: boolean;
  /** Trainable parameters by name: saved as model.safetensors, restored in place. */
  named: readonly [string, Tensor][];
  optimizer: AdamW;
  /** Names of optimizer.params(), in its order. */
  optNames: readonly string[];
  /** The run's RNG (sampling, shuffles); its state is saved and restored when given. */
  rng?: Rng | null;
  /** Further tensors of the trainer that change during the run (e.g. a TR-DPO reference), restored in place. */
  trainerTensors?: readonly [string, Tensor][];
  /** The resolved config, written next to every checkpoint. */
  config: Record<string, unknown>;
  /** Checkpoints kept on disk (oldest removed). */
  keep: number;
}

export class RunCheckpointer<S extends Record<string, unknown> = Record<string, unknown>> {
  constructor(private readonly o: RunCheckpointerOptions) {}

  /** Write checkpoint-<step> (atomically, see checkpoint.ts); returns its folder, or null for in-memory runs. */
  save(p: RunProgress<S>): string | null {
    const o = this.o;
    if (o.outputDir === null) return null;
    const state: Record<string, unknown> & { step: number; epoch: number } = {
      step: p.step,
      epoch: p.epoch,
      totalSteps: p.totalSteps,
      totals: p.totals,
    };
    if (p.cursor !== undefined) state.cursor = p.cursor;
    if (o.rng) state.rng = o.rng.getState();
    if (p.trainer !== undefined) state.trainer = p.trainer;
    return saveCheckpoint(
      o.outputDir,
      p.step,
      {
        weights: o.named,
        optimizer: o.optimizer.namedState(o.optNames),
        state,
        config: o.config,
        trainerTensors: o.trainerTensors,
      },
      o.keep,
    );
  }

  /**
   * Load the newest checkpoint of outputDir into the weights, optimizer, RNG and trainer tensors and return the
   * saved progress; null (with a note) when there is none.
   */
  restore(): (RunProgress<S> & { dir: string }) | null {
    const o = this.o;
    if (o.outputDir === null) return null;
    const dir = latestCheckpoint(o.outputDir);
    if (dir === null) {
      if (!o.quiet) process.stderr.write(`[${o.label}] resume: no checkpoint in ${o.outputDir}, starting at step 0\n`);
      return null;
    }
    const ck = loadCheckpoint(dir);
    copyInto(o.label, dir, "weight", new Map(o.named), ck.weights);
    o.optimizer.loadNamedState(o.optNames, ck.optimizer);
    if (o.trainerTensors !== undefined && o.trainerTensors.length > 0) {
      if (ck.trainerTensors === null) throw new CheckpointError(`[${o.label}] checkpoint ${dir} has no trainer tensors to restore`);
      copyInto(o.label, dir, "trainer tensor", new Map(o.trainerTensors), ck.trainerTensors);
    }
    const s = ck.state;
    if (o.rng) {
      if (!Array.isArray(s.rng)) throw new CheckpointError(`[${o.label}] checkpoint ${dir} has no RNG state`);
      o.rng.setState(s.rng as number[]);
    }
    const totals = { ...((s.totals as Record<string, number> | undefined) ?? {}) };
    if (!o.quiet) process.stderr.write(`[${o.label}] resumed from ${dir} at step ${s.step}\n`);
    return {
      dir,
      step: s.step,
      epoch: s.epoch,
      totalSteps: Number(s.totalSteps ?? 0),
      totals,
      cursor: s.cursor === undefined ? undefined : Number(s.cursor),
      trainer: s.trainer as S | undefined,
    };
  }
}

function copyInto(label: string, dir: string, what: string, into: Map<string, Tensor>, from: Map<string, Float32Array>): void {
  for (const [name, data] of from) {
    const t = into.get(name);
    if (t === undefined) throw new CheckpointError(`[${label}] checkpoint ${dir} has ${what} '${name}' the run does not have`);
    if (t.size !== data.length)
      throw new CheckpointError(`[${label}] checkpoint ${dir}: ${what} '${name}' has ${data.length} values, the run ${t.size}`);
    t.data.set(data);
  }
  for (const name of into.keys()) {
    if (!from.has(name)) throw new CheckpointError(`[${label}] checkpoint ${dir} lacks ${what} '${name}'`);
  }
}
