// The paged KV cache (vLLM's PagedAttention, Kwon et al. 2023): per layer one key pool [numBlocks, Hkv, Dh, blockSize]
// and one value pool [numBlocks, Hkv, blockSize, Dh] sized from a memory budget, a block allocator with reference counts, and an index
// of full blocks by content (namespace, parent block, tokens) so requests with a common prefix reuse its blocks while
// they are alive. A step's attention goes through `step()`, an AttendingKVCache that writes the step's keys/values
// into their slots and attends over block tables. Not here: which sequence gets which block (scheduler.ts).

import type { ModelConfig } from "../io/hf_config.js";
import type { AttendingKVCache } from "../models/kv_cache.js";
import { copyBlocks, type PagedLayout, pagedAttention, pagedKvWrite, type Tensor, zeros } from "../tensor/index.js";
import { BlockAllocator } from "./block_allocator.js";

export class KVCacheBudgetError extends Error {
  override name = "KVCacheBudgetError";
}

/** The cache's shape: what one block holds. */
export interface CacheGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Tokens per block. */
  blockSize: number;
}

export function geometryOf(
  config: Pick<ModelConfig, "numHiddenLayers" | "numKeyValueHeads" | "headDim">,
  blockSize: number,
): CacheGeometry {
  return { layers: config.numHiddenLayers, kvHeads: config.numKeyValueHeads, headDim: config.headDim, blockSize };
}

/** Bytes of one block over all layers, keys and values (float32). */
export function bytesPerBlock(g: CacheGeometry): number {
  return g.layers * 2 * g.kvHeads * g.blockSize * g.headDim * 4;
}

/** Blocks a sequence of n tokens occupies. */
export function blocksFor(n: number, blockSize: number): number {
  return Math.ceil(n / blockSize);
}

export class PagedKVCache {
  /** Per layer keys [numBlocks, Hkv, Dh, blockSize] (transposed within a block) and values [numBlocks, Hkv, blockSize, Dh]. */
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  readonly allocator: BlockAllocator;
  private readonly index = new Map<string, number>();
  private readonly keyOf = new Map<number, string>();

  constructor(
    readonly geometry: CacheGeometry,
    readonly numBlocks: number,
  ) {
    const { layers, kvHeads, headDim, blockSize } = geometry;
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new KVCacheBudgetError(`[kvCache] blockSize must be an integer >= 1, got ${blockSize}`);
    this.allocator = new BlockAllocator(numBlocks);
    for (let l = 0; l < layers; l++) {
      this.keys.push(zeros([numBlocks, kvHeads, headDim, blockSize]));
      this.values.push(zeros([numBlocks, kvHeads, blockSize, headDim]));
    }
    this.allocator.onFree = (b) => {
      const key = this.keyOf.get(b);
      if (key !== undefined) {
        this.index.delete(key);
        this.keyOf.delete(b);
      }
    };
  }

  /** A cache of as many blocks as `bytes` holds (at least one, else an error that says the smallest budget). */
  static fromBudget(geometry: CacheGeometry, bytes: number): PagedKVCache {
    const per = bytesPerBlock(geometry);
    const n = Math.floor(bytes / per);
    if (!(n >= 1))
      throw new KVCacheBudgetError(
        `[kvCache] a KV cache budget of ${bytes} bytes holds no block (one block of ${geometry.blockSize} tokens takes ${per} bytes)`,
      );
    return new PagedKVCache(geometry, n);
  }

  get blockSize(): number {
    return this.geometry.blockSize;
  }

  /** The cached block holding `tokens` (a full block) right after block `parent` (-1: first block), if any. */
  lookup(ns: string, parent: number, tokens: readonly number[]): number | undefined {
    return this.index.get(prefixKey(ns, parent, tokens));
  }

  /** Make a computed full block findable by lookup (the first block with this content wins). */
  register(ns: string, parent: number, tokens: readonly number[], block: number): void {
    if (this.keyOf.has(block)) return;
    const key = prefixKey(ns, parent, tokens);
    if (this.index.has(key)) return;
    this.index.set(key, block);
    this.keyOf.set(block, key);
  }

  /** Blocks currently findable by content (for tests and stats). */
  get indexedBlocks(): number {
    return this.index.size;
  }

  /** Copy-on-write: a private copy of a shared block (all layers); the caller's hold moves to the copy. */
  copyOnWrite(block: number): number {
    const fresh = this.allocator.allocate();
    const src = Int32Array.of(block);
    const dst = Int32Array.of(fresh);
    for (let l = 0; l < this.geometry.layers; l++) {
      copyBlocks(this.keys[l], src, dst);
      copyBlocks(this.values[l], src, dst);
    }
    this.allocator.release(block);
    return fresh;
  }

  /** The attention of one engine step: new keys/values go to `slots` (one per packed token), queries read `layout`. */
  step(slots: Int32Array, layout: PagedLayout): AttendingKVCache {
    return {
      attends: true,
      attend: (layer, q, k, v) => {
        pagedKvWrite(this.keys[layer], this.values[layer], k, v, slots);
        return pagedAttention(q, this.keys[layer], this.values[layer], layout);
      },
    };
  }
}

function prefixKey(ns: string, parent: number, tokens: readonly number[]): string {
  return `${ns}\u0000${parent}\u0000${tokens.join(",")}`;
}
