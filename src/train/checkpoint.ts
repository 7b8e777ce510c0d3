// Checkpoints on disk: a folder per step holding the trainable weights (safetensors, HF names), the optimizer
// state, the trainer state (step, RNG, data position), the resolved config and a manifest with the size and
// sha256 of every file. A checkpoint is written into a temp folder (each file fsynced), the manifest last, then
// renamed into place and the parent folder fsynced, so a kill at any moment leaves either the complete folder or
// none; loading verifies the checksums, the trainer state's schema and that every value is finite.
// Not here: which checkpoint a run resumes from and what it restores (run_state.ts).

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { z } from "zod";
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

export interface CheckpointParts {
  weights: Iterable<[string, Tensor]>;
  optimizer: Iterable<[string, Float32Array]>;
  state: TrainerState;
  config: Record<string, unknown>;
  trainerTensors?: Iterable<[string, Tensor]>;
}

export const MANIFEST = "manifest.json";
const FORMAT = "nexus-checkpoint/1";
const DIR_RE = /^checkpoint-(\d+)$/;
const TEMP_RE = /^\.checkpoint-(\d+)\.(tmp|old|del)-(\d+)$/;

/** trainer_state.json as every loop writes it; unknown keys are kept (trainers may add their own). */
const STATE_SCHEMA = z.looseObject({
  step: z.number().int().nonnegative(),
  epoch: z.number().nonnegative(),
  totalSteps: z.number().int().nonnegative().optional(),
  totals: z.record(z.string(), z.number().nullable()).optional(),
  cursor: z.number().int().nonnegative().optional(),
  rng: z.array(z.number().int().min(0).max(0xffffffff)).length(4).optional(),
  trainer: z.record(z.string(), z.unknown()).optional(),
});

const MANIFEST_SCHEMA = z.object({
  format: z.literal(FORMAT),
  step: z.number().int().nonnegative(),
  files: z.record(z.string(), z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
});

function toDict(tensors: Iterable<[string, Tensor | Float32Array]>) {
  const dict: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) {
    if (t instanceof Float32Array) dict[name] = { dtype: "F32", shape: [t.length], data: t };
    else dict[name] = { dtype: "F32", shape: [...t.shape], data: Float32Array.from(t.hostData()) };
  }
  return dict;
}

/** Name and index of the first NaN or infinite value, or null. */
export function firstNonFinite(arrays: Iterable<[string, ArrayLike<number>]>): { name: string; index: number; value: number } | null {
  for (const [name, a] of arrays) {
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return { name, index: i, value: a[i] };
  }
  return null;
}

function dataOf(entries: Iterable<[string, Tensor | Float32Array]>): [string, ArrayLike<number>][] {
  return [...entries].map(([n, t]) => [n, t instanceof Float32Array ? t : t.hostData()]);
}

function writeFileSynced(path: string, text: string): void {
  const fd = fs.openSync(path, "w");
  try {
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a folder so a rename inside it is durable (a no-op where the platform cannot open folders). */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL") throw e;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

function sha256File(path: string): { bytes: number; sha256: string } {
  const h = createHash("sha256");
  const fd = fs.openSync(path, "r");
  const buf = Buffer.allocUnsafe(1 << 22);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: h.digest("hex") };
}

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `checkpoint-${step}`);
}

/**
 * Write checkpoint-<step> under `outputDir` atomically and durably, then keep at most `keep` checkpoints: the new
 * one and the newest older ones. Checkpoints with a higher step than this one are removed (they belong to a
 * timeline the run abandoned, e.g. a damaged checkpoint skipped on resume). Refuses non-finite values.
 */
export function saveCheckpoint(outputDir: string, step: number, parts: CheckpointParts, keep = 2): string {
  const bad = firstNonFinite([...dataOf(parts.weights), ...dataOf(parts.optimizer), ...dataOf(parts.trainerTensors ?? [])]);
  if (bad !== null) {
    throw new CheckpointError(
      `[checkpoint] refusing to write checkpoint-${step}: '${bad.name}' holds ${bad.value} at index ${bad.index} (the checkpoints already on disk are kept)`,
    );
  }
  fs.mkdirSync(outputDir, { recursive: true });
  const final = checkpointDir(outputDir, step);
  const tmp = join(outputDir, `.checkpoint-${step}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    fs.mkdirSync(tmp);
    const files: Record<string, { bytes: number; sha256: string }> = {};
    const add = (name: string) => {
      files[name] = sha256File(join(tmp, name));
    };
    writeSafetensors(join(tmp, "model.safetensors"), toDict(parts.weights));
    add("model.safetensors");
    writeSafetensors(join(tmp, "optimizer.safetensors"), toDict(parts.optimizer));
    add("optimizer.safetensors");
    if (parts.trainerTensors !== undefined) {
      writeSafetensors(join(tmp, "trainer_tensors.safetensors"), toDict(parts.trainerTensors));
      add("trainer_tensors.safetensors");
    }
    writeFileSynced(join(tmp, "trainer_state.json"), `${JSON.stringify(parts.state, null, 2)}\n`);
    add("trainer_state.json");
    writeFileSynced(join(tmp, "config.json"), `${JSON.stringify(parts.config, null, 2)}\n`);
    add("config.json");
    writeFileSynced(join(tmp, MANIFEST), `${JSON.stringify({ format: FORMAT, step, files }, null, 2)}\n`);
    fsyncDir(tmp);
    if (fs.existsSync(final)) {
      // replace in two renames; a kill in between leaves the old copy under .old, which cleanup puts back
      const old = join(outputDir, `.checkpoint-${step}.old-${process.pid}`);
      fs.rmSync(old, { recursive: true, force: true });
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      // .old means "complete: put me back" to the cleanup, so it leaves that name before its files go
      const gone = join(outputDir, `.checkpoint-${step}.del-${process.pid}`);
      fs.rmSync(gone, { recursive: true, force: true });
      fs.renameSync(old, gone);
      fs.rmSync(gone, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, final);
    }
    fsyncDir(outputDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    throw new CheckpointError(
      `[checkpoint] could not write checkpoint-${step} in ${outputDir}: ${err.message} (the checkpoints already on disk are kept)`,
    );
  }
  const others = checkpointFolders(outputDir).filter((s) => s !== step);
  const older = others.filter((s) => s < step);
  const stale = [...others.filter((s) => s > step), ...older.slice(0, Math.max(0, older.length - (keep - 1)))];
  for (const s of stale) removeCheckpoint(outputDir, s);
  return final;
}

/**
 * Delete checkpoint-<step>: renamed out of the checkpoint namespace first (atomic), then removed, so a kill during
 * the deletion never leaves a half-deleted folder that looks like a checkpoint.
 */
export function removeCheckpoint(outputDir: string, step: number): void {
  const doomed = join(outputDir, `.checkpoint-${step}.del-${process.pid}`);
  fs.rmSync(doomed, { recursive: true, force: true });
  fs.renameSync(checkpointDir(outputDir, step), doomed);
  fs.rmSync(doomed, { recursive: true, force: true });
}

/** Steps of every folder named checkpoint-<N> (complete or not), ascending. */
export function checkpointFolders(outputDir: string): number[] {
  if (!fs.existsSync(outputDir) || !fs.statSync(outputDir).isDirectory()) return [];
  return fs
    .readdirSync(outputDir)
    .map((d) => DIR_RE.exec(d))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Steps of the checkpoints in outputDir that have a manifest (complete writes; not yet verified), ascending. */
export function listCheckpoints(outputDir: string): number[] {
  return checkpointFolders(outputDir).filter((s) => fs.existsSync(join(checkpointDir(outputDir, s), MANIFEST)));
}

export function latestCheckpoint(outputDir: string): string | null {
  const all = listCheckpoints(outputDir);
  return all.length === 0 ? null : checkpointDir(outputDir, all[all.length - 1]);
}

/**
 * Remove what a kill during a save or a deletion leaves behind (`.checkpoint-N.tmp-PID` and `.del-PID` folders of
 * processes that are gone), and put back a checkpoint caught between the two renames of a replacement.
 * Returns the folders removed.
 */
export function removeStaleTemps(outputDir: string): string[] {
  if (!fs.existsSync(outputDir) || !fs.statSync(outputDir).isDirectory()) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(outputDir)) {
    const m = TEMP_RE.exec(name);
    if (m === null) continue;
    const pid = Number(m[3]);
    if (pid !== process.pid && processAlive(pid)) continue; // another live process is writing it
    const path = join(outputDir, name);
    const final = checkpointDir(outputDir, Number(m[1]));
    if (m[2] === "old" && !fs.existsSync(final)) {
      fs.renameSync(path, final);
      continue;
    }
    fs.rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readJson(path: string): unknown {
  const text = fs.readFileSync(path, "utf8");
  if (text.trim() === "") throw new CheckpointError(`[checkpoint] ${path} is empty`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`[checkpoint] ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Parse and validate trainer_state.json (types and ranges; step <= totalSteps). */
export function readTrainerState(path: string): TrainerState {
  const parsed = STATE_SCHEMA.safeParse(readJson(path));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join(".") || "(root)";
    throw new CheckpointError(`[checkpoint] ${path}: field '${field}': ${issue.message}`);
  }
  const s = parsed.data;
  if (s.totalSteps !== undefined && s.step > s.totalSteps) {
    throw new CheckpointError(`[checkpoint] ${path}: step ${s.step} is past totalSteps ${s.totalSteps}`);
  }
  return s as TrainerState;
}

/** Check the manifest: every listed file present with its size and sha256, and the core files listed. */
export function verifyCheckpoint(dir: string): void {
  const mpath = join(dir, MANIFEST);
  if (!fs.existsSync(mpath))
    throw new CheckpointError(`[checkpoint] ${dir} has no ${MANIFEST} (an incomplete write, or not a Nexus checkpoint)`);
  const parsed = MANIFEST_SCHEMA.safeParse(readJson(mpath));
  if (!parsed.success) throw new CheckpointError(`[checkpoint] ${mpath} is malformed: ${parsed.error.issues[0].message}`);
  const m = parsed.data;
  const folderStep = DIR_RE.exec(dir.split(/[\\/]/).pop() ?? "");
  if (folderStep !== null && Number(folderStep[1]) !== m.step) {
    throw new CheckpointError(`[checkpoint] ${mpath} says step ${m.step}, the folder is ${dir}`);
  }
  for (const need of ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"]) {
    if (!(need in m.files)) throw new CheckpointError(`[checkpoint] ${mpath} does not list ${need}`);
  }
  for (const [name, want] of Object.entries(m.files)) {
    const path = join(dir, name);
    if (!fs.existsSync(path)) throw new CheckpointError(`[checkpoint] ${dir} is missing ${name}`);
    const got = sha256File(path);
    if (got.bytes !== want.bytes) throw new CheckpointError(`[checkpoint] ${path} has ${got.bytes} bytes, the manifest says ${want.bytes}`);
    if (got.sha256 !== want.sha256)
      throw new CheckpointError(`[checkpoint] ${path} does not match its sha256 in the manifest (the file is damaged)`);
  }
}

/** Load a checkpoint folder; verifies checksums, the trainer state and finiteness first (CheckpointError naming the file). */
export function loadCheckpoint(dir: string): CheckpointContents {
  verifyCheckpoint(dir);
  const read = (file: string) => {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of readSafetensors(join(dir, file)).tensors) out.set(name, t.data as Float32Array);
    return out;
  };
  const state = readTrainerState(join(dir, "trainer_state.json"));
  const config = readJson(join(dir, "config.json"));
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new CheckpointError(`[checkpoint] ${join(dir, "config.json")} is not a JSON object`);
  }
  const weights = read("model.safetensors");
  const optimizer = read("optimizer.safetensors");
  const trainerTensors = fs.existsSync(join(dir, "trainer_tensors.safetensors")) ? read("trainer_tensors.safetensors") : null;
  const bad = firstNonFinite([...weights, ...optimizer, ...(trainerTensors ?? [])]);
  if (bad !== null) throw new CheckpointError(`[checkpoint] ${dir}: '${bad.name}' holds ${bad.value} at index ${bad.index}`);
  return { weights, optimizer, state, config: config as Record<string, unknown>, trainerTensors };
}
