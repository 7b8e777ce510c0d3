// A run's output folder, checked before any training: a path that is a file, a folder that cannot be written or
// has too little free space, and a folder that already holds another run (checkpoints, metrics, a trained model)
// are refused with a message that says what to do. `overwrite` clears such a folder of what Nexus writes there,
// never of anything else, and never a folder the run reads its model, tokenizer or data from.
// Not here: checkpoints themselves (checkpoint.ts) or what a resumed run restores (run_state.ts).

import * as fs from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { removeCheckpoint } from "./checkpoint.js";

export class OutputDirError extends Error {
  override name = "OutputDirError";
}

/** Entries that show a folder holds (part of) a run or a trained model. */
const RUN_MARKERS: readonly RegExp[] = [
  /^checkpoint-\d+$/,
  /^metrics\.jsonl$/,
  /^model(-\d+-of-\d+)?\.safetensors$/,
  /^model\.safetensors\.index\.json$/,
  /^adapter_model\.safetensors$/,
  /^value_model$/,
  /^iteration-\d+$/,
];

/** Everything Nexus may write into an output folder (what `overwrite` may remove). */
const NEXUS_ENTRIES: readonly RegExp[] = [
  ...RUN_MARKERS,
  /^\.checkpoint-\d+\.(tmp|old|del)-\d+$/,
  /^training_config\.json$/,
  /^config\.json$/,
  /^generation_config\.json$/,
  /^adapter_config\.json$/,
  /^tokenizer(_config)?\.json$/,
  /^special_tokens_map\.json$/,
  /^chat_template\.jinja$/,
  /^\.nexus-write-check-\d+$/,
];

/** A file Nexus writes, or the temp file of one of its atomic writes (`<name>.tmp-<pid>`, left by a kill mid-write). */
function isNexusEntry(name: string): boolean {
  const base = name.replace(/\.tmp-\d+(-\d+)?$/, "");
  return NEXUS_ENTRIES.some((r) => r.test(name) || (base !== name && r.test(base)));
}

export interface OutputDirOptions {
  /** Tags messages (`[sft] ...`). */
  label: string;
  /** The run continues what is in the folder: another run's files are expected. */
  resume?: boolean;
  /** Clear a folder that holds another run (Nexus files only). */
  overwrite?: boolean;
  /** Paths the run reads (model, tokenizer, data): never cleared, and an output inside them is refused for overwrite. */
  protect?: readonly (string | null | undefined)[];
  /** Bytes one checkpoint will take; when given, a folder with less free space is refused before training. */
  checkpointBytes?: number;
  /** Name of the flag that chose the folder, for messages (default `--output`). */
  flag?: string;
  /** Whether the command can continue a run (offer --resume in the refusal); false for `nexus init`. Default true. */
  resumable?: boolean;
}

/** Names of the entries in `dir` that belong to an earlier run (empty when none or no folder). */
export function previousRunFiles(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => RUN_MARKERS.some((r) => r.test(n)))
    .sort();
}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOSPC: "no space left on device",
    EDQUOT: "disk quota exceeded",
    ENOTDIR: "a part of the path is a file",
  };
  return err.code && why[err.code] ? `${err.code}: ${why[err.code]}` : err.message;
}

/** A recursive mkdir reports ENOENT on a read-only or unwritable parent: ask the nearest existing ancestor why. */
function whyNotCreatable(dir: string, e: unknown): unknown {
  if ((e as NodeJS.ErrnoException).code !== "ENOENT") return e;
  let cur = resolve(dir);
  while (!fs.existsSync(cur) && dirname(cur) !== cur) cur = dirname(cur);
  try {
    fs.accessSync(cur, fs.constants.W_OK);
  } catch (err) {
    return err;
  }
  return e;
}

function listShort(names: readonly string[]): string {
  return names.length <= 4 ? names.join(", ") : `${names.slice(0, 4).join(", ")} and ${names.length - 4} more`;
}

function isInside(child: string, parent: string): boolean {
  const r = relative(resolve(parent), resolve(child));
  return r === "" || (!r.startsWith("..") && !r.startsWith("/"));
}

/**
 * Make `dir` ready for a run, or throw an OutputDirError that says why and what to do. Creates the folder,
 * proves it writable (and roomy enough when checkpointBytes is given), and applies the resume/overwrite rules.
 */
export function prepareOutputDir(dir: string, o: OutputDirOptions): void {
  const tag = `[${o.label}]`;
  const flag = o.flag ?? "--output";
  if (o.resume && o.overwrite) throw new OutputDirError(`${tag} --resume and --overwrite contradict each other: pick one`);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new OutputDirError(`${tag} ${flag} ${dir} is a file, not a folder: give a folder path (it is created if missing)`);
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new OutputDirError(`${tag} cannot create the output folder ${dir} (${errnoText(whyNotCreatable(dir, e))})`);
  }
  const previous = previousRunFiles(dir);
  if (previous.length > 0 && !o.resume) {
    if (!o.overwrite) {
      throw new OutputDirError(
        o.resumable === false
          ? `${tag} ${dir} already holds a model or run (${listShort(previous)}): pass --overwrite to replace it, or choose another ${flag}`
          : `${tag} ${dir} already holds another run (${listShort(previous)}): pass --resume to continue it, --overwrite to replace it, or choose another ${flag}`,
      );
    }
    clearRunFiles(dir, o);
  }
  // prove the folder writable now rather than at the first checkpoint
  const probe = join(dir, `.nexus-write-check-${process.pid}`);
  try {
    const fd = fs.openSync(probe, "w");
    try {
      fs.writeSync(fd, Buffer.alloc(4096));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw new OutputDirError(`${tag} cannot write to the output folder ${dir} (${errnoText(e)})`);
  } finally {
    fs.rmSync(probe, { force: true });
  }
  if (o.checkpointBytes !== undefined && o.checkpointBytes > 0) {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    if (free < o.checkpointBytes) {
      throw new OutputDirError(
        `${tag} the output folder ${dir} has ${formatBytes(free)} free; one checkpoint of this run needs about ${formatBytes(o.checkpointBytes)}`,
      );
    }
  }
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(b: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${i === 0 ? b : b.toFixed(1)} ${units[i]}`;
}

/** Remove what an earlier run wrote into dir; refuse when it holds other files or a path the run reads. */
function clearRunFiles(dir: string, o: OutputDirOptions): void {
  const tag = `[${o.label}]`;
  for (const p of o.protect ?? []) {
    if (typeof p === "string" && p !== "" && (isInside(p, dir) || isInside(dir, p))) {
      throw new OutputDirError(`${tag} --overwrite would clear ${dir}, which holds ${p} that this run reads: choose another output folder`);
    }
  }
  const entries = fs.readdirSync(dir);
  const foreign = entries.filter((n) => !isNexusEntry(n));
  if (foreign.length > 0) {
    throw new OutputDirError(
      `${tag} --overwrite: ${dir} also holds files Nexus did not write (${listShort(foreign)}); remove them yourself or choose another output folder`,
    );
  }
  // checkpoints leave their name before their files go, so a kill here never leaves a half-deleted one
  for (const n of entries) {
    const m = /^checkpoint-(\d+)$/.exec(n);
    if (m !== null) removeCheckpoint(dir, Number(m[1]));
    else fs.rmSync(join(dir, n), { recursive: true, force: true });
  }
}
