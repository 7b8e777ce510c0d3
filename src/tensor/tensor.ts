// Tensor: a shape, a dtype and contiguous row-major storage, plus the autograd links (requiresGrad, grad, and the
// node of the op that produced it). Storage is a host typed array on ref/cpu (zero-copy into kernels; `.data` is
// that array) or an opaque device buffer on sim/cuda, where values reach the host only through toArray(), item(),
// hostData() (one counted copy each) and explicit moves. Ops live in src/tensor/ops/ and are attached as methods by
// src/tensor/methods.ts; allocation and lifetimes are in storage.ts. No op logic and no kernel dispatch here.

import { kernels, withBackend } from "../backend/index.js";
import type { BackendName, DeviceBuffer, DeviceKind, DeviceMemory, HostArray } from "../backend/types.js";
import {
  allocate,
  allocateUninit,
  type DType,
  freeDevice,
  isHost,
  keepStorage,
  type Storage,
  scopeStorage,
  scopeStorageAsync,
} from "./storage.js";

export type { DType, FloatDType, Storage } from "./storage.js";
export {
  allocate,
  allocateUninit,
  isPoolBorn,
  releaseBuffer,
  takeRecentBuffers,
  withBufferPool,
} from "./storage.js";

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

export function dtypeOf(data: Storage): DType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Float64Array) return "f64";
  if (data instanceof Int32Array) return "i32";
  return (data as DeviceBuffer).dtype;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Contiguous row-major storage (views such as reshape share it): a host typed array or a device buffer. */
  storage: Storage;
  /** "host" for ref/cpu tensors, else the device whose memory holds the values. */
  device: DeviceKind;
  /**
   * A device tensor made from host values (batch ids and masks, fromArray / tensor) keeps them here, so reading them
   * back (hostData, index range checks, position ids) costs no transfer. Null on the host and for values computed on
   * the device; cleared by in-place writes (copyFrom).
   */
  hostShadow: HostArray | null = null;
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
    this.storage = data;
    this.device = isHost(data) ? "host" : data.device;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtypeOf(data);
    if (requiresGrad && this.dtype === "i32") throw new TensorError("[tensor] an i32 tensor cannot require grad");
    this.requiresGrad = requiresGrad;
  }

  /**
   * The host typed array holding the values (ref/cpu tensors; zero-copy, writes change the tensor). A device tensor
   * throws: its values reach the host only explicitly, through toArray(), item() or hostData().
   */
  get data(): HostArray {
    if (this.device === "host") return this.storage as HostArray;
    throw new TensorError(
      `[tensor] .data is host memory, but this ${this.dtype} ${shapeStr(this.shape)} tensor lives on '${this.device}': ` +
        "read it with toArray(), item() or hostData() (one counted copy), or move it with toHost()",
    );
  }

  /**
   * The values as a host typed array: the storage itself on ref/cpu; on a device the host values it was made from
   * when it has them (no transfer), else a fresh copy (one counted download). Treat it as read-only on a device.
   */
  hostData(): HostArray {
    const s = this.storage;
    if (isHost(s)) return s;
    return this.hostShadow ?? memoryOf(this).download(s);
  }

  /** Overwrite the values in place from a host array of the same length (an upload on a device; counted). */
  copyFrom(values: ArrayLike<number>): void {
    if (values.length !== this.size) throw new TensorError(`[copyFrom] ${values.length} values for a tensor of ${this.size}`);
    const s = this.storage;
    if (isHost(s)) {
      s.set(values);
      return;
    }
    const src = this.dtype === "i32" ? Int32Array.from(values) : Float32Array.from(values);
    memoryOf(this).upload(s, src);
    this.hostShadow = null;
  }

  get size(): number {
    return this.storage.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Nested arrays of numbers matching the shape (a number for a scalar). */
  toArray(): unknown {
    const data = this.hostData();
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
    return this.hostData()[0];
  }

  /** A host copy without autograd history (the tensor itself when it is already on the host). */
  toHost(): Tensor {
    if (this.device === "host") return this;
    return new Tensor(this.hostData(), this.shape);
  }

  /** Overwrite the values in place with src's (same shape and dtype, same device); src may be a computed tensor. */
  assign(src: Tensor): void {
    if (src.size !== this.size || src.dtype !== this.dtype) {
      throw new TensorError(`[assign] ${src.dtype} ${shapeStr(src.shape)} into ${this.dtype} ${shapeStr(this.shape)}`);
    }
    const k = kernels();
    const from = onDevice("assign", src, k.device);
    const into = onDevice("assign", this, k.device);
    if (from !== into) k.copyStrided(into, from, [this.size], [1], 0);
    this.hostShadow = null;
  }

  /**
   * A copy on the device of `backend` (default: the current backend) without autograd history; the tensor itself
   * when it is there already. ref and cpu share host memory.
   */
  to(backend?: BackendName): Tensor {
    const move = () => {
      if (this.device === kernels().device) return this;
      return fromArray(this.toHost().data, this.shape);
    };
    return backend === undefined ? move() : withBackend(backend, move);
  }

  /**
   * Move this tensor's values to the current backend's device in place (Module.to() moves parameters this way, so
   * optimizers and modules keep their references). The old device storage is freed.
   */
  moveInPlace(): void {
    const target = kernels().device;
    if (this.device === target) return;
    const moved = fromArray(this.toHost().data, this.shape);
    const old = this.storage;
    this.storage = moved.storage;
    this.device = moved.device;
    this.hostShadow = null; // parameters change in place: no shadow to go stale
    keepStorage(this.storage);
    freeDevice(old);
  }

  /** Free the device memory now (a no-op on the host); using the tensor afterwards is an error naming the op. */
  dispose(): void {
    freeDevice(this.storage);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}]${this.device === "host" ? "" : `, ${this.device}`}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

function memoryOf(t: Tensor): DeviceMemory {
  const k = kernels();
  if (k.device === t.device && k.memory) return k.memory;
  // a tensor of another device than the current backend's: that device's backend copies it
  return withBackend(t.device as BackendName, () => kernels().memory as DeviceMemory);
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

function newHostArray(dtype: DType, n: number): HostArray {
  return dtype === "f32" ? new Float32Array(n) : dtype === "f64" ? new Float64Array(n) : new Int32Array(n);
}

/**
 * Wrap a typed array as a tensor on the current backend: zero-copy on ref/cpu (the tensor uses the array), one
 * counted upload on a device, where the tensor keeps the array as its host shadow (do not change it afterwards).
 */
export function fromArray(data: HostArray, shape: readonly number[] = [data.length], requiresGrad = false): Tensor {
  const k = kernels();
  if (k.device === "host") return new Tensor(data, shape, requiresGrad);
  if (data instanceof Float64Array)
    throw new TensorError(`[tensor] float64 tensors are only supported on the 'ref' backend (backend is '${k.name}')`);
  if (data.length !== sizeOf(shape)) {
    throw new TensorError(`[tensor] data has ${data.length} elements, shape [${shape.join(", ")}] needs ${sizeOf(shape)}`);
  }
  const buf = allocateUninit(dtypeOf(data), data.length, "upload") as DeviceBuffer;
  (k.memory as DeviceMemory).upload(buf, data);
  const t = new Tensor(buf, shape, requiresGrad);
  if (!requiresGrad) t.hostShadow = data;
  return t;
}

/**
 * Create a tensor on the current backend from a number (a scalar), nested arrays, or a flat array / typed array
 * with `shape` (values are copied). dtype defaults to the typed array's type, else f32.
 */
export function tensor(data: number | boolean | readonly Nested[] | ArrayLike<number> | HostArray, opts: TensorOptions = {}): Tensor {
  let values: ArrayLike<number>;
  let shape: readonly number[];
  let dtype: DType = opts.dtype ?? "f32";
  if (typeof data === "number" || typeof data === "boolean") {
    values = [Number(data)];
    shape = opts.shape ?? [];
  } else if (ArrayBuffer.isView(data)) {
    values = data as HostArray;
    if (opts.dtype === undefined) dtype = dtypeOf(data as HostArray);
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
  const host = kernels().device === "host";
  const storage = host ? (allocate(dtype, n, "tensor") as HostArray) : newHostArray(dtype, n);
  if (dtype === "i32") {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (!Number.isInteger(v)) throw new TensorError(`[tensor] i32 tensor got non-integer value ${v} at ${i}`);
      storage[i] = v;
    }
  } else {
    storage.set(values as ArrayLike<number>);
  }
  return host ? new Tensor(storage, shape, opts.requiresGrad ?? false) : fromArray(storage, shape, opts.requiresGrad ?? false);
}

/** A tensor of `value` everywhere, filled by the backend (no host copy on a device). */
export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  const n = sizeOf(shape);
  const storage = value === 0 ? allocate(dtype, n, "full") : allocateUninit(dtype, n, "full");
  if (value !== 0) kernels().fill(storage, value);
  return new Tensor(storage, shape);
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
  const a = newHostArray(dtype, n);
  for (let i = 0; i < n; i++) a[i] = i;
  return fromArray(a, [n]);
}

// ---- device lifetimes ----

function storagesIn(value: unknown, depth = 0, out: Storage[] = []): Storage[] {
  if (value instanceof Tensor) {
    out.push(value.storage);
    if (value.grad !== null) out.push(value.grad.storage);
  } else if (depth < 2 && Array.isArray(value)) for (const v of value) storagesIn(v, depth + 1, out);
  else if (depth < 2 && value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) storagesIn(v, depth + 1, out);
  }
  return out;
}

/**
 * Run fn; on a device backend, free every tensor it created except those it returns (a tensor, or arrays / plain
 * objects of tensors) and those passed to keep(). Gradients that backward() writes to `.grad` are kept. Using a
 * freed tensor afterwards is an error naming the op. On ref/cpu fn just runs (the GC owns host memory).
 */
export function scope<T>(fn: () => T): T {
  return scopeStorage(fn, (v) => storagesIn(v));
}

/** scope() for async work: everything allocated until fn's promise settles belongs to the scope. */
export function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  return scopeStorageAsync(fn, (v) => storagesIn(v));
}

/** Keep tensors alive past the enclosing scope()s (until dispose()). Returns the first for chaining. */
export function keep<T extends Tensor>(t: T, ...more: Tensor[]): T {
  keepStorage(t.storage);
  for (const m of more) keepStorage(m.storage);
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

/**
 * The storage of an op input on the current backend, or an error naming the op when the tensor lives elsewhere
 * (a host tensor given to a device backend, or the reverse): no op copies across devices behind the caller's back.
 */
export function onDevice(op: string, t: Tensor, device: DeviceKind): Storage {
  if (t.device !== device) {
    throw new TensorError(
      `[${op}] a ${t.dtype} ${shapeStr(t.shape)} tensor lives on '${t.device}' but the backend computes on '${device}': ` +
        "create tensors after setBackend(), or move them with .to() / module.to()",
    );
  }
  return t.storage;
}
