// Memory statistics of the current backend, named as torch.cuda.memory_stats: `allocated` (bytes in live tensors),
// `reserved` (held from the device: allocated plus cached free blocks), their peaks, and resetPeakMemoryStats().
// On cuda and sim they come from the caching allocator (exact: freed at dispose, scope exit and backward release);
// on ref and cpu from host tensor storage counted from allocation until V8 collects it (an upper bound of what is
// referenced; arrays under 1024 elements are not counted). Also host<->device transfer counts, for tests and benches.

import { kernels } from "../backend/index.js";
import type { MemoryStats, TransferStats } from "../backend/types.js";
import { hostMemory, resetHostPeak } from "./storage.js";

export type { MemoryStats, TransferStats } from "../backend/types.js";

/** Bytes in use and held by the current backend, and their high-water marks. */
export function memoryStats(): MemoryStats & { backend: string } {
  const k = kernels();
  if (k.memory !== undefined) return { backend: k.name, ...k.memory.stats() };
  const h = hostMemory();
  return { backend: k.name, allocated: h.live, reserved: h.live, peakAllocated: h.peak, peakReserved: h.peak, allocations: -1 };
}

/** Start the peaks again from the current values (PyTorch's reset_peak_memory_stats). */
export function resetPeakMemoryStats(): void {
  const k = kernels();
  if (k.memory !== undefined) k.memory.resetPeak();
  else resetHostPeak();
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
