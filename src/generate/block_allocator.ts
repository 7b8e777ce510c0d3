// Bookkeeping of a paged KV cache's fixed-size blocks: a free list (a stack, so a just-freed, cache-warm block is
// reused first) and a reference count per block. A block is shared by retaining it (prefix sharing); it returns to
// the free list when its last holder releases it. No tensors here: paged_cache.ts owns the storage.

export class BlockAllocatorError extends Error {
  override name = "BlockAllocatorError";
}

export class BlockAllocator {
  private readonly free: Int32Array;
  private freeCount: number;
  private readonly refs: Int32Array;
  /** Called when a block's count reaches zero, before it rejoins the free list. */
  onFree: ((block: number) => void) | null = null;

  constructor(readonly numBlocks: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new BlockAllocatorError(`[blocks] numBlocks must be an integer >= 1, got ${numBlocks}`);
    this.free = new Int32Array(numBlocks);
    for (let i = 0; i < numBlocks; i++) this.free[i] = numBlocks - 1 - i; // block 0 is handed out first
    this.freeCount = numBlocks;
    this.refs = new Int32Array(numBlocks);
  }

  get numFree(): number {
    return this.freeCount;
  }

  get numUsed(): number {
    return this.numBlocks - this.freeCount;
  }

  /** A fresh block with count 1; throws when none is free (callers check numFree first). */
  allocate(): number {
    if (this.freeCount === 0) throw new BlockAllocatorError("[blocks] no free block (the scheduler should have preempted)");
    const b = this.free[--this.freeCount];
    this.refs[b] = 1;
    return b;
  }

  /** One more holder of an allocated block. */
  retain(block: number): void {
    this.check(block, "retain");
    this.refs[block]++;
  }

  /** One holder fewer; the block is free again at zero. */
  release(block: number): void {
    this.check(block, "release");
    if (--this.refs[block] === 0) {
      this.onFree?.(block);
      this.free[this.freeCount++] = block;
    }
  }

  refCount(block: number): number {
    return this.refs[block];
  }

  private check(block: number, op: string): void {
    if (!(block >= 0 && block < this.numBlocks) || this.refs[block] <= 0) {
      throw new BlockAllocatorError(`[blocks] ${op} of block ${block}, which is not allocated`);
    }
  }

  /**
   * Throws unless the free list and the counts agree: every block is either free (count 0, listed once) or held.
   * `held` (optional): the expected count of every block from the holders' own tables.
   */
  checkInvariants(held?: ReadonlyMap<number, number>): void {
    const seen = new Uint8Array(this.numBlocks);
    for (let i = 0; i < this.freeCount; i++) {
      const b = this.free[i];
      if (seen[b]) throw new BlockAllocatorError(`[blocks] block ${b} is on the free list twice`);
      seen[b] = 1;
      if (this.refs[b] !== 0) throw new BlockAllocatorError(`[blocks] free block ${b} has count ${this.refs[b]}`);
    }
    for (let b = 0; b < this.numBlocks; b++) {
      if (!seen[b] && this.refs[b] <= 0) throw new BlockAllocatorError(`[blocks] block ${b} is neither free nor held`);
      if (held !== undefined && (held.get(b) ?? 0) !== this.refs[b]) {
        throw new BlockAllocatorError(`[blocks] block ${b} has count ${this.refs[b]}, its holders hold it ${held.get(b) ?? 0} times`);
      }
    }
  }
}
