// Reader and writer of one safetensors file (8-byte little-endian header length N, N bytes of JSON header,
// then the raw little-endian data; offsets are relative to the data section). Floats load as Float32Array,
// integers as Int32Array; files are read per tensor at offsets, so size is not limited by readFileSync.
// Headers are validated like the Rust library does (full coverage, no gaps or overlaps), and the writer
// reproduces its byte layout (dtype-then-name order, header padded to 8 bytes with spaces).
// Not here: sharded checkpoints (sharded.ts), tensors of the engine (callers wrap the typed arrays).

import * as fs from "node:fs";
import * as os from "node:os";
import { describeValue } from "./describe.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Every dtype the format defines, with its size in bytes. F4/F6 (sub-byte) are not accepted. */
export const DTYPE_BYTES = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const);
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The Rust library's enum order, used to sort tensors on write (descending), then by name. */
const DTYPE_RANK: Record<SafetensorsDtype, number> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  F8_E5M2: 3,
  F8_E4M3: 4,
  F8_E8M0: 5,
  I16: 6,
  U16: 7,
  F16: 8,
  BF16: 9,
  I32: 10,
  U32: 11,
  F32: 12,
  F64: 13,
  I64: 14,
  U64: 15,
};

const FLOAT_DTYPES = new Set<SafetensorsDtype>(["F32", "F16", "BF16", "F64"]);
const INT_DTYPES = new Set<SafetensorsDtype>(["I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"]);

/** The Rust library refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Byte length N of the JSON header (the data section starts at 8 + N). */
  headerBytes: number;
  /** Tensors in the order of their data (ascending offsets). */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
  fileBytes: number;
}

export interface LoadedTensor {
  /** The dtype stored in the file (the data is already widened to f32 or i32). */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsContents {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string> | null;
}

export type WritableDtype = "F32" | "BF16" | "F16" | "I32" | "I64";

export interface WritableTensor {
  dtype: WritableDtype;
  shape: readonly number[];
  /** Row-major values; floats are narrowed to BF16/F16 with round-to-nearest-even. */
  data: Float32Array | Float64Array | Int32Array | readonly number[];
}

/** Tensors to write; a LoadedTensor of a writable dtype (as read) is accepted and checked at run time. */
export type TensorDict = Record<string, WritableTensor | LoadedTensor> | Map<string, WritableTensor | LoadedTensor>;

function assertLittleEndian(): void {
  if (os.endianness() !== "LE") throw new SafetensorsError("[safetensors] big-endian hosts are not supported");
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function fail(file: string, msg: string): never {
  throw new SafetensorsError(`[safetensors] ${file}: ${msg}`);
}

/** Parse and validate the header of an open file. */
function parseHeader(fd: number, file: string): SafetensorsHeader {
  const fileBytes = fs.fstatSync(fd).size;
  if (fileBytes < 8) fail(file, `file has ${fileBytes} bytes, fewer than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const n64 = lenBuf.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n64} is above the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (8 + n > fileBytes) fail(file, `header length ${n} runs past the end of the file (${fileBytes} bytes)`);
  const hbuf = Buffer.alloc(n);
  fs.readSync(fd, hbuf, 0, n, 8);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(hbuf);
  } catch {
    fail(file, "header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) fail(file, "header JSON is not an object");
  const dataBytes = fileBytes - 8 - n;
  let metadata: Record<string, string> | null = null;
  const infos: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(file, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(file, `__metadata__ value of "${k}" is ${describeValue(v)}, not a string`);
      }
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    const where = `tensor "${name}"`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: off } = raw as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      fail(file, `${where}: unknown dtype ${describeValue(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      fail(file, `${where}: shape ${describeValue(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isNonNegInt)) {
      fail(file, `${where}: data_offsets ${describeValue(off)} is not a pair of non-negative integers`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) fail(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) {
      fail(file, `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataBytes} bytes)`);
    }
    const dt = dtype as SafetensorsDtype;
    const need = numel(shape as number[]) * DTYPE_BYTES[dt];
    if (!Number.isSafeInteger(need)) fail(file, `${where}: shape ${fmtShape(shape as number[])} overflows`);
    if (end - begin !== need) {
      fail(
        file,
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, dtype ${dt} shape ${fmtShape(shape as number[])} needs ${need}`,
      );
    }
    infos.push([name, { dtype: dt, shape: [...(shape as number[])], dataOffsets: [begin, end] }]);
  }
  // The data must be covered exactly once, in offset order, with nothing left over (as in the Rust library).
  infos.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  let prev = "";
  for (const [name, info] of infos) {
    const [begin, end] = info.dataOffsets;
    if (begin < pos) {
      fail(file, `tensor "${name}": data_offsets [${begin}, ${end}] overlap tensor "${prev}" (which ends at ${pos})`);
    }
    if (begin > pos) {
      const after = prev ? `after tensor "${prev}"` : "at the start of the data section";
      fail(file, `tensor "${name}": data_offsets begin at ${begin}, leaving a gap of ${begin - pos} bytes ${after}`);
    }
    pos = end;
    prev = name;
  }
  if (pos !== dataBytes) {
    fail(file, `data section has ${dataBytes} bytes but the tensors cover ${pos} (${dataBytes - pos} trailing bytes)`);
  }
  return { headerBytes: n, tensors: new Map(infos), metadata, fileBytes };
}

/** Read and validate only the header of a safetensors file. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openOrFail(path);
  try {
    return parseHeader(fd, path);
  } finally {
    fs.closeSync(fd);
  }
}

function openOrFail(path: string): number {
  try {
    return fs.openSync(path, "r");
  } catch (e) {
    throw new SafetensorsError(`[safetensors] ${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Read exactly `len` bytes at `pos` into a fresh (hence aligned) buffer. */
function readAt(fd: number, file: string, name: string, pos: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const chunk = Math.min(len - done, 1 << 30);
    const got = fs.readSync(fd, out, done, chunk, pos + done);
    if (got === 0) fail(file, `tensor "${name}": file ended after ${done} of ${len} bytes`);
    done += got;
  }
  return out;
}

function decode(bytes: Uint8Array, info: TensorInfo, file: string, name: string): Float32Array | Int32Array {
  const n = numel(info.shape);
  const buf = bytes.buffer;
  switch (info.dtype) {
    case "F32":
      return new Float32Array(buf, 0, n);
    case "F64":
      return Float32Array.from(new Float64Array(buf, 0, n));
    case "BF16":
      return bf16ToF32(new Uint16Array(buf, 0, n));
    case "F16":
      return f16ToF32(new Uint16Array(buf, 0, n));
    case "I32":
      return new Int32Array(buf, 0, n);
    case "I16":
      return Int32Array.from(new Int16Array(buf, 0, n));
    case "U16":
      return Int32Array.from(new Uint16Array(buf, 0, n));
    case "I8":
      return Int32Array.from(new Int8Array(buf, 0, n));
    case "U8":
    case "BOOL":
      return Int32Array.from(new Uint8Array(buf, 0, n));
    case "U32":
    case "I64":
    case "U64": {
      const src =
        info.dtype === "U32"
          ? new Uint32Array(buf, 0, n)
          : info.dtype === "I64"
            ? new BigInt64Array(buf, 0, n)
            : new BigUint64Array(buf, 0, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v > 2147483647 || v < -2147483648) {
          fail(file, `tensor "${name}": ${info.dtype} value ${v} at index ${i} does not fit in int32`);
        }
        out[i] = Number(v);
      }
      return out;
    }
    default:
      return fail(file, `tensor "${name}": dtype ${info.dtype} cannot be loaded (no f32/i32 conversion)`);
  }
}

/**
 * Read a safetensors file. `names` restricts loading to those tensors (each must exist).
 * F32/F16/BF16/F64 become Float32Array; BOOL/U8/I8/I16/U16/I32/U32/I64/U64 become Int32Array.
 */
export function readSafetensors(path: string, opts: { names?: readonly string[] } = {}): SafetensorsContents {
  assertLittleEndian();
  const fd = openOrFail(path);
  try {
    const header = parseHeader(fd, path);
    const wanted = opts.names ?? [...header.tensors.keys()];
    const tensors = new Map<string, LoadedTensor>();
    for (const name of wanted) {
      const info = header.tensors.get(name);
      if (info === undefined) fail(path, `tensor "${name}" is not in the file (it has ${header.tensors.size} tensors)`);
      if (!FLOAT_DTYPES.has(info.dtype) && !INT_DTYPES.has(info.dtype)) {
        fail(path, `tensor "${name}": dtype ${info.dtype} cannot be loaded (no f32/i32 conversion)`);
      }
      const [begin, end] = info.dataOffsets;
      const bytes = readAt(fd, path, name, 8 + header.headerBytes + begin, end - begin);
      tensors.set(name, { dtype: info.dtype, shape: [...info.shape], data: decode(bytes, info, path, name) });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    fs.closeSync(fd);
  }
}

function entriesOf(tensors: TensorDict): [string, WritableTensor][] {
  return (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)) as [string, WritableTensor][];
}

const WRITE_BYTES: Record<WritableDtype, number> = { F32: 4, BF16: 2, F16: 2, I32: 4, I64: 8 };

/** Validate one tensor to write and return its size in bytes. */
export function writableBytes(name: string, t: WritableTensor | LoadedTensor, file = "<memory>"): number {
  if (!Object.hasOwn(WRITE_BYTES, t.dtype)) {
    fail(file, `tensor "${name}": cannot write dtype ${JSON.stringify(t.dtype)} (expected F32, BF16, F16, I32 or I64)`);
  }
  if (!t.shape.every(isNonNegInt)) fail(file, `tensor "${name}": shape ${JSON.stringify(t.shape)} is not valid`);
  const n = numel(t.shape);
  if (t.data.length !== n) {
    fail(file, `tensor "${name}": data has ${t.data.length} elements, shape ${fmtShape(t.shape)} needs ${n}`);
  }
  const isFloat = t.dtype === "F32" || t.dtype === "BF16" || t.dtype === "F16";
  if (!isFloat) {
    for (let i = 0; i < n; i++) {
      const v = t.data[i];
      if (!Number.isInteger(v)) fail(file, `tensor "${name}": ${t.dtype} value ${v} at index ${i} is not an integer`);
      if (t.dtype === "I32" && (v > 2147483647 || v < -2147483648)) {
        fail(file, `tensor "${name}": value ${v} at index ${i} does not fit in I32`);
      }
    }
  }
  return n * WRITE_BYTES[t.dtype as WritableDtype];
}

/** The little-endian bytes of one tensor in its target dtype. */
function encode(t: WritableTensor): Uint8Array {
  const n = t.data.length;
  const f32 = (): Float32Array => (t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>));
  let out: ArrayBufferView;
  switch (t.dtype) {
    case "F32":
      out = f32();
      break;
    case "BF16":
      out = f32ToBf16(f32());
      break;
    case "F16":
      out = f32ToF16(f32());
      break;
    case "I32":
      out = t.data instanceof Int32Array ? t.data : Int32Array.from(t.data as ArrayLike<number>);
      break;
    case "I64": {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = BigInt(t.data[i]);
      out = a;
      break;
    }
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export interface PreparedFile {
  /** 8-byte length + JSON header + padding. */
  head: Uint8Array;
  /** Tensors in file order. */
  order: [string, WritableTensor][];
  dataBytes: number;
}

/** Lay out a file exactly as the Rust library does: descending dtype rank, then name; header padded to 8. */
export function prepareSafetensors(tensors: TensorDict, metadata?: Record<string, string> | null, file = "<memory>"): PreparedFile {
  const order = entriesOf(tensors);
  const names = new Set<string>();
  for (const [name] of order) {
    if (name === "__metadata__") fail(file, `"__metadata__" cannot be a tensor name`);
    if (names.has(name)) fail(file, `tensor "${name}" appears twice`);
    names.add(name);
  }
  order.sort(([an, a], [bn, b]) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || (an < bn ? -1 : an > bn ? 1 : 0));
  // Built by hand: a JS object would move integer-like names ("0") to the front.
  const parts: string[] = [];
  if (metadata) {
    const meta = Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [k, v] of meta) {
      if (typeof v !== "string") fail(file, `metadata value of "${k}" is ${JSON.stringify(v)}, not a string`);
    }
    parts.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`);
  }
  let offset = 0;
  for (const [name, t] of order) {
    const bytes = writableBytes(name, t, file);
    const info = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += bytes;
  }
  let json = `{${parts.join(",")}}`;
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hbytes = Buffer.from(json, "utf-8");
  const head = new Uint8Array(8 + hbytes.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  head.set(hbytes, 8);
  return { head, order, dataBytes: offset };
}

/** Write `path + ".tmp-<pid>"` with `write(fd)`, then rename it over `path`; the temp file is removed on error. */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, "w");
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
  }
}

/**
 * Write tensors to one safetensors file atomically. The layout is byte-identical to what the Python
 * `safetensors` library writes for the same tensors and metadata (HF writes `{format: "pt"}` for models).
 */
export function writeSafetensors(path: string, tensors: TensorDict, metadata?: Record<string, string> | null): void {
  assertLittleEndian();
  const prepared = prepareSafetensors(tensors, metadata, path);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, prepared.head);
    for (const [, t] of prepared.order) writeAll(fd, encode(t));
  });
}

/** Serialise to bytes in memory (small files and tests). */
export function serializeSafetensors(tensors: TensorDict, metadata?: Record<string, string> | null): Uint8Array {
  assertLittleEndian();
  const prepared = prepareSafetensors(tensors, metadata);
  const out = new Uint8Array(prepared.head.length + prepared.dataBytes);
  out.set(prepared.head, 0);
  let pos = prepared.head.length;
  for (const [, t] of prepared.order) {
    const b = encode(t);
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}
