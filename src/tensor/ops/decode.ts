// Inference-only ops of the rollout engine (src/generate/): writes into a paged KV cache, block copies, attention of
// packed query tokens over block tables, batched sampling with log-probs, and Linear weights packed once for many
// decode steps (`withPackedWeights` makes `linear` use them). They check shapes and indices, then call the decode
// kernels of src/backend/types.ts. Not here: gradients (every op refuses inputs that require grad), paging policy.

import { kernels } from "../../backend/index.js";
import type { Buf, DeviceBuffer, DeviceMemory } from "../../backend/types.js";
import { allocateUninit, fromArray, isGradEnabled, onDevice, type Storage, shapeStr, Tensor, TensorError } from "../tensor.js";
import { add } from "./elementwise.js";
import { concat } from "./shape.js";

/** A host index / parameter array as a buffer of the current backend (itself on the host, one upload on a device). */
function hostBuf(a: Int32Array | Float32Array): Buf {
  return fromArray(a).storage;
}

function noGradInputs(op: string, ...xs: Tensor[]): void {
  if (isGradEnabled() && xs.some((x) => x.requiresGrad)) throw new TensorError(`[${op}] is inference-only: call it under noGrad`);
  for (const x of xs) if (x.dtype !== "f32") throw new TensorError(`[${op}] needs f32 tensors, got ${x.dtype}`);
}

/** numBlocks, Hkv, blockSize, Dh of paged caches: keys [numBlocks, Hkv, Dh, blockSize], values [numBlocks, Hkv, blockSize, Dh]. */
function cacheDims(op: string, kCache: Tensor, vCache: Tensor): [number, number, number, number] {
  const [nb, hkv, bs, dh] = vCache.shape;
  if (vCache.ndim !== 4 || shapeStr(kCache.shape) !== shapeStr([nb, hkv, dh, bs])) {
    throw new TensorError(
      `[${op}] caches must be keys [numBlocks, Hkv, Dh, blockSize] and values [numBlocks, Hkv, blockSize, Dh], got ${shapeStr(kCache.shape)} and ${shapeStr(vCache.shape)}`,
    );
  }
  return [nb, hkv, bs, dh];
}

/** Cache position slots[i] = k/v [N, Hkv, Dh] (any shape with N * Hkv * Dh elements); a slot < 0 is skipped. */
export function pagedKvWrite(kCache: Tensor, vCache: Tensor, k: Tensor, v: Tensor, slots: Int32Array): void {
  noGradInputs("pagedKvWrite", kCache, vCache, k, v);
  const [nb, hkv, bs, dh] = cacheDims("pagedKvWrite", kCache, vCache);
  const n = slots.length;
  if (k.size !== n * hkv * dh || v.size !== n * hkv * dh) {
    throw new TensorError(`[pagedKvWrite] k ${shapeStr(k.shape)} / v ${shapeStr(v.shape)} must hold ${n} x ${hkv} x ${dh} values`);
  }
  for (let i = 0; i < n; i++) {
    if (slots[i] >= nb * bs) throw new TensorError(`[pagedKvWrite] slot ${slots[i]} (token ${i}) is past the cache's ${nb * bs} rows`);
  }
  const kk = kernels();
  kk.pagedKvWrite(
    onDevice("pagedKvWrite", kCache, kk.device),
    onDevice("pagedKvWrite", vCache, kk.device),
    onDevice("pagedKvWrite", k, kk.device),
    onDevice("pagedKvWrite", v, kk.device),
    hostBuf(slots),
    n,
    hkv,
    dh,
    bs,
  );
}

/** cache[dst[i]] = cache[src[i]] for whole blocks of a [numBlocks, ...] cache (copy-on-write). */
export function copyBlocks(cache: Tensor, src: Int32Array, dst: Int32Array): void {
  noGradInputs("copyBlocks", cache);
  const nb = cache.shape[0];
  if (src.length !== dst.length) throw new TensorError(`[copyBlocks] ${src.length} sources but ${dst.length} destinations`);
  for (let i = 0; i < src.length; i++) {
    if (!(src[i] >= 0 && src[i] < nb && dst[i] >= 0 && dst[i] < nb))
      throw new TensorError(`[copyBlocks] block pair ${src[i]} -> ${dst[i]} is outside [0, ${nb})`);
  }
  const k = kernels();
  k.copyBlocks(onDevice("copyBlocks", cache, k.device), hostBuf(src), hostBuf(dst), src.length, cache.size / Math.max(nb, 1));
}

/** Where each sequence's query rows and keys are (see Kernels.pagedAttention). */
export interface PagedLayout {
  /** [numSeqs, maxBlocks] block ids, row-major. */
  blockTables: Int32Array;
  /** Keys cached per sequence, this step's included. */
  contextLens: Int32Array;
  /** [numSeqs + 1] first query row of each sequence; the last entry is N. */
  queryStarts: Int32Array;
  maxBlocks: number;
}

/** Attention of packed query tokens q [N, H, Dh] (or [N, H, 1, Dh]) over paged caches → [N, H, Dh]. */
export function pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, layout: PagedLayout, scale?: number): Tensor {
  noGradInputs("pagedAttention", q, kCache, vCache);
  const [nb, hkv, bs, dh] = cacheDims("pagedAttention", kCache, vCache);
  const n = q.shape[0];
  const h = q.size / Math.max(n * dh, 1);
  if (!Number.isInteger(h) || q.shape[q.ndim - 1] !== dh || h % hkv !== 0) {
    throw new TensorError(`[pagedAttention] q ${shapeStr(q.shape)} must be [N, H, Dh] with Dh ${dh} and H a multiple of ${hkv}`);
  }
  const { blockTables, contextLens, queryStarts, maxBlocks } = layout;
  const seqs = contextLens.length;
  if (queryStarts.length !== seqs + 1 || queryStarts[0] !== 0 || queryStarts[seqs] !== n) {
    throw new TensorError(`[pagedAttention] queryStarts must run from 0 to N = ${n} over ${seqs} sequences`);
  }
  if (blockTables.length < seqs * maxBlocks)
    throw new TensorError(`[pagedAttention] blockTables holds fewer than ${seqs} x ${maxBlocks} ids`);
  for (let s = 0; s < seqs; s++) {
    const qn = queryStarts[s + 1] - queryStarts[s];
    const used = Math.ceil(contextLens[s] / bs);
    if (qn < 0 || contextLens[s] < qn || used > maxBlocks) {
      throw new TensorError(`[pagedAttention] sequence ${s}: ${qn} query rows, ${contextLens[s]} keys, ${maxBlocks} blocks of ${bs}`);
    }
    for (let b = 0; b < used; b++) {
      const id = blockTables[s * maxBlocks + b];
      if (!(id >= 0 && id < nb)) throw new TensorError(`[pagedAttention] sequence ${s} block ${b} is ${id}, outside [0, ${nb})`);
    }
  }
  const kk = kernels();
  const out = new Tensor(allocateUninit("f32", n * h * dh, "pagedAttention"), [n, h, dh]);
  kk.pagedAttention(
    out.storage,
    onDevice("pagedAttention", q, kk.device),
    onDevice("pagedAttention", kCache, kk.device),
    onDevice("pagedAttention", vCache, kk.device),
    hostBuf(blockTables),
    hostBuf(contextLens),
    hostBuf(queryStarts),
    seqs,
    h,
    hkv,
    dh,
    bs,
    maxBlocks,
    scale ?? 1 / Math.sqrt(dh),
  );
  return out;
}

/** Per-row sampling settings of sampleTokens (Kernels.sampleTokens): temperature 0 is greedy. */
export interface SamplingRows {
  temperature: Float32Array;
  topK: Int32Array;
  topP: Float32Array;
  minP: Float32Array;
  /** Uniform draws in [0, 1), one per row (read only by sampled rows). */
  uniform: Float32Array;
}

/** One token per row of logits [R, V] and its log-prob (log_softmax(x / T), before filtering). */
export function sampleTokens(logits: Tensor, rows: SamplingRows): { ids: Int32Array; logprobs: Float32Array } {
  noGradInputs("sampleTokens", logits);
  if (logits.ndim !== 2) throw new TensorError(`[sampleTokens] logits must be [R, V], got ${shapeStr(logits.shape)}`);
  const [r, v] = logits.shape;
  for (const [name, a] of Object.entries(rows)) {
    if ((a as ArrayLike<number>).length !== r)
      throw new TensorError(`[sampleTokens] ${name} has ${(a as ArrayLike<number>).length} entries for ${r} rows`);
  }
  if (r > 0 && v === 0) throw new TensorError("[sampleTokens] logits have no vocabulary");
  const k = kernels();
  const ids = allocateUninit("i32", r, "sampleTokens");
  const logprobs = allocateUninit("f32", r, "sampleTokens");
  k.sampleTokens(
    ids,
    logprobs,
    onDevice("sampleTokens", logits, k.device),
    hostBuf(rows.temperature),
    hostBuf(rows.topK),
    hostBuf(rows.topP),
    hostBuf(rows.minP),
    hostBuf(rows.uniform),
    r,
    v,
  );
  // the scheduler needs the tokens on the host: one download of R ids and R log-probs on a device
  return { ids: toHost(ids) as Int32Array, logprobs: toHost(logprobs) as Float32Array };
}

function toHost(s: Storage): Int32Array | Float32Array {
  if (ArrayBuffer.isView(s)) return s as Int32Array | Float32Array;
  return (kernels().memory as DeviceMemory).download(s as DeviceBuffer);
}

/** A Linear weight [n, k] repacked for linearPacked; valid while the weight's values do not change. */
export class PackedWeight {
  constructor(
    readonly weight: Tensor,
    readonly data: Storage,
  ) {}
}

/** Pack a [n, k] weight (a copy in the backend's own layout). */
export function packWeight(weight: Tensor): PackedWeight {
  noGradInputs("packWeight", weight);
  if (weight.ndim !== 2) throw new TensorError(`[packWeight] weight must be [n, k], got ${shapeStr(weight.shape)}`);
  const [n, k] = weight.shape;
  const k_ = kernels();
  const out = allocateUninit("f32", k_.packedWeightSize(n, k), "packWeight");
  k_.packWeight(out, onDevice("packWeight", weight, k_.device), n, k);
  return new PackedWeight(weight, out);
}

/** x [..., k] W^T (+ bias) with a packed W [n, k] → [..., n]. */
export function linearPacked(x: Tensor, w: PackedWeight, bias?: Tensor | null): Tensor {
  noGradInputs("linearPacked", x);
  const [n, k] = w.weight.shape;
  if (x.shape[x.ndim - 1] !== k)
    throw new TensorError(`[linearPacked] input ${shapeStr(x.shape)} does not match weight ${shapeStr(w.weight.shape)}`);
  const m = x.size / Math.max(k, 1);
  const kk = kernels();
  const y = new Tensor(allocateUninit("f32", m * n, "linearPacked"), [...x.shape.slice(0, -1), n]);
  kk.linearPacked(y.storage, onDevice("linearPacked", x, kk.device), w.data, m, n, k);
  return bias ? add(y, bias) : y;
}

/** Linear weights with the same input (q/k/v, gate/up) packed as one [sum n, k] weight: one GEMM instead of several. */
export class PackedGroup {
  constructor(
    readonly weights: readonly Tensor[],
    readonly packed: PackedWeight,
  ) {}
}

/** Pack weights [n_i, k] (same k) as one, in order. */
export function packGroup(weights: readonly Tensor[]): PackedGroup {
  const k = weights[0].shape[1];
  if (weights.some((w) => w.ndim !== 2 || w.shape[1] !== k)) {
    throw new TensorError(`[packGroup] weights must be [n_i, ${k}], got ${weights.map((w) => shapeStr(w.shape)).join(", ")}`);
  }
  return new PackedGroup(weights, packWeight(concat([...weights], 0))); // (sum n_i, k)
}

/** Packed weights in force (see withPackedWeights). */
export interface PackedSet {
  weights: ReadonlyMap<Tensor, PackedWeight>;
  /** Keyed by the group's first weight. */
  groups: ReadonlyMap<Tensor, PackedGroup>;
}

let active: PackedSet | null = null;

/**
 * Run fn (synchronously) with `linear` (and nn's linearMany, for groups) using these packed weights for their
 * tensors, when no gradient is recorded. The caller packs them from the current values and must not change the
 * weights inside fn.
 */
export function withPackedWeights<T>(packed: PackedSet, fn: () => T): T {
  const prev = active;
  active = packed;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/** The packed form of a weight inside withPackedWeights (when gradients are off), else undefined. */
export function packedFor(weight: Tensor): PackedWeight | undefined {
  return active === null || isGradEnabled() ? undefined : active.weights.get(weight);
}

/** The packed group of exactly these weights, in this order, inside withPackedWeights; else undefined. */
export function packedGroupFor(weights: readonly Tensor[]): PackedGroup | undefined {
  if (active === null || isGradEnabled() || weights.length === 0) return undefined;
  const g = active.groups.get(weights[0]);
  if (g === undefined || g.weights.length !== weights.length || g.weights.some((w, i) => w !== weights[i])) return undefined;
  return g;
}
