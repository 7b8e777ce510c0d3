// The whole state of a training run, saved and restored in one place: trainable weights, optimizer moments,
// step, running totals, RNG state, data position (cursor), a trainer's own typed state and its tensors (e.g. a
// synced reference), with the resolved config next to them. Every loop (runTraining, runOnline)
// starts, checkpoints and resumes through `RunCheckpointer`: it readies the output folder, removes what a kill
// during a save left, resumes from the newest checkpoint that verifies (naming those it skips and why), refuses a
// changed config unless allowed, and drops metrics records past the resumed step.
// Not here: the on-disk format and its atomicity (checkpoint.ts), deciding when to save (loop.ts afterStep).

import type { AdamW } from "../nn/optim.js";
import type { Rng } from "../nn/rng.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  type CheckpointContents,
  CheckpointError,
  checkpointDir,
  checkpointFolders,
  loadCheckpoint,
  removeStaleTemps,
  saveCheckpoint,
} from "./checkpoint.js";
import { truncateMetrics } from "./metrics.js";
import { prepareOutputDir } from "./output_dir.js";

export class RunStateError extends Error {
  override name = "RunStateError";
}

/** Raised by a loop after it wrote a checkpoint because its run was asked to stop (RunControl.signal). */
export class TrainingInterrupted extends Error {
  override name = "TrainingInterrupted";
  constructor(
    readonly label: string,
    readonly step: number,
    /** The checkpoint written at the interruption (null for in-memory runs). */
    readonly checkpoint: string | null,
  ) {
    super(`[${label}] interrupted after step ${step}${checkpoint === null ? "" : `; checkpoint written to ${checkpoint}`}`);
  }
}

/** How a run treats its output folder and outside interruptions; every trainer's options accept these. */
export interface RunControl {
  /** Continue from the newest good checkpoint in the output folder (its config must match). */
  resume?: boolean;
  /** Clear an output folder that holds another run (only files Nexus writes) instead of refusing. */
  overwrite?: boolean;
  /** Resume although the config differs from the checkpoint's (the changed keys are printed). */
  allowConfigChange?: boolean;
  /** When aborted, the run writes a checkpoint at the next step boundary and rejects with TrainingInterrupted. */
  signal?: AbortSignal;
}

/** The RunControl fields of a trainer's options (for passing them on to a loop). */
export function runControl(o: RunControl): RunControl {
  return { resume: o.resume, overwrite: o.overwrite, allowConfigChange: o.allowConfigChange, signal: o.signal };
}

/** Where a run stands: what a checkpoint records besides tensors, and what `start()` hands back. */
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
  /** Checkpoints go to `<outputDir>/checkpoint-<step>`; null keeps the run in memory (nothing is read or written). */
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
  /** The loop tracks a data cursor: a checkpoint without one is not usable. */
  cursor?: boolean;
  /** Further tensors of the trainer that change during the run (e.g. a TR-DPO reference), restored in place. */
  trainerTensors?: readonly [string, Tensor][];
  /** The resolved config, written next to every checkpoint and compared on resume. */
  config: Record<string, unknown>;
  /** Checkpoints kept on disk (oldest removed). */
  keep: number;
  /** Steps this run is planned for (a checkpoint past it is refused). */
  totalSteps: number;
  control?: RunControl;
}

/** Config keys that do not change what a run computes (logging, saving, how it was launched). */
const NEUTRAL_KEYS = new Set([
  "resume",
  "overwrite",
  "allowConfigChange",
  "output",
  "outputDir",
  "saveSteps",
  "saveTotalLimit",
  "loggingSteps",
  "evalSteps",
  "evalData",
  "onNonfinite",
]);

export interface ConfigChange {
  key: string;
  saved: unknown;
  now: unknown;
}

/** Keys whose values differ between a checkpoint's config and this run's (neutral keys ignored). */
export function configChanges(saved: Record<string, unknown>, now: Record<string, unknown>): ConfigChange[] {
  const norm = (v: unknown) => (v === undefined ? "undefined" : JSON.stringify(v));
  const current = JSON.parse(JSON.stringify(now)) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])].filter((k) => !NEUTRAL_KEYS.has(k)).sort();
  return keys.filter((k) => norm(saved[k]) !== norm(current[k])).map((k) => ({ key: k, saved: saved[k], now: current[k] }));
}

const show = (v: unknown) => (v === undefined ? "(unset)" : JSON.stringify(v));

export class RunCheckpointer<S extends Record<string, unknown> = Record<string, unknown>> {
  private readonly control: RunControl;

  constructor(private readonly o: RunCheckpointerOptions) {
    this.control = o.control ?? {};
  }

  private note(msg: string): void {
    if (!this.o.quiet) process.stderr.write(`[${this.o.label}] ${msg}\n`);
  }

  /** Whether the run was asked to stop (checked at step boundaries). */
  get stopRequested(): boolean {
    return this.control.signal?.aborted === true;
  }

  /**
   * Ready the output folder (see output_dir.ts), remove temp folders of interrupted saves and, when resuming,
   * restore the newest good checkpoint into the weights, optimizer, RNG and trainer tensors. Returns the
   * saved progress, or null for a run that starts at step 0.
   */
  start(): (RunProgress<S> & { dir: string }) | null {
    const o = this.o;
    const out = o.outputDir;
    if (out === null) return null;
    const paramBytes = o.named.reduce((a, [, t]) => a + t.size * 4, 0);
    prepareOutputDir(out, {
      label: o.label,
      resume: this.control.resume,
      overwrite: this.control.overwrite,
      checkpointBytes: 3 * paramBytes,
    });
    for (const p of removeStaleTemps(out)) this.note(`removed ${p}, left by a save that was interrupted`);
    if (!this.control.resume) return null;
    const restored = this.restoreNewestGood(out);
    const dropped = truncateMetrics(`${out}/metrics.jsonl`, restored?.step ?? 0);
    if (dropped > 0)
      this.note(`dropped ${dropped} metrics.jsonl record(s) past step ${restored?.step ?? 0}, logged before the interruption`);
    return restored;
  }

  private restoreNewestGood(out: string): (RunProgress<S> & { dir: string }) | null {
    const o = this.o;
    const skipped: string[] = [];
    for (const step of checkpointFolders(out).reverse()) {
      const dir = checkpointDir(out, step);
      let ck: CheckpointContents;
      try {
        ck = loadCheckpoint(dir);
        this.checkState(dir, step, ck);
      } catch (e) {
        if (!(e instanceof CheckpointError) && (e as Error).name !== "SafetensorsError") throw e;
        const why = (e as Error).message.replace(/^\[checkpoint\] /, "");
        skipped.push(`checkpoint-${step}: ${why}`);
        this.note(`skipping ${dir}: ${why}`);
        continue;
      }
      return this.apply(dir, ck, skipped);
    }
    if (skipped.length > 0) {
      throw new RunStateError(
        `[${o.label}] --resume: no usable checkpoint in ${out} (${skipped.join("; ")}); pass --overwrite to start over`,
      );
    }
    this.note(`resume: no checkpoint in ${out}, starting at step 0`);
    return null;
  }

  /** What every loop needs from trainer_state.json beyond its schema. */
  private checkState(dir: string, step: number, ck: CheckpointContents): void {
    const s = ck.state;
    const path = `${dir}/trainer_state.json`;
    if (s.step !== step) throw new CheckpointError(`${path} says step ${s.step}, the folder is checkpoint-${step}`);
    if (this.o.rng && !Array.isArray(s.rng)) throw new CheckpointError(`${path} has no RNG state ('rng')`);
    if (this.o.cursor && s.cursor === undefined) throw new CheckpointError(`${path} has no data position ('cursor')`);
    if ((this.o.trainerTensors?.length ?? 0) > 0 && ck.trainerTensors === null) {
      throw new CheckpointError(`${dir} has no trainer_tensors.safetensors`);
    }
  }

  private apply(dir: string, ck: CheckpointContents, skipped: string[]): RunProgress<S> & { dir: string } {
    const o = this.o;
    const s = ck.state;
    const changes = configChanges(ck.config, o.config);
    const savedTotal = typeof s.totalSteps === "number" ? s.totalSteps : null;
    const schedule =
      savedTotal !== null && savedTotal !== o.totalSteps
        ? `the schedule changes: the run was planned for ${savedTotal} steps and now ends at step ${o.totalSteps}`
        : null;
    if (changes.length > 0) {
      const list = changes.map((c) => `${c.key}: ${show(c.saved)} -> ${show(c.now)}`).join(", ");
      if (!this.control.allowConfigChange) {
        throw new RunStateError(
          `[${o.label}] --resume: the config differs from ${dir}/config.json (${list}${schedule === null ? "" : `; ${schedule}`}); resume with the same settings, or pass --allow-config-change to continue with the new ones`,
        );
      }
      this.note(`resuming with a changed config (${list})`);
    }
    if (s.step > o.totalSteps) {
      throw new RunStateError(`[${o.label}] --resume: ${dir} is at step ${s.step}, past this run's ${o.totalSteps} steps`);
    }
    if (schedule !== null) this.note(`${schedule}; from step ${s.step + 1} the learning rate follows the new schedule`);
    copyInto(o.label, dir, "weight", new Map(o.named), ck.weights);
    o.optimizer.loadNamedState(o.optNames, ck.optimizer);
    if (o.trainerTensors !== undefined && ck.trainerTensors !== null) {
      copyInto(o.label, dir, "trainer tensor", new Map(o.trainerTensors), ck.trainerTensors);
    }
    if (o.rng) o.rng.setState(s.rng as number[]);
    const skippedNote = skipped.length > 0 ? ` (skipped ${skipped.map((x) => x.split(":")[0]).join(", ")})` : "";
    this.note(`resumed from ${dir} at step ${s.step}${skippedNote}`);
    return {
      dir,
      step: s.step,
      epoch: s.epoch,
      totalSteps: savedTotal ?? o.totalSteps,
      totals: { ...((s.totals as Record<string, number> | undefined) ?? {}) },
      cursor: s.cursor === undefined ? undefined : Number(s.cursor),
      trainer: s.trainer as S | undefined,
    };
  }

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
}

function copyInto(label: string, dir: string, what: string, into: Map<string, Tensor>, from: Map<string, Float32Array>): void {
  for (const name of into.keys()) {
    if (!from.has(name)) throw new RunStateError(`[${label}] checkpoint ${dir} lacks ${what} '${name}': it was made for another model`);
  }
  for (const [name, data] of from) {
    const t = into.get(name);
    if (t === undefined) throw new RunStateError(`[${label}] checkpoint ${dir} has ${what} '${name}' that this run does not train`);
    if (t.size !== data.length) {
      throw new RunStateError(`[${label}] checkpoint ${dir}: ${what} '${name}' has ${data.length} values, this run's ${t.size}`);
    }
  }
  for (const [name, data] of from) (into.get(name) as Tensor).copyFrom(data);
}

/** Yield to the event loop so signal handlers (Ctrl-C) run between steps of an otherwise synchronous loop. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
