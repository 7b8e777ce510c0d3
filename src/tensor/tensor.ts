// Tensor: a shape, a dtype and a contiguous row-major typed array, plus the autograd links (requiresGrad,
// grad, and the node of the op that produced it). Ops live in src/tensor/ops/ and are attached as methods
// by src/tensor/methods.ts; this file has no op logic and no backend dispatch. It also owns allocation,
// including the buffer pool that backward's temporaries are recycled through.

export type DType = "f32" | "f64" | "i32";
export type FloatDType = "f32" | "f64";
export type Storage = Float32Array | Float64Array | Int32Array;

export class TensorError extends Error {
  override name = "TensorError";
}

/** The record an op leaves on its output so backward can find its inputs and saved values. */
export interface Node {
  op: string;
  inputs: Tensor[];
  ctx: Record<string, unknown>;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function allocate(dtype: DType, n: number): Storage {
  if (pool !== null && dtype === "f32" && n >= POOL_MIN) return pooled(n, true);
  if (dtype === "f32") return new Float32Array(n);
  if (dtype === "f64") return new Float64Array(n);
  return new Int32Array(n);
}

/** Like allocate, but the contents may be garbage: for kernel outputs that write every element. */
export function allocateUninit(dtype: DType, n: number): Storage {
  if (pool !== null && dtype === "f32" && n >= POOL_MIN) return pooled(n, false);
  return allocate(dtype, n);
}

// ---- the buffer pool for backward temporaries ----
// While autograd runs backward (inside `withBufferPool`), large f32 buffers come from free lists; autograd hands
// back (`releaseBuffer`) only buffers born in that pass that nothing references any more (see autograd.ts).
// Outside a pass allocation is plain `new Float32Array`, so tensors that user code can hold never alias a pool.
// NEXUS_BUFFER_POOL=0 turns it off (for A/B timing or to rule it out when debugging).

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
    if (zero) buf.fill(0);
  } else buf = new Float32Array(n);
  const p = pool as { born: Set<Storage>; recent: Storage[] };
  p.born.add(buf);
  p.recent.push(buf);
  return buf;
}

/** Run fn with pooled allocation; `isPoolBorn` tells which storages it allocated. Not reentrant (nested calls share). */
export function withBufferPool<T>(fn: () => T): T {
  if (pool !== null || POOL_OFF) return fn();
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

/** Give a buffer born in the current pass back to the pool; the caller guarantees nothing references it. */
export function releaseBuffer(data: Storage): void {
  if (pool === null || !pool.born.delete(data) || !(data instanceof Float32Array)) return;
  if (freeBytes + data.byteLength > POOL_MAX_BYTES) return;
  let list = freeLists.get(data.length);
  if (list === undefined) {
    list = [];
    freeLists.set(data.length, list);
  }
  list.push(data);
  freeBytes += data.byteLength;
}

export function dtypeOf(data: Storage): DType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Float64Array) return "f64";
  return "i32";
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Contiguous row-major storage; views (reshape) share it. */
  data: Storage;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The op that produced this tensor while gradients were recorded; null for leaves. */
  node: Node | null = null;
  /** Optional label used in error messages and parameter trees. */
  name?: string;

  constructor(data: Storage, shape: readonly number[], requiresGrad = false) {
    const n = sizeOf(shape);
    if (data.length !== n) {
      throw new TensorError(`[tensor] data has ${data.length} elements, shape [${shape.join(", ")}] needs ${n}`);
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new TensorError(`[tensor] invalid shape [${shape.join(", ")}]`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtypeOf(data);
    if (requiresGrad && this.dtype === "i32") throw new TensorError("[tensor] an i32 tensor cannot require grad");
    this.requiresGrad = requiresGrad;
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Nested arrays of numbers matching the shape (a number for a scalar). */
  toArray(): unknown {
    const data = this.data;
    const shape = this.shape;
    if (shape.length === 0) return data[0];
    const build = (dim: number, offset: number): unknown[] => {
      const n = shape[dim];
      if (dim === shape.length - 1) return Array.from(data.subarray(offset, offset + n));
      const stride = sizeOf(shape.slice(dim + 1));
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = build(dim + 1, offset + i * stride);
      return out;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new TensorError(`[item] tensor of shape [${this.shape.join(", ")}] has ${this.size} elements, expected 1`);
    return this.data[0];
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}]${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

export interface TensorOptions {
  dtype?: DType;
  shape?: readonly number[];
  requiresGrad?: boolean;
}

type Nested = number | boolean | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly Nested[])[0] ?? 0;
    if ((cur as unknown) === undefined) break;
  }
  return shape;
}

function flatten(data: Nested, shape: readonly number[], out: number[], dim = 0): void {
  if (dim === shape.length) {
    if (typeof data !== "number" && typeof data !== "boolean") throw new TensorError("[tensor] ragged nested array");
    out.push(Number(data));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new TensorError(`[tensor] ragged nested array: expected ${shape[dim]} elements at depth ${dim}`);
  }
  for (const d of data as readonly Nested[]) flatten(d, shape, out, dim + 1);
}

/**
 * Create a tensor from a number (a scalar), nested arrays, or a flat array / typed array with `shape`.
 * dtype defaults to the typed array's type, else f32.
 */
export function tensor(data: number | boolean | readonly Nested[] | ArrayLike<number> | Storage, opts: TensorOptions = {}): Tensor {
  let values: ArrayLike<number>;
  let shape: readonly number[];
  let dtype: DType = opts.dtype ?? "f32";
  if (typeof data === "number" || typeof data === "boolean") {
    values = [Number(data)];
    shape = opts.shape ?? [];
  } else if (ArrayBuffer.isView(data)) {
    values = data as Storage;
    if (opts.dtype === undefined) dtype = dtypeOf(data as Storage);
    shape = opts.shape ?? [values.length];
  } else if (Array.isArray(data) && (data.length === 0 || !Array.isArray(data[0])) && opts.shape !== undefined) {
    values = data as number[];
    shape = opts.shape;
  } else {
    const inferred = inferShape(data as Nested);
    const flat: number[] = [];
    flatten(data as Nested, inferred, flat);
    values = flat;
    shape = opts.shape ?? inferred;
  }
  const n = sizeOf(shape);
  if (values.length !== n) {
    throw new TensorError(`[tensor] ${values.length} values do not fill shape [${shape.join(", ")}] (${n} elements)`);
  }
  const storage = allocate(dtype, n);
  if (dtype === "i32") {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (!Number.isInteger(v)) throw new TensorError(`[tensor] i32 tensor got non-integer value ${v} at ${i}`);
      storage[i] = v;
    }
  } else {
    storage.set(values as ArrayLike<number>);
  }
  return new Tensor(storage, shape, opts.requiresGrad ?? false);
}

export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  const t = new Tensor(allocate(dtype, sizeOf(shape)), shape);
  if (value !== 0) t.data.fill(value);
  return t;
}

export function zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return full(shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype);
}

export function arange(n: number, dtype: DType = "i32"): Tensor {
  const t = zeros([n], dtype);
  for (let i = 0; i < n; i++) t.data[i] = i;
  return t;
}

// ---- gradient mode ----

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn without recording ops for autograd (inference, optimizer updates, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Like noGrad, for async work (generation loops). */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Attach the autograd record to an op's output when gradients are enabled and an input requires them.
 * Returns `out` for chaining.
 */
export function record(op: string, out: Tensor, inputs: Tensor[], ctx: Record<string, unknown> = {}): Tensor {
  if (!gradEnabled) return out;
  for (const t of inputs) {
    if (t.requiresGrad) {
      out.requiresGrad = true;
      out.node = { op, inputs, ctx };
      return out;
    }
  }
  return out;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
