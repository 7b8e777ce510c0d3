// Checkpoints: a folder per step holding the trainable weights (safetensors, HF names), the optimizer state,
// the resolved config and the trainer state (step, RNG, metrics). Written to a temp folder and renamed, so a
// crash mid-write never leaves a checkpoint that looks complete; `latestCheckpoint` finds the newest one.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, writeSafetensors } from "../io/safetensors.js";
import type { Tensor } from "../tensor/tensor.js";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

export interface TrainerState {
  step: number;
  epoch: number;
  /** Free-form state of the trainer (RNG state, best metric, data position...). */
  [key: string]: unknown;
}

export interface CheckpointContents {
  weights: Map<string, Float32Array>;
  optimizer: Map<string, Float32Array>;
  state: TrainerState;
  config: Record<string, unknown>;
  /** Tensors of the trainer itself (trainer_tensors.safetensors), null when the checkpoint has none. */
  trainerTensors: Map<string, Float32Array> | null;
}

const DIR_RE = /^checkpoint-(\d+)$/;

function toDict(tensors: Iterable<[string, Tensor | Float32Array]>, shapes?: Map<string, readonly number[]>) {
  const dict: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) {
    if (t instanceof Float32Array) dict[name] = { dtype: "F32", shape: [...(shapes?.get(name) ?? [t.length])], data: t };
    else dict[name] = { dtype: "F32", shape: [...t.shape], data: t.data as Float32Array };
  }
  return dict;
}

/** Write checkpoint-<step> under `outputDir` atomically; keeps at most `keep` checkpoints (oldest removed). */
export function saveCheckpoint(
  outputDir: string,
  step: number,
  parts: {
    weights: Iterable<[string, Tensor]>;
    optimizer: Iterable<[string, Float32Array]>;
    state: TrainerState;
    config: Record<string, unknown>;
    trainerTensors?: Iterable<[string, Tensor]>;
  },
  keep = 2,
): string {
  mkdirSync(outputDir, { recursive: true });
  const final = join(outputDir, `checkpoint-${step}`);
  const tmp = join(outputDir, `.checkpoint-${step}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeSafetensors(join(tmp, "model.safetensors"), toDict(parts.weights));
  writeSafetensors(join(tmp, "optimizer.safetensors"), toDict(parts.optimizer));
  if (parts.trainerTensors !== undefined) writeSafetensors(join(tmp, "trainer_tensors.safetensors"), toDict(parts.trainerTensors));
  writeFileSync(join(tmp, "trainer_state.json"), `${JSON.stringify(parts.state, null, 2)}\n`);
  writeFileSync(join(tmp, "config.json"), `${JSON.stringify(parts.config, null, 2)}\n`);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  const all = listCheckpoints(outputDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep)))
    rmSync(join(outputDir, `checkpoint-${old}`), { recursive: true, force: true });
  return final;
}

/** Steps of the complete checkpoints in outputDir, ascending. */
export function listCheckpoints(outputDir: string): number[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((d) => DIR_RE.exec(d))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(outputDir, m[0], "trainer_state.json")))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export function latestCheckpoint(outputDir: string): string | null {
  const all = listCheckpoints(outputDir);
  return all.length === 0 ? null : join(outputDir, `checkpoint-${all[all.length - 1]}`);
}

export function loadCheckpoint(dir: string): CheckpointContents {
  const need = ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"];
  for (const f of need) if (!existsSync(join(dir, f))) throw new CheckpointError(`[checkpoint] ${dir} is missing ${f}`);
  const read = (file: string) => {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of readSafetensors(join(dir, file)).tensors) out.set(name, t.data as Float32Array);
    return out;
  };
  return {
    weights: read("model.safetensors"),
    optimizer: read("optimizer.safetensors"),
    state: JSON.parse(readFileSync(join(dir, "trainer_state.json"), "utf8")) as TrainerState,
    config: JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>,
    trainerTensors: existsSync(join(dir, "trainer_tensors.safetensors")) ? read("trainer_tensors.safetensors") : null,
  };
}
