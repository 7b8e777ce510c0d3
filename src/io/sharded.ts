// Sharded Hugging Face checkpoints: `model.safetensors.index.json` (`weight_map`) plus
// `model-0000i-of-0000N.safetensors`, or a single `model.safetensors`. Shards are split the way
// huggingface_hub's split_state_dict_into_shards does for transformers' save_pretrained, and the index is
// written as transformers writes it (indent 2, sorted keys, metadata.total_parameters and total_size).
// Not here: tied-weight deduplication (callers pass each stored tensor once) or variants ("model.fp16...").

import * as fs from "node:fs";
import * as path from "node:path";
import { describeValue } from "./describe.js";
import {
  type LoadedTensor,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  type TensorDict,
  type TensorInfo,
  type WritableTensor,
  writableBytes,
  writeFileAtomic,
  writeSafetensors,
} from "./safetensors.js";

export const SAFE_WEIGHTS_NAME = "model.safetensors";
export const SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json";
/** transformers 5's default `max_shard_size` ("50GB", decimal units). */
export const DEFAULT_MAX_SHARD_BYTES = 50 * 10 ** 9;

const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

export interface ShardedContents {
  tensors: Map<string, LoadedTensor>;
  /** `__metadata__` of the (first) shard. */
  metadata: Record<string, string> | null;
  /** The index's `metadata` object when the checkpoint is sharded, else null. */
  indexMetadata: Record<string, unknown> | null;
  /** The files read, relative to the directory. */
  files: string[];
}

function fail(where: string, msg: string): never {
  throw new SafetensorsError(`[safetensors] ${where}: ${msg}`);
}

interface ShardLayout {
  /** The index file, or null for a single `model.safetensors`. */
  indexPath: string | null;
  /** Shard file (relative) → the tensor names the index puts in it; one entry "model.safetensors" → null when single. */
  byFile: Map<string, string[] | null>;
  weightMap: Record<string, unknown> | null;
  indexMetadata: Record<string, unknown> | null;
}

/** Which files hold the checkpoint in `dir`, from its index (checked: names stay inside dir) or the single file. */
function shardLayout(dir: string): ShardLayout {
  const indexPath = path.join(dir, SAFE_WEIGHTS_INDEX_NAME);
  if (!fs.existsSync(indexPath)) {
    const single = path.join(dir, SAFE_WEIGHTS_NAME);
    if (!fs.existsSync(single)) fail(dir, `neither ${SAFE_WEIGHTS_INDEX_NAME} nor ${SAFE_WEIGHTS_NAME} exists`);
    return { indexPath: null, byFile: new Map([[SAFE_WEIGHTS_NAME, null]]), weightMap: null, indexMetadata: null };
  }
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, "utf-8"));
  } catch (e) {
    fail(indexPath, `not valid JSON (${(e as Error).message})`);
  }
  if (index === null || typeof index !== "object" || Array.isArray(index)) fail(indexPath, "is not a JSON object");
  const weightMap = (index as { weight_map?: unknown }).weight_map;
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    fail(indexPath, "has no weight_map object");
  }
  const byFile = new Map<string, string[] | null>();
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (
      typeof file !== "string" ||
      file === "" ||
      file === "." ||
      file === ".." ||
      file.includes("/") ||
      file.includes("\\") ||
      file.includes("\0")
    ) {
      fail(indexPath, `weight_map["${name.slice(0, 200)}"] is ${describeValue(file)}, not a file name in the directory`);
    }
    const list = byFile.get(file) ?? [];
    list.push(name);
    byFile.set(file, list);
  }
  const meta = (index as { metadata?: unknown }).metadata;
  const indexMetadata = meta !== null && typeof meta === "object" && !Array.isArray(meta) ? (meta as Record<string, unknown>) : {};
  return { indexPath, byFile, weightMap: weightMap as Record<string, unknown>, indexMetadata };
}

/** A tensor's header entry and the file (relative to the checkpoint folder) that holds it. */
export interface ShardedTensorInfo extends TensorInfo {
  file: string;
}

/**
 * Read only the headers of a checkpoint folder (cheap: no tensor data), so callers can compare shapes with a
 * config before allocating anything. With an index, every tensor must sit in the shard the index names.
 */
export function readShardedHeaders(dir: string): Map<string, ShardedTensorInfo> {
  const layout = shardLayout(dir);
  const out = new Map<string, ShardedTensorInfo>();
  for (const [file, names] of [...layout.byFile].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) fail(layout.indexPath ?? dir, `shard ${file} (holding "${names?.[0]}") does not exist`);
    const header = readSafetensorsHeader(full);
    for (const name of names ?? header.tensors.keys()) {
      const info = header.tensors.get(name);
      if (info === undefined) fail(full, `tensor "${name}" is in ${SAFE_WEIGHTS_INDEX_NAME} but not in this shard`);
      out.set(name, { ...info, file });
    }
  }
  return out;
}

/** Read a checkpoint directory: the index and its shards if there is an index, else `model.safetensors`. */
export function readShardedSafetensors(dir: string, opts: { names?: readonly string[] } = {}): ShardedContents {
  const layout = shardLayout(dir);
  if (layout.indexPath === null) {
    const { tensors, metadata } = readSafetensors(path.join(dir, SAFE_WEIGHTS_NAME), opts);
    return { tensors, metadata, indexMetadata: null, files: [SAFE_WEIGHTS_NAME] };
  }
  const indexPath = layout.indexPath;
  const wanted = opts.names ? new Set(opts.names) : null;
  if (wanted) {
    for (const n of wanted) {
      if (!Object.hasOwn(layout.weightMap as object, n)) fail(indexPath, `tensor "${n}" is not in weight_map`);
    }
  }
  const tensors = new Map<string, LoadedTensor>();
  let metadata: Record<string, string> | null = null;
  const files = [...layout.byFile.keys()].sort();
  for (const file of files) {
    const names = (layout.byFile.get(file) as string[]).filter((n) => wanted === null || wanted.has(n));
    if (names.length === 0) continue;
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) fail(indexPath, `shard ${file} (holding "${names[0]}") does not exist`);
    const part = readSafetensors(full, { names });
    if (metadata === null) metadata = part.metadata;
    for (const [n, t] of part.tensors) tensors.set(n, t);
  }
  return { tensors, metadata, indexMetadata: layout.indexMetadata, files: [SAFE_WEIGHTS_INDEX_NAME, ...files] };
}

export interface ShardPlan {
  /** Shard file name -> tensor names in it (insertion order). */
  shards: Map<string, string[]>;
  totalSize: number;
  totalParameters: number;
  sharded: boolean;
}

/**
 * Split tensors into shards like huggingface_hub: walk them in the given order, start a new shard when the
 * next tensor would push the current one over `maxShardBytes`, and give a tensor larger than the limit a
 * shard of its own (placed before the shard being filled).
 */
export function planShards(tensors: TensorDict, maxShardBytes = DEFAULT_MAX_SHARD_BYTES): ShardPlan {
  if (!(maxShardBytes > 0)) fail("<shards>", `maxShardBytes must be positive, got ${maxShardBytes}`);
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)) as [string, WritableTensor][];
  const list: string[][] = [];
  let current: string[] = [];
  let currentSize = 0;
  let totalSize = 0;
  let totalParameters = 0;
  for (const [name, t] of entries) {
    const size = writableBytes(name, t);
    totalParameters += t.data.length;
    totalSize += size;
    if (size > maxShardBytes) {
      list.push([name]);
      continue;
    }
    if (currentSize + size > maxShardBytes) {
      list.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(name);
    currentSize += size;
  }
  if (current.length > 0) list.push(current);
  const shards = new Map<string, string[]>();
  if (list.length <= 1) {
    shards.set(
      SAFE_WEIGHTS_NAME,
      entries.map(([n]) => n),
    );
    return { shards, totalSize, totalParameters, sharded: false };
  }
  const total = String(list.length).padStart(5, "0");
  for (const [i, names] of list.entries()) {
    shards.set(`model-${String(i + 1).padStart(5, "0")}-of-${total}.safetensors`, names);
  }
  return { shards, totalSize, totalParameters, sharded: true };
}

/** JSON the way Python's json.dumps(obj, indent=2, sort_keys=True) writes it (ensure_ascii included). */
export function pythonJsonDumps(value: unknown): string {
  const sortDeep = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortDeep);
    if (v !== null && typeof v === "object") {
      const keys = Object.keys(v).sort();
      // A Map keeps the sorted order even for integer-like keys, which plain objects would reorder.
      return new Map(keys.map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  const emit = (v: unknown, ind: string): string => {
    if (v instanceof Map) {
      if (v.size === 0) return "{}";
      const inner = `${ind}  `;
      const items = [...v].map(([k, x]) => `${inner}${JSON.stringify(k)}: ${emit(x, inner)}`);
      return `{\n${items.join(",\n")}\n${ind}}`;
    }
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      const inner = `${ind}  `;
      return `[\n${v.map((x) => inner + emit(x, inner)).join(",\n")}\n${ind}]`;
    }
    return JSON.stringify(v);
  };
  return emit(sortDeep(value), "").replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface ShardedWriteResult {
  /** Files written, relative to the directory (the index last, when there is one). */
  files: string[];
  totalSize: number;
  sharded: boolean;
}

/**
 * Write a checkpoint directory: one `model.safetensors` when everything fits in `maxShardBytes`, else
 * numbered shards plus the index. Every file is written atomically, the index last; stale shards and a
 * stale index or single file from an earlier save are removed so the directory has one reading.
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: TensorDict,
  opts: { maxShardBytes?: number; metadata?: Record<string, string> | null } = {},
): ShardedWriteResult {
  const plan = planShards(tensors, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const metadata = opts.metadata === undefined ? { format: "pt" } : opts.metadata;
  const get = (n: string): WritableTensor =>
    (tensors instanceof Map ? tensors.get(n) : (tensors as Record<string, WritableTensor>)[n]) as WritableTensor;
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const [file, names] of plan.shards) {
    writeSafetensors(path.join(dir, file), new Map(names.map((n) => [n, get(n)])), metadata);
    files.push(file);
  }
  const indexPath = path.join(dir, SAFE_WEIGHTS_INDEX_NAME);
  if (plan.sharded) {
    const weightMap: Record<string, string> = {};
    for (const [file, names] of plan.shards) for (const n of names) weightMap[n] = file;
    const index = {
      metadata: { total_parameters: plan.totalParameters, total_size: plan.totalSize },
      weight_map: weightMap,
    };
    const text = `${pythonJsonDumps(index)}\n`;
    writeFileAtomic(indexPath, (fd) => fs.writeSync(fd, text));
    files.push(SAFE_WEIGHTS_INDEX_NAME);
  }
  for (const f of fs.readdirSync(dir)) {
    const stale =
      (SHARD_RE.test(f) && !plan.shards.has(f)) ||
      (f === SAFE_WEIGHTS_NAME && plan.sharded) ||
      (f === SAFE_WEIGHTS_INDEX_NAME && !plan.sharded);
    if (stale) fs.rmSync(path.join(dir, f), { force: true });
  }
  return { files, totalSize: plan.totalSize, sharded: plan.sharded };
}
