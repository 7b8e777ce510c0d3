// Memory statistics of the current backend, named as torch.cuda.memory_stats: `allocated` (bytes in live tensors),
// `reserved` (held from the device: allocated plus cached free blocks), their peaks, and resetPeakMemoryStats().
// On cuda and sim they come from the caching allocator (exact: freed at dispose, scope exit and backward release);
// on ref and cpu from host tensor storage counted from allocation until V8 collects it (an upper bound of what is
// referenced; arrays under 1024 elements are not counted). Also host<->device transfer counts, for tests and benches.
// For measurements on ref and cpu, setHostMemoryMode("exact") replaces that upper bound: at every engine checkpoint
// (memoryCheckpoint: a forward graph complete before backward, a generation's KV cache allocated, an optimizer
// step done) and at every memoryStats() call, a full garbage collection runs and `allocated` is the bytes of live
// ArrayBuffers (tensor storage; Node's own buffers are a few KB) minus the pool's idle free lists; its peak is the
// highest such reading: exact at those points, blind to shorter peaks between them (inside one op or backward).
// Peak RSS of the process is sampled at the checkpoints and whenever a host array of 1 MiB or more is allocated.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { kernels } from "../backend/index.js";
import type { MemoryStats, TransferStats } from "../backend/types.js";
import { hostMemory, hostPoolFreeBytes, resetHostPeak, rssPeakBytes, sampleRss } from "./storage.js";

export type { MemoryStats, TransferStats } from "../backend/types.js";

/** How ref and cpu count host memory: "ledger" (default, an upper bound, free) or "exact" (collects at checkpoints). */
export type HostMemoryMode = "ledger" | "exact";

export class MemoryStatsError extends Error {
  override name = "MemoryStatsError";
}

let hostMode: HostMemoryMode = "ledger";
const exact = { peak: 0 };
let gcFn: (() => void) | null = null;

/**
 * A full, synchronous garbage collection (V8's gc, exposed on first use). Run twice: a freed ArrayBuffer's
 * external bytes can be released only by the next collection (seen on a busy machine), and exact mode reads them.
 */
export function collectGarbage(): void {
  if (gcFn === null) {
    setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  gcFn();
  gcFn();
}

/** Live host tensor bytes right now, after a full collection (exact mode's reading). */
function exactHostLive(): number {
  collectGarbage();
  const live = Math.max(0, process.memoryUsage().arrayBuffers - hostPoolFreeBytes());
  if (live > exact.peak) exact.peak = live;
  return live;
}

/** Choose how ref and cpu count memory; switching starts the peak again. */
export function setHostMemoryMode(mode: HostMemoryMode): void {
  if (mode !== "ledger" && mode !== "exact") throw new MemoryStatsError(`[memory] host mode must be 'ledger' or 'exact', got '${mode}'`);
  hostMode = mode;
  resetPeakMemoryStats();
}

export function hostMemoryMode(): HostMemoryMode {
  return hostMode;
}

/**
 * Called by the engine where live memory peaks (before backward, once a generation's cache exists, after an
 * optimizer step). Exact host mode collects garbage and records the live bytes; otherwise only RSS is sampled.
 */
export function memoryCheckpoint(): void {
  if (hostMode === "exact" && kernels().memory === undefined) exactHostLive();
  sampleRss();
}

/** Bytes in use and held by the current backend, and their high-water marks. */
export function memoryStats(): MemoryStats & { backend: string } {
  const k = kernels();
  if (k.memory !== undefined) return { backend: k.name, ...k.memory.stats() };
  if (hostMode === "exact") {
    const live = exactHostLive();
    const held = live + hostPoolFreeBytes();
    return {
      backend: k.name,
      allocated: live,
      reserved: held,
      peakAllocated: exact.peak,
      peakReserved: exact.peak + hostPoolFreeBytes(),
      allocations: -1,
    };
  }
  const h = hostMemory();
  return { backend: k.name, allocated: h.live, reserved: h.live, peakAllocated: h.peak, peakReserved: h.peak, allocations: -1 };
}

/** Start the peaks again from the current values (PyTorch's reset_peak_memory_stats). */
export function resetPeakMemoryStats(): void {
  const k = kernels();
  if (k.memory !== undefined) k.memory.resetPeak();
  else {
    resetHostPeak();
    exact.peak = hostMode === "exact" ? 0 : exact.peak;
    if (hostMode === "exact") exactHostLive();
  }
}

/** Resident set size of the process now and its highest sampled value since resetPeakRss(), in bytes. */
export function rssStats(): { rss: number; peakRss: number } {
  const rss = sampleRss();
  return { rss, peakRss: rssPeakBytes() };
}

/** Start a new RSS high-water mark (e.g. at the start of a lab stage). */
export function resetPeakRss(): void {
  rssPeakBytes(true);
}

/** Give the device's cached free blocks back (PyTorch's empty_cache); a no-op on ref and cpu. */
export function emptyCache(): void {
  kernels().memory?.emptyCache();
}

/** Host <-> device copies made by the current backend since start or the last reset (all zero on ref and cpu). */
export function transferStats(): TransferStats {
  return kernels().memory?.transfers() ?? { toHost: 0, toHostBytes: 0, toDevice: 0, toDeviceBytes: 0 };
}

export function resetTransferStats(): void {
  kernels().memory?.resetTransfers();
}
