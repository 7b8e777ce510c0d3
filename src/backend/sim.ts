// The `sim` backend: a simulated device for testing the device code paths without a GPU. Its tensors hold opaque
// DeviceBuffer handles from the same caching allocator as `cuda` (over host ArrayBuffers, with a capacity, so
// out-of-memory is testable), every host copy goes through counted upload/download, memory fresh from the
// "device" is NaN-poisoned (code that reads what it never wrote shows up), and bf16/tf32 products are emulated by
// rounding the operands as the tensor cores would. The arithmetic is the host's (cpu kernels when the addon is
// built, else ref; index kernels are ref's, which guard out-of-range indices as the device kernels do).
// Not a fast backend and not a user-facing one: `auto` never picks it.

import { type Block, PooledDeviceMemory, type RawDeviceMemory } from "./allocator.js";
import { createCpuKernels, loadCpuAddon } from "./cpu.js";
import { refKernels } from "./ref.js";
import type { DeviceBuffer, DeviceKernels, FloatArray, HostKernels, KernelSet, MathMode } from "./types.js";

const DEFAULT_CAPACITY = 8 * 2 ** 30;

class SimRawMemory implements RawDeviceMemory {
  private readonly blocks = new Map<number, ArrayBuffer>();
  private next = 1;
  used = 0;

  constructor(public capacity: number) {}

  malloc(bytes: number): number | null {
    if (this.used + bytes > this.capacity) return null;
    const buf = new ArrayBuffer(bytes);
    new Uint32Array(buf).fill(0x7fc00000); // quiet NaN as f32; as i32 an index far out of range
    const addr = this.next++;
    this.blocks.set(addr, buf);
    this.used += bytes;
    return addr;
  }

  release(addr: number): void {
    const b = this.blocks.get(addr);
    if (b === undefined) throw new Error(`[sim] release of unknown block ${addr}`);
    this.used -= b.byteLength;
    this.blocks.delete(addr);
  }

  bytes(addr: number): ArrayBuffer {
    const b = this.blocks.get(addr);
    if (b === undefined) throw new Error(`[sim] block ${addr} is not allocated`);
    return b;
  }

  copyIn(addr: number, src: Float32Array | Int32Array): void {
    new Uint8Array(this.bytes(addr)).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  }

  copyOut(addr: number, dst: Float32Array | Int32Array): void {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(new Uint8Array(this.bytes(addr), 0, dst.byteLength));
  }

  info(): { total: number; free: number } {
    return { total: this.capacity, free: this.capacity - this.used };
  }
}

/** Round float32 values to the nearest bfloat16 (ties to even), as a copy. */
export function roundToBf16(x: Float32Array): Float32Array {
  return roundMantissa(x, 16);
}

/** Round float32 values to tf32 (10 mantissa bits, ties to even), as a copy. */
export function roundToTf32(x: Float32Array): Float32Array {
  return roundMantissa(x, 13);
}

function roundMantissa(x: Float32Array, drop: number): Float32Array {
  const out = Float32Array.from(x);
  const u = new Uint32Array(out.buffer);
  const half = (1 << (drop - 1)) - 1;
  const mask = ~((1 << drop) - 1) >>> 0;
  for (let i = 0; i < u.length; i++) {
    const bits = u[i];
    if ((bits & 0x7f800000) === 0x7f800000) continue; // Inf and NaN stay
    u[i] = ((bits + half + ((bits >>> drop) & 1)) & mask) >>> 0;
  }
  return out;
}

const ROUND: Record<MathMode, ((x: Float32Array) => Float32Array) | null> = { fp32: null, tf32: roundToTf32, bf16: roundToBf16 };

function createSimBackend(capacity: number): { kernels: DeviceKernels; raw: SimRawMemory } {
  const raw = new SimRawMemory(capacity);
  const memory = new PooledDeviceMemory("sim", raw);
  const native = loadCpuAddon();
  const H: HostKernels = native === null ? refKernels : createCpuKernels(native);
  const R = refKernels;

  // views of device buffers; anything else (a host array, a freed or foreign buffer) is a tagged error
  const view = (b: DeviceBuffer, op: string, what: string): Float32Array | Int32Array => {
    const block: Block = memory.blockOf(b, op, what);
    const ab = raw.bytes(block.addr);
    return b.dtype === "i32" ? new Int32Array(ab, 0, b.length) : new Float32Array(ab, 0, b.length);
  };
  const f = (b: DeviceBuffer, op: string, what: string): Float32Array => {
    const v = view(b, op, what);
    if (!(v instanceof Float32Array)) throw new TypeError(`[sim ${op}] ${what} must be a float buffer`);
    return v;
  };
  const i = (b: DeviceBuffer, op: string, what: string): Int32Array => {
    const v = view(b, op, what);
    if (!(v instanceof Int32Array)) throw new TypeError(`[sim ${op}] ${what} must be an i32 buffer`);
    return v;
  };
  const rounded = (x: Float32Array, math: MathMode): Float32Array => ROUND[math]?.(x) ?? x;

  const kernels = {
    name: "sim",
    device: "sim",
    mathModes: ["fp32", "tf32", "bf16"],
    memory,
    describe: () => `sim (simulated device in host memory, capacity ${(raw.capacity / 2 ** 30).toFixed(2)} GiB, host kernels '${H.name}')`,
    unary: (op, out, x, p0, p1) => H.unary(op, f(out, "unary", "out"), f(x, "unary", "x"), p0, p1),
    binary: (op, out, a, b, layout) => H.binary(op, f(out, "binary", "out"), f(a, "binary", "a"), f(b, "binary", "b"), layout),
    where: (out, cond, a, b) => H.where(f(out, "where", "out"), f(cond, "where", "cond"), f(a, "where", "a"), f(b, "where", "b")),
    fill: (out, value) => H.fill(view(out, "fill", "out") as FloatArray, value),
    cast: (out, x) => H.cast(view(out, "cast", "out") as FloatArray, view(x, "cast", "x") as FloatArray),
    sum: (out, x, outer, n, inner) => H.sum(f(out, "sum", "out"), f(x, "sum", "x"), outer, n, inner),
    max: (out, idx, x, outer, n, inner) => H.max(f(out, "max", "out"), i(idx, "max", "idx"), f(x, "max", "x"), outer, n, inner),
    logsumexp: (out, x, outer, n, inner) => H.logsumexp(f(out, "logsumexp", "out"), f(x, "logsumexp", "x"), outer, n, inner),
    matmul: (c, a, b, batch, m, n, k, transA, transB, sA, sB, sC, acc, math) =>
      H.matmul(
        f(c, "matmul", "c"),
        rounded(f(a, "matmul", "a"), math),
        rounded(f(b, "matmul", "b"), math),
        batch,
        m,
        n,
        k,
        transA,
        transB,
        sA,
        sB,
        sC,
        acc,
        "fp32",
      ),
    copyStrided: (out, x, shape, strides, offset) =>
      H.copyStrided(view(out, "copyStrided", "out") as FloatArray, view(x, "copyStrided", "x") as FloatArray, shape, strides, offset),
    copyToStrided: (out, x, shape, strides, offset) =>
      H.copyToStrided(view(out, "copyToStrided", "out") as FloatArray, view(x, "copyToStrided", "x") as FloatArray, shape, strides, offset),
    gather: (out, x, idx, outer, nIn, nIdx, inner) =>
      R.gather(f(out, "gather", "out"), f(x, "gather", "x"), i(idx, "gather", "idx"), outer, nIn, nIdx, inner),
    scatterAdd: (out, src, idx, outer, nOut, nIdx, inner) =>
      R.scatterAdd(f(out, "scatterAdd", "out"), f(src, "scatterAdd", "src"), i(idx, "scatterAdd", "idx"), outer, nOut, nIdx, inner),
    indexSelect: (out, table, ids, n, d, rows) =>
      R.indexSelect(f(out, "indexSelect", "out"), f(table, "indexSelect", "table"), i(ids, "indexSelect", "ids"), n, d, rows),
    indexAdd: (table, src, ids, n, d, rows) =>
      R.indexAdd(f(table, "indexAdd", "table"), f(src, "indexAdd", "src"), i(ids, "indexAdd", "ids"), n, d, rows),
    softmax: (out, x, rows, n) => H.softmax(f(out, "softmax", "out"), f(x, "softmax", "x"), rows, n),
    logSoftmax: (out, x, rows, n) => H.logSoftmax(f(out, "logSoftmax", "out"), f(x, "logSoftmax", "x"), rows, n),
    tokenLogprobs: (out, lse, logits, targets, rows, v) =>
      R.tokenLogprobs(
        f(out, "tokenLogprobs", "out"),
        f(lse, "tokenLogprobs", "lse"),
        f(logits, "tokenLogprobs", "logits"),
        i(targets, "tokenLogprobs", "targets"),
        rows,
        v,
      ),
    tokenLogprobsBackward: (dlogits, dout, logits, lse, targets, rows, v) =>
      R.tokenLogprobsBackward(
        f(dlogits, "tokenLogprobsBackward", "dlogits"),
        f(dout, "tokenLogprobsBackward", "dout"),
        f(logits, "tokenLogprobsBackward", "logits"),
        f(lse, "tokenLogprobsBackward", "lse"),
        i(targets, "tokenLogprobsBackward", "targets"),
        rows,
        v,
      ),
    rmsNorm: (y, rstd, x, w, rows, d, eps) =>
      H.rmsNorm(f(y, "rmsNorm", "y"), f(rstd, "rmsNorm", "rstd"), f(x, "rmsNorm", "x"), f(w, "rmsNorm", "w"), rows, d, eps),
    rmsNormBackward: (dx, dw, dy, x, w, rstd, rows, d) =>
      H.rmsNormBackward(
        f(dx, "rmsNormBackward", "dx"),
        f(dw, "rmsNormBackward", "dw"),
        f(dy, "rmsNormBackward", "dy"),
        f(x, "rmsNormBackward", "x"),
        f(w, "rmsNormBackward", "w"),
        f(rstd, "rmsNormBackward", "rstd"),
        rows,
        d,
      ),
    rope: (out, x, cos, sin, b, h, t, dh, inverse) =>
      H.rope(f(out, "rope", "out"), f(x, "rope", "x"), f(cos, "rope", "cos"), f(sin, "rope", "sin"), b, h, t, dh, inverse),
    attention: (out, lse, q, k, v, mask, b, h, hkv, t, s, dh, scale, causal, sCap, math) =>
      H.attention(
        f(out, "attention", "out"),
        f(lse, "attention", "lse"),
        rounded(f(q, "attention", "q"), math),
        rounded(f(k, "attention", "k"), math),
        rounded(f(v, "attention", "v"), math),
        mask === null ? null : f(mask, "attention", "keyMask"),
        b,
        h,
        hkv,
        t,
        s,
        dh,
        scale,
        causal,
        sCap,
        "fp32",
      ),
    attentionBackward: (dq, dk, dv, dout, q, k, v, out, lse, mask, b, h, hkv, t, s, dh, scale, causal, math) =>
      H.attentionBackward(
        f(dq, "attentionBackward", "dq"),
        f(dk, "attentionBackward", "dk"),
        f(dv, "attentionBackward", "dv"),
        rounded(f(dout, "attentionBackward", "dout"), math),
        rounded(f(q, "attentionBackward", "q"), math),
        rounded(f(k, "attentionBackward", "k"), math),
        rounded(f(v, "attentionBackward", "v"), math),
        f(out, "attentionBackward", "out"),
        f(lse, "attentionBackward", "lse"),
        mask === null ? null : f(mask, "attentionBackward", "keyMask"),
        b,
        h,
        hkv,
        t,
        s,
        dh,
        scale,
        causal,
        "fp32",
      ),
    swiglu: (out, gate, up) => H.swiglu(f(out, "swiglu", "out"), f(gate, "swiglu", "gate"), f(up, "swiglu", "up")),
    swigluBackward: (dgate, dup, dout, gate, up) =>
      H.swigluBackward(
        f(dgate, "swigluBackward", "dgate"),
        f(dup, "swigluBackward", "dup"),
        f(dout, "swigluBackward", "dout"),
        f(gate, "swigluBackward", "gate"),
        f(up, "swigluBackward", "up"),
      ),
    sort: (values, indices, x, outer, n, inner, descending) =>
      H.sort(f(values, "sort", "values"), i(indices, "sort", "indices"), f(x, "sort", "x"), outer, n, inner, descending),
    pagedKvWrite: (kCache, vCache, k, v, slots, n, hkv, dh, bs) =>
      H.pagedKvWrite(
        f(kCache, "pagedKvWrite", "kCache"),
        f(vCache, "pagedKvWrite", "vCache"),
        f(k, "pagedKvWrite", "k"),
        f(v, "pagedKvWrite", "v"),
        i(slots, "pagedKvWrite", "slots"),
        n,
        hkv,
        dh,
        bs,
      ),
    copyBlocks: (cache, src, dst, n, blockElems) =>
      H.copyBlocks(f(cache, "copyBlocks", "cache"), i(src, "copyBlocks", "src"), i(dst, "copyBlocks", "dst"), n, blockElems),
    pagedAttention: (out, q, kCache, vCache, tables, lens, starts, seqs, h, hkv, dh, bs, maxBlocks, scale) =>
      H.pagedAttention(
        f(out, "pagedAttention", "out"),
        f(q, "pagedAttention", "q"),
        f(kCache, "pagedAttention", "kCache"),
        f(vCache, "pagedAttention", "vCache"),
        i(tables, "pagedAttention", "blockTables"),
        i(lens, "pagedAttention", "contextLens"),
        i(starts, "pagedAttention", "queryStarts"),
        seqs,
        h,
        hkv,
        dh,
        bs,
        maxBlocks,
        scale,
      ),
    sampleTokens: (ids, logprobs, logits, temperature, topK, topP, minP, uniform, rows, v) =>
      H.sampleTokens(
        i(ids, "sampleTokens", "ids"),
        f(logprobs, "sampleTokens", "logprobs"),
        f(logits, "sampleTokens", "logits"),
        f(temperature, "sampleTokens", "temperature"),
        i(topK, "sampleTokens", "topK"),
        f(topP, "sampleTokens", "topP"),
        f(minP, "sampleTokens", "minP"),
        f(uniform, "sampleTokens", "uniform"),
        rows,
        v,
      ),
    packedWeightSize: (n, k) => H.packedWeightSize(n, k),
    packWeight: (out, w, n, k) => H.packWeight(f(out, "packWeight", "out"), f(w, "packWeight", "w"), n, k),
    linearPacked: (y, x, packed, m, n, k) =>
      H.linearPacked(f(y, "linearPacked", "y"), f(x, "linearPacked", "x"), f(packed, "linearPacked", "packed"), m, n, k),
    adamw: (p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2) =>
      H.adamw(f(p, "adamw", "p"), f(g, "adamw", "g"), f(m, "adamw", "m"), f(v, "adamw", "v"), lr, b1, b2, eps, wd, bc1, bc2),
    adamwMulti: (params, grads, m, v, hyper) =>
      H.adamwMulti(
        params.map((b) => f(b, "adamwMulti", "param")),
        grads.map((b) => f(b, "adamwMulti", "grad")),
        m.map((b) => f(b, "adamwMulti", "expAvg")),
        v.map((b) => f(b, "adamwMulti", "expAvgSq")),
        hyper,
      ),
  } satisfies DeviceKernels & KernelSet<DeviceBuffer, DeviceBuffer>;
  return { kernels, raw };
}

let sim: { kernels: DeviceKernels; raw: SimRawMemory } | null = null;

function envCapacity(): number {
  const v = process.env.NEXUS_SIM_MEMORY;
  if (v === undefined || v === "") return DEFAULT_CAPACITY;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?)?$/i.exec(v.trim());
  if (m === null) throw new Error(`[sim] NEXUS_SIM_MEMORY must be bytes or a size like 512MiB, got '${v}'`);
  const unit = (m[2] ?? "").toLowerCase()[0];
  const scale = unit === "k" ? 2 ** 10 : unit === "m" ? 2 ** 20 : unit === "g" ? 2 ** 30 : 1;
  return Math.floor(Number(m[1]) * scale);
}

/** The simulated device (one per process). */
export function simKernels(): DeviceKernels {
  sim ??= createSimBackend(envCapacity());
  return sim.kernels;
}

/** Change the simulated device's capacity in bytes (tests of out-of-memory); returns the previous one. */
export function setSimCapacity(bytes: number): number {
  simKernels();
  const s = sim as { raw: SimRawMemory };
  const prev = s.raw.capacity;
  s.raw.capacity = bytes;
  return prev;
}
