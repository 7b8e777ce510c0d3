// The key/value cache for incremental decoding: per layer, keys and values [B, Hkv, S, Dh] after RoPE.
// Each forward with a cache appends its new keys/values (a concat per step); attention's causal rule aligns
// the T new queries to the end of the S keys, so decoding one token against S cached keys just works.
// Not here: preallocated/paged storage, beam reordering beyond `selectBatch`.

import { indexSelect, reshape, type Tensor, tensor } from "../tensor/index.js";

export interface KVCache {
  k: Tensor[];
  v: Tensor[];
}

/** An empty cache; layers fill it on the first forward. */
export function createKVCache(): KVCache {
  return { k: [], v: [] };
}

/** Tokens already cached (S), 0 for an empty cache. */
export function cacheLength(cache: KVCache | null | undefined): number {
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
  return { k: cache.k.map(pick), v: cache.v.map(pick) };
}
