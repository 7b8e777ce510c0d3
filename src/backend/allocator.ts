// The caching allocator shared by the device backends (`cuda` over cudaMalloc, `sim` over host ArrayBuffers):
// requests are rounded to size classes, freed blocks wait in one free list per class and serve the next request
// of that class (a training step's shapes repeat, so step 2 onwards allocates nothing from the device), and
// statistics follow torch.cuda.memory_stats. When the device is full the cache is released and the request
// retried once; if that fails too, OutOfMemoryError names the op, the request and the statistics.
// Not here: block splitting or coalescing (a cached block serves only requests of its own class), streams.

import type { DeviceBuffer, DeviceDType, DeviceKind, DeviceMemory, MemoryStats, TransferStats } from "./types.js";

/** The device's own allocation calls, as a backend provides them. */
export interface RawDeviceMemory {
  /** Reserve `bytes` on the device; null when it has no room. The address is never 0. */
  malloc(bytes: number): number | null;
  release(addr: number): void;
  /** Host -> device copy of src's bytes to addr. */
  copyIn(addr: number, src: Float32Array | Int32Array): void;
  /** Device -> host copy of dst.byteLength bytes from addr into dst (after the kernels that write it). */
  copyOut(addr: number, dst: Float32Array | Int32Array): void;
  /** Total and free device bytes, for error messages; null when unknown. */
  info(): { total: number; free: number } | null;
}

export class OutOfMemoryError extends Error {
  override name = "OutOfMemoryError";
}

export interface Block {
  readonly addr: number;
  /** The size class in bytes (what `allocated` counts). */
  readonly size: number;
}

const SMALL = 1 << 20;
const SMALL_STEP = 512;

/** Size class of a request: multiples of 512 B below 1 MiB, then four classes per power of two (waste < 25%). */
export function sizeClass(bytes: number): number {
  if (bytes <= SMALL_STEP) return SMALL_STEP;
  if (bytes < SMALL) return Math.ceil(bytes / SMALL_STEP) * SMALL_STEP;
  const step = 2 ** Math.floor(Math.log2(bytes)) / 4;
  return Math.ceil(bytes / step) * step;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

export class CachingAllocator {
  private readonly freeLists = new Map<number, Block[]>();
  private allocated = 0;
  private cached = 0;
  private peakAllocated = 0;
  private peakReserved = 0;
  private live = 0;

  constructor(
    private readonly raw: RawDeviceMemory,
    private readonly device: string,
  ) {}

  alloc(bytes: number, op: string, what: string): Block {
    const size = sizeClass(bytes);
    let block = this.freeLists.get(size)?.pop();
    if (block !== undefined) this.cached -= size;
    else {
      let addr = this.raw.malloc(size);
      if (addr === null && this.cached > 0) {
        this.emptyCache();
        addr = this.raw.malloc(size);
      }
      if (addr === null) throw new OutOfMemoryError(this.oomMessage(op, bytes, what));
      block = { addr, size };
    }
    this.allocated += size;
    this.live++;
    if (this.allocated > this.peakAllocated) this.peakAllocated = this.allocated;
    const reserved = this.allocated + this.cached;
    if (reserved > this.peakReserved) this.peakReserved = reserved;
    return block;
  }

  free(block: Block): void {
    this.allocated -= block.size;
    this.live--;
    this.cached += block.size;
    let list = this.freeLists.get(block.size);
    if (list === undefined) {
      list = [];
      this.freeLists.set(block.size, list);
    }
    list.push(block);
  }

  emptyCache(): void {
    for (const list of this.freeLists.values()) for (const b of list) this.raw.release(b.addr);
    this.freeLists.clear();
    this.cached = 0;
  }

  stats(): MemoryStats {
    return {
      allocated: this.allocated,
      reserved: this.allocated + this.cached,
      peakAllocated: this.peakAllocated,
      peakReserved: this.peakReserved,
      allocations: this.live,
    };
  }

  resetPeak(): void {
    this.peakAllocated = this.allocated;
    this.peakReserved = this.allocated + this.cached;
  }

  private oomMessage(op: string, bytes: number, what: string): string {
    const s = this.stats();
    const info = this.raw.info();
    const dev = info === null ? "" : `; device total ${formatBytes(info.total)}, free ${formatBytes(info.free)}`;
    return (
      `[${this.device} ${op}] out of memory: requested ${formatBytes(bytes)} (${bytes} bytes) for ${what}; ` +
      `allocated ${formatBytes(s.allocated)} in ${s.allocations} tensors, reserved ${formatBytes(s.reserved)}, ` +
      `peak allocated ${formatBytes(s.peakAllocated)}${dev}. Use a smaller batch (perDeviceTrainBatchSize, maxTokensPerBatch), ` +
      `precision bf16, or free tensors (dispose(), scope())`
    );
  }
}

/** The block a buffer owns, in a record of its own so that a finalizer can free it without holding the buffer. */
interface BlockRef {
  block: Block | null;
}

/** A tensor's storage on a device: the allocator block it owns until freed. */
export class PooledBuffer implements DeviceBuffer {
  constructor(
    readonly device: Exclude<DeviceKind, "host">,
    readonly dtype: DeviceDType,
    readonly length: number,
    readonly ref: BlockRef,
  ) {}

  get block(): Block | null {
    return this.ref.block;
  }

  get live(): boolean {
    return this.ref.block !== null;
  }
}

/**
 * DeviceMemory over a raw device: the caching allocator plus counted host copies. A buffer nobody freed goes back
 * to the cache when V8 collects its handle (a finalizer: a last resort, it runs only between event-loop tasks).
 */
export class PooledDeviceMemory implements DeviceMemory {
  readonly allocator: CachingAllocator;
  private readonly counts: TransferStats = { toHost: 0, toHostBytes: 0, toDevice: 0, toDeviceBytes: 0 };
  private readonly finalizer = new FinalizationRegistry<BlockRef>((ref) => {
    if (ref.block === null) return;
    this.allocator.free(ref.block);
    ref.block = null;
  });

  constructor(
    private readonly device: Exclude<DeviceKind, "host">,
    private readonly raw: RawDeviceMemory,
  ) {
    this.allocator = new CachingAllocator(raw, device);
  }

  alloc(dtype: DeviceDType, n: number, op: string): PooledBuffer {
    const ref: BlockRef = { block: this.allocator.alloc(n * 4, op, `a ${dtype} tensor of ${n} elements`) };
    const buf = new PooledBuffer(this.device, dtype, n, ref);
    this.finalizer.register(buf, ref);
    return buf;
  }

  free(buf: DeviceBuffer): void {
    const ref = (buf as PooledBuffer).ref;
    if (ref.block === null) return;
    this.allocator.free(ref.block);
    ref.block = null;
  }

  /** The block of a live buffer of this device, or a tagged error (a freed tensor, a host array, another device). */
  blockOf(buf: unknown, op: string, what: string): Block {
    if (!(buf instanceof PooledBuffer) || buf.device !== this.device) {
      const got = ArrayBuffer.isView(buf) ? "a host array" : buf instanceof PooledBuffer ? `a '${buf.device}' buffer` : String(buf);
      throw new TypeError(`[${this.device} ${op}] ${what} must be a '${this.device}' device buffer, got ${got}`);
    }
    const block = buf.block;
    if (block === null) {
      throw new Error(`[${this.device} ${op}] ${what} was freed (disposed, or released at the end of a scope()) and cannot be used`);
    }
    return block;
  }

  upload(buf: DeviceBuffer, src: Float32Array | Int32Array): void {
    const block = this.blockOf(buf, "upload", "destination");
    if (src.length !== buf.length) throw new RangeError(`[${this.device} upload] ${src.length} values for a buffer of ${buf.length}`);
    this.raw.copyIn(block.addr, src);
    this.counts.toDevice++;
    this.counts.toDeviceBytes += src.byteLength;
  }

  download(buf: DeviceBuffer): Float32Array | Int32Array {
    const block = this.blockOf(buf, "download", "source");
    const out = buf.dtype === "i32" ? new Int32Array(buf.length) : new Float32Array(buf.length);
    this.raw.copyOut(block.addr, out);
    this.counts.toHost++;
    this.counts.toHostBytes += out.byteLength;
    return out;
  }

  stats(): MemoryStats {
    return this.allocator.stats();
  }

  resetPeak(): void {
    this.allocator.resetPeak();
  }

  emptyCache(): void {
    this.allocator.emptyCache();
  }

  transfers(): TransferStats {
    return { ...this.counts };
  }

  resetTransfers(): void {
    this.counts.toHost = 0;
    this.counts.toHostBytes = 0;
    this.counts.toDevice = 0;
    this.counts.toDeviceBytes = 0;
  }
}
