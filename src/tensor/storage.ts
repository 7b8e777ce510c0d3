// Where tensor storage comes from and goes back to. Host backends (ref, cpu): plain typed arrays, which the
// tensors hold themselves (zero-copy into native kernels), plus the buffer pool that backward's temporaries are
// recycled through. Device backends (sim, cuda): buffers from the backend's caching allocator, released
// deterministically by the backward pool, by scope() exits and by dispose(), and by a finalizer as a last resort.
// Host allocations are also counted (bytes from allocation until V8 collects them) for memoryStats() on ref/cpu.
// No op logic here and no Tensor class (tensor.ts).

import { kernels } from "../backend/index.js";
import type { DeviceBuffer, DeviceMemory, HostArray, OpKernels } from "../backend/types.js";

export type DType = "f32" | "f64" | "i32";
export type FloatDType = "f32" | "f64";
/** A host typed array (ref, cpu) or an opaque device buffer (sim, cuda). */
export type Storage = HostArray | DeviceBuffer;

export class StorageError extends Error {
  override name = "StorageError";
}

export function isHost(s: Storage): s is HostArray {
  return ArrayBuffer.isView(s);
}

function newHost(dtype: DType, n: number): HostArray {
  const a = dtype === "f32" ? new Float32Array(n) : dtype === "f64" ? new Float64Array(n) : new Int32Array(n);
  trackHost(a);
  return a;
}

/**
 * A host array whose contents are garbage, for kernel outputs that write every element: large ones skip the zero-fill
 * `new Float32Array` does on the calling thread (a serial memset that the other cores wait on at every op).
 */
function newHostUninit(dtype: DType, n: number): HostArray {
  if (n < POOL_MIN) return newHost(dtype, n);
  const bytes = Buffer.allocUnsafeSlow(n * (dtype === "f64" ? 8 : 4)).buffer;
  const a = dtype === "f32" ? new Float32Array(bytes, 0, n) : dtype === "f64" ? new Float64Array(bytes, 0, n) : new Int32Array(bytes, 0, n);
  trackHost(a);
  return a;
}

function deviceAlloc(k: OpKernels, dtype: DType, n: number, op: string): DeviceBuffer {
  if (dtype === "f64") throw new StorageError(`[${op}] float64 tensors are only supported on the 'ref' backend (backend is '${k.name}')`);
  const mem = k.memory as DeviceMemory;
  const buf = mem.alloc(dtype, n, op);
  adoptDevice(buf, mem);
  return buf;
}

/** Zero-filled storage of n elements on the current backend; `op` names the caller in out-of-memory errors. */
export function allocate(dtype: DType, n: number, op = "alloc"): Storage {
  const k = kernels();
  if (k.device !== "host") {
    const buf = deviceAlloc(k, dtype, n, op);
    k.fill(buf, 0);
    return buf;
  }
  if (pool !== null && dtype === "f32" && n >= POOL_MIN) return pooled(n, true);
  return newHost(dtype, n);
}

/** Like allocate, but the contents may be garbage: for kernel outputs that write every element. */
export function allocateUninit(dtype: DType, n: number, op = "alloc"): Storage {
  const k = kernels();
  if (k.device !== "host") return deviceAlloc(k, dtype, n, op);
  if (pool !== null && dtype === "f32" && n >= POOL_MIN) return pooled(n, false);
  return newHostUninit(dtype, n);
}

// ---- the buffer pool for backward temporaries ----
// While autograd runs backward (inside `withBufferPool`), buffers born in the pass are tracked; autograd hands back
// (`releaseBuffer`) only buffers born in that pass that nothing references any more (see autograd.ts). On the host,
// large f32 buffers go to free lists reused by the next pass (outside a pass allocation is plain `new Float32Array`, so
// tensors that user code can hold never alias a pool); on a device they go straight back to the caching allocator.
// NEXUS_BUFFER_POOL=0 turns the host pool off (for A/B timing or to rule it out when debugging).

const POOL_MIN = 4096; // elements; smaller arrays are cheap for V8
const POOL_MAX_BYTES = 512 * 1024 * 1024; // free buffers kept between passes
const freeLists = new Map<number, Float32Array[]>();
let freeBytes = 0;
const POOL_OFF = typeof process !== "undefined" && process.env?.NEXUS_BUFFER_POOL === "0";
let pool: { born: Set<Storage>; recent: Storage[] } | null = null;

function pooled(n: number, zero: boolean): Float32Array {
  const list = freeLists.get(n);
  let buf = list?.pop();
  if (buf !== undefined) {
    freeBytes -= buf.byteLength;
    hostLive += buf.byteLength; // back in use
    if (hostLive > hostPeak) hostPeak = hostLive;
    if (zero) buf.fill(0);
  } else buf = newHost("f32", n) as Float32Array;
  const p = pool as { born: Set<Storage>; recent: Storage[] };
  p.born.add(buf);
  p.recent.push(buf);
  return buf;
}

/** Run fn with pooled allocation; `isPoolBorn` tells which storages it allocated. Not reentrant (nested calls share). */
export function withBufferPool<T>(fn: () => T): T {
  const device = kernels().device !== "host";
  if (pool !== null || (POOL_OFF && !device)) return fn();
  pool = { born: new Set(), recent: [] };
  try {
    return fn();
  } finally {
    pool = null;
  }
}

export function isPoolBorn(data: Storage): boolean {
  return pool?.born.has(data) ?? false;
}

/** Pool buffers allocated since the last call (in this pass); clears the list. */
export function takeRecentBuffers(): Storage[] {
  if (pool === null) return [];
  const r = pool.recent;
  pool.recent = [];
  return r;
}

/** Give a buffer born in the current pass back; the caller guarantees nothing references it. */
export function releaseBuffer(data: Storage): void {
  if (pool === null || !pool.born.delete(data)) return;
  if (!isHost(data)) {
    freeDevice(data);
    return;
  }
  if (!(data instanceof Float32Array) || freeBytes + data.byteLength > POOL_MAX_BYTES) return;
  let list = freeLists.get(data.length);
  if (list === undefined) {
    list = [];
    freeLists.set(data.length, list);
  }
  list.push(data);
  freeBytes += data.byteLength;
  hostLive -= data.byteLength; // idle in the pool, not a live tensor
}

function recordDevice(buf: DeviceBuffer): void {
  if (pool !== null) {
    pool.born.add(buf);
    pool.recent.push(buf);
  }
  const s = scopes[scopes.length - 1];
  if (s !== undefined) s.push(buf);
}

// ---- device lifetimes: scopes and explicit frees (the allocator's finalizer is the last resort) ----

const owners = new WeakMap<DeviceBuffer, DeviceMemory>();
const scopes: DeviceBuffer[][] = [];
const kept = new WeakSet<DeviceBuffer>();

function adoptDevice(buf: DeviceBuffer, mem: DeviceMemory): void {
  owners.set(buf, mem);
  recordDevice(buf);
}

/** Free a device buffer now (a no-op for host arrays and for buffers already freed). */
export function freeDevice(buf: Storage): void {
  if (isHost(buf) || !buf.live) return;
  owners.get(buf)?.free(buf);
}

/** Keep a device buffer alive past every enclosing scope (parameters' gradients, optimizer state, returned tensors). */
export function keepStorage(buf: Storage): void {
  if (!isHost(buf)) kept.add(buf);
}

/**
 * Run fn and free every device buffer it allocated that is not kept (keep()) or part of its result (tensors in the
 * returned value, arrays and plain objects of them, two levels deep). A freed tensor used later raises an error
 * naming the op instead of reading freed memory. Host backends: fn runs as is (the GC owns host memory).
 */
export function scopeStorage<T>(fn: () => T, storagesOf: (value: unknown) => Storage[]): T {
  if (kernels().device === "host") return fn();
  scopes.push([]);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    release(scopes.pop() as DeviceBuffer[], new Set());
    throw e;
  }
  const mine = scopes.pop() as DeviceBuffer[];
  const returned = new Set(storagesOf(result));
  release(mine, returned);
  // what the inner scope returned belongs to the outer one now
  const outer = scopes[scopes.length - 1];
  if (outer !== undefined) for (const b of mine) if (returned.has(b)) outer.push(b);
  return result;
}

/** scopeStorage for async work (a training loop's micro-step): everything allocated until fn settles is in the scope. */
export async function scopeStorageAsync<T>(fn: () => Promise<T>, storagesOf: (value: unknown) => Storage[]): Promise<T> {
  if (kernels().device === "host") return fn();
  const mine: DeviceBuffer[] = [];
  scopes.push(mine);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    scopes.splice(scopes.lastIndexOf(mine), 1);
    release(mine, new Set());
    throw e;
  }
  scopes.splice(scopes.lastIndexOf(mine), 1);
  const returned = new Set(storagesOf(result));
  release(mine, returned);
  const outer = scopes[scopes.length - 1];
  if (outer !== undefined) for (const b of mine) if (returned.has(b)) outer.push(b);
  return result;
}

function release(bufs: DeviceBuffer[], returned: Set<Storage>): void {
  for (const b of bufs) if (!kept.has(b) && !returned.has(b)) freeDevice(b);
}

// ---- host accounting (memoryStats on ref/cpu) ----
// Bytes of host tensor storage from allocation until V8 collects it or the backward pool takes it back: an upper
// bound of what is truly referenced (garbage not yet collected counts), tracked for arrays of >= 1024 elements.

const HOST_TRACK_MIN = 1024;
let hostLive = 0;
let hostPeak = 0;
const hostFinalizer = new FinalizationRegistry<number>((bytes) => {
  hostLive -= bytes;
});

function trackHost(a: HostArray): void {
  if (a.length < HOST_TRACK_MIN) return;
  hostLive += a.byteLength;
  if (hostLive > hostPeak) hostPeak = hostLive;
  hostFinalizer.register(a, a.byteLength);
  if (a.byteLength >= RSS_SAMPLE_BYTES) sampleRss();
}

/** Bytes idle in the host pool's free lists (allocated from the system, not in a live tensor). */
export function hostPoolFreeBytes(): number {
  return freeBytes;
}

// RSS is sampled when a large host array appears (the resident set grows with them) and at memory checkpoints.
const RSS_SAMPLE_BYTES = 1 << 20;
let rssPeak = 0;

/** Read the process RSS into the sampled high-water mark; returns the current RSS. */
export function sampleRss(): number {
  const rss = process.memoryUsage.rss();
  if (rss > rssPeak) rssPeak = rss;
  return rss;
}

/** Highest sampled RSS since the last reset (`reset`: start again from the current RSS). */
export function rssPeakBytes(reset = false): number {
  if (reset) rssPeak = process.memoryUsage.rss();
  return rssPeak;
}

/** Host bytes counted as live now and their high-water mark. */
export function hostMemory(): { live: number; peak: number } {
  return { live: Math.max(0, hostLive), peak: hostPeak };
}

export function resetHostPeak(): void {
  hostPeak = Math.max(0, hostLive);
}
