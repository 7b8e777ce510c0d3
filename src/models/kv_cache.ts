// The key/value cache for incremental decoding: per layer, keys and values [B, Hkv, S, Dh] after RoPE.
// `createKVCache` keeps them in preallocated storage [B, Hkv, capacity, Dh] (capacity doubles when full) that
// each decode step writes in place, and attention reads the first S rows; while gradients are recorded a layer
// instead keeps concatenated graph tensors (as the plain `{ k, v }` form always does), so backward still works.
// A cache may also do attention itself (`AttendingKVCache`: the rollout engine's paged cache, src/generate/), then the
// decoder hands it each layer's rotated queries and new keys/values of the step's packed tokens.
// Not here: paged storage itself, beam reordering beyond `selectBatch`.

import { kernels } from "../backend/index.js";
import { concat, indexSelect, isGradEnabled, onDevice, reshape, slice, type Tensor, TensorError, tensor, zeros } from "../tensor/index.js";

export interface KVCache {
  /** Per layer keys [B, Hkv, S, Dh] (for `createKVCache`'s caches: copies of the valid rows, read-only). */
  readonly k: Tensor[];
  readonly v: Tensor[];
}

/**
 * A cache that stores keys/values and computes attention itself. The decoder runs it on packed tokens (inputIds
 * [1, N], explicit positionIds, no mask) and calls `attend` once per layer with q [N, H, 1, Dh] and k/v
 * [N, Hkv, 1, Dh] after RoPE; it returns the attention output [N, H, Dh].
 */
export interface AttendingKVCache {
  readonly attends: true;
  attend(layer: number, q: Tensor, k: Tensor, v: Tensor): Tensor;
}

export function isAttendingCache(c: unknown): c is AttendingKVCache {
  return typeof c === "object" && c !== null && (c as { attends?: unknown }).attends === true;
}

/** A cache with preallocated, in-place storage per layer. */
export class GrowableKVCache implements KVCache {
  /** Per layer storage [B, Hkv, capacity, Dh]; rows [0, lengths[l]) along axis 2 are valid. */
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  readonly lengths: number[] = [];

  /** capacityHint: tokens to reserve on the first append (e.g. prompt + new tokens). */
  constructor(readonly capacityHint = 0) {}

  get k(): Tensor[] {
    return this.keys.map((x, l) => slice(x, 2, 0, this.lengths[l]));
  }

  get v(): Tensor[] {
    return this.values.map((x, l) => slice(x, 2, 0, this.lengths[l]));
  }

  /** Tokens cached in layer 0 (S). */
  get length(): number {
    return this.lengths[0] ?? 0;
  }

  /**
   * Append layer `layer`'s new keys/values [B, Hkv, T, Dh]; returns the storage to attend to and the number of
   * valid key rows S in it (storage may be larger along axis 2).
   */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; length: number } {
    const pk = this.keys[layer];
    const pv = this.values[layer];
    const len = this.lengths[layer] ?? 0;
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
      // graph mode: storage is exactly the concatenation (capacity = length), so it is never written in place
      const kk = pk === undefined ? k : concat([slice(pk, 2, 0, len), k], 2); // (B, Hkv, S_past + T, Dh)
      const vv = pv === undefined ? v : concat([slice(pv, 2, 0, len), v], 2);
      this.keys[layer] = kk;
      this.values[layer] = vv;
      this.lengths[layer] = kk.shape[2];
      return { k: kk, v: vv, length: kk.shape[2] };
    }
    const [b, hkv, t, dh] = k.shape;
    const need = len + t;
    let sk = pk;
    let sv = pv;
    if (sk === undefined || sv === undefined || sk.shape[2] < need) {
      const cap = Math.max(need, this.capacityHint, 2 * (sk?.shape[2] ?? 0), 16);
      sk = grow(sk, k, len, [b, hkv, cap, dh]);
      sv = grow(sv, v, len, [b, hkv, cap, dh]);
      this.keys[layer] = sk;
      this.values[layer] = sv;
    }
    writeRows(sk, k, len);
    writeRows(sv, v, len);
    this.lengths[layer] = need;
    return { k: sk, v: sv, length: need };
  }
}

/** New storage `shape` (x's dtype) holding the first `len` rows (axis 2) of `old`. */
function grow(old: Tensor | undefined, x: Tensor, len: number, shape: number[]): Tensor {
  const out = zeros(shape, x.dtype);
  if (old !== undefined && len > 0) {
    if (old.dtype !== x.dtype) throw new TensorError(`[kvCache] cached ${old.dtype} keys/values, new ones are ${x.dtype}`);
    writeRows(out, slice(old, 2, 0, len), 0);
  }
  return out;
}

/** storage[:, :, at:at+T, :] = x [B, Hkv, T, Dh], written in place by the backend (no host copy). */
function writeRows(storage: Tensor, x: Tensor, at: number): void {
  const [b, hkv, t, dh] = x.shape;
  const cap = storage.shape[2];
  const k = kernels();
  k.copyToStrided(storage.storage, onDevice("kvCache", x, k.device), [b * hkv, t * dh], [cap * dh, 1], at * dh);
}

/** An empty cache; layers fill it on the first forward. capacity: tokens to reserve up front (it grows anyway). */
export function createKVCache(capacity = 0): KVCache {
  return new GrowableKVCache(capacity);
}

/** Tokens already cached (S), 0 for an empty cache. */
export function cacheLength(cache: KVCache | AttendingKVCache | null | undefined): number {
  if (cache instanceof GrowableKVCache) return cache.length;
  if (isAttendingCache(cache)) return 0; // positions come with the packed tokens
  const k = cache?.k[0];
  return k === undefined ? 0 : k.shape[2];
}

/** Keep batch rows `rows` (in that order) of every cached tensor: beam search, dropping finished rows. */
export function selectBatch(cache: KVCache, rows: readonly number[]): KVCache {
  const ids = tensor(rows, { dtype: "i32" });
  const pick = (x: Tensor) => {
    const [b, ...rest] = x.shape;
    // (B, Hkv, S, Dh) -> (B, Hkv*S*Dh) -> rows -> (R, Hkv, S, Dh)
    const flat = reshape(x, [b, rest.reduce((p, d) => p * d, 1)]);
    return reshape(indexSelect(flat, ids), [rows.length, ...rest]);
  };
  if (cache instanceof GrowableKVCache) {
    const out = new GrowableKVCache(cache.capacityHint);
    cache.keys.forEach((x, l) => {
      out.keys.push(pick(x));
      out.values.push(pick(cache.values[l]));
      out.lengths.push(cache.lengths[l]);
    });
    return out;
  }
  return { k: cache.k.map(pick), v: cache.v.map(pick) };
}
