// The `cuda` backend's binding: loads nexus_cuda.node (native_cuda/, built by `npm run build:cuda`) lazily, checks
// at load that it exports every kernel of the interface plus its memory calls, initialises the device and
// cuBLASLt, and maps each KernelSet call on DeviceBuffer handles to the addon's call on device addresses.
// Memory comes from the caching allocator (allocator.ts); kernel scratch (bf16 operand copies, reduction partials,
// sort buffers) is allocated from it per call and freed right after the launch, which is safe because every
// kernel runs in order on one stream. Everything is asynchronous except download(), which waits for the stream.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PooledDeviceMemory, type RawDeviceMemory } from "./allocator.js";
import { missingKernels } from "./cpu.js";
import { coalesceDims } from "./layout.js";
import { refDecodeKernels } from "./ref_decode.js";
import {
  BINARY_OPS,
  type DeviceBuffer,
  type DeviceKernels,
  KERNEL_NAMES,
  type KernelSet,
  MATH_MODES,
  type MathMode,
  UNARY_OPS,
} from "./types.js";

/** What cudaGetDeviceProperties and the driver say, for `nexus info` and the auto-selection notice. */
export interface CudaDeviceInfo {
  name: string;
  computeCapability: string;
  multiprocessors: number;
  totalBytes: number;
  freeBytes: number;
  driverVersion: string;
  runtimeVersion: string;
  cublasLt: string;
}

type Addr = number;
/** The addon's calls: kernels on device addresses (sizes explicit), plus device memory and info. */
export interface CudaNative {
  /** Selects device 0, creates the stream and loads cuBLASLt; returns null on success, else why cuda cannot run. */
  init(): string | null;
  deviceInfo(): CudaDeviceInfo;
  malloc(bytes: number): Addr | null;
  free(addr: Addr): void;
  upload(addr: Addr, src: Float32Array | Int32Array): void;
  download(dst: Float32Array | Int32Array, addr: Addr): void;
  synchronize(): void;
  unary(op: number, out: Addr, x: Addr, n: number, p0: number, p1: number): void;
  binary(op: number, out: Addr, a: Addr, b: Addr, n: number, shape: number[], aStrides: number[], bStrides: number[]): void;
  where(out: Addr, cond: Addr, a: Addr, b: Addr, n: number): void;
  fill(out: Addr, n: number, value: number, isInt: boolean): void;
  cast(out: Addr, x: Addr, n: number, outInt: boolean, xInt: boolean): void;
  sum(out: Addr, x: Addr, outer: number, n: number, inner: number): void;
  max(out: Addr, idx: Addr, x: Addr, outer: number, n: number, inner: number): void;
  logsumexp(out: Addr, x: Addr, outer: number, n: number, inner: number): void;
  matmul(
    c: Addr,
    a: Addr,
    b: Addr,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    accumulate: boolean,
    math: number,
    scratchA: Addr,
    scratchB: Addr,
  ): void;
  copyStrided(out: Addr, x: Addr, n: number, shape: number[], strides: number[], offset: number): void;
  copyToStrided(out: Addr, x: Addr, n: number, shape: number[], outStrides: number[], outOffset: number): void;
  gather(out: Addr, x: Addr, idx: Addr, outer: number, nIn: number, nIdx: number, inner: number): void;
  scatterAdd(out: Addr, src: Addr, idx: Addr, outer: number, nOut: number, nIdx: number, inner: number): void;
  indexSelect(out: Addr, table: Addr, ids: Addr, n: number, d: number, rows: number): void;
  indexAdd(table: Addr, src: Addr, ids: Addr, n: number, d: number, rows: number): void;
  softmax(out: Addr, x: Addr, rows: number, n: number, log: boolean): void;
  tokenLogprobs(out: Addr, lse: Addr, logits: Addr, targets: Addr, rows: number, v: number): void;
  tokenLogprobsBackward(dlogits: Addr, dout: Addr, logits: Addr, lse: Addr, targets: Addr, rows: number, v: number): void;
  rmsNorm(y: Addr, rstd: Addr, x: Addr, w: Addr, rows: number, d: number, eps: number): void;
  rmsNormBackward(
    dx: Addr,
    dw: Addr,
    dy: Addr,
    x: Addr,
    w: Addr,
    rstd: Addr,
    rows: number,
    d: number,
    partials: Addr,
    chunks: number,
  ): void;
  rope(out: Addr, x: Addr, cos: Addr, sin: Addr, b: number, h: number, t: number, dh: number, inverse: boolean): void;
  attention(
    out: Addr,
    lse: Addr,
    q: Addr,
    k: Addr,
    v: Addr,
    mask: Addr,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
    sCap: number,
    math: number,
  ): void;
  attentionBackward(
    dq: Addr,
    dk: Addr,
    dv: Addr,
    dout: Addr,
    q: Addr,
    k: Addr,
    v: Addr,
    out: Addr,
    lse: Addr,
    mask: Addr,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
    math: number,
    dsum: Addr,
  ): void;
  swiglu(out: Addr, gate: Addr, up: Addr, n: number): void;
  swigluBackward(dgate: Addr, dup: Addr, dout: Addr, gate: Addr, up: Addr, n: number): void;
  sort(values: Addr, indices: Addr, x: Addr, outer: number, n: number, inner: number, descending: boolean, scratch: Addr): void;
  pagedKvWrite(kCache: Addr, vCache: Addr, k: Addr, v: Addr, slots: Addr, n: number, hkv: number, dh: number, blockSize: number): void;
  copyBlocks(cache: Addr, src: Addr, dst: Addr, n: number, blockElems: number): void;
  /** n: query rows (= queryStarts[numSeqs]). */
  pagedAttention(
    out: Addr,
    q: Addr,
    kCache: Addr,
    vCache: Addr,
    blockTables: Addr,
    contextLens: Addr,
    queryStarts: Addr,
    numSeqs: number,
    n: number,
    h: number,
    hkv: number,
    dh: number,
    blockSize: number,
    maxBlocks: number,
    scale: number,
  ): void;
  adamw(
    p: Addr,
    g: Addr,
    m: Addr,
    v: Addr,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    bc1: number,
    bc2: number,
  ): void;
  /** addrs: [p, g, m, v] per tensor; sizes: elements per tensor; hyper: [lr, b1, b2, eps, wd, bc1, bc2] per tensor. */
  adamwMulti(addrs: Float64Array, sizes: Float64Array, hyper: Float64Array): void;
}

const MEMORY_CALLS = [
  "init",
  "deviceInfo",
  "malloc",
  "free",
  "upload",
  "download",
  "synchronize",
] as const satisfies readonly (keyof CudaNative)[];
/**
 * Kernels the binding builds from other native calls: logSoftmax (softmax's log flag), the packed Linear (a plain copy and a
 * cuBLASLt GEMM), and sampleTokens, which runs `ref`'s sampler on the host for now (one [rows, V] download per decode
 * step; a device sampler belongs with the GPU rollout engine).
 */
export const CUDA_COMPOSED = ["logSoftmax", "sampleTokens", "packedWeightSize", "packWeight", "linearPacked"];
/** Every function nexus_cuda.node must export: the other kernel names of the interface plus the memory calls. */
export const CUDA_EXPORTS: readonly string[] = [...KERNEL_NAMES.filter((k) => !CUDA_COMPOSED.includes(k)), ...MEMORY_CALLS];

const MATH_CODE = Object.fromEntries(MATH_MODES.map((m, i) => [m, i])) as Record<MathMode, number>;
const UNARY_CODE = Object.fromEntries(UNARY_OPS.map((m, i) => [m, i])) as Record<string, number>;
const BINARY_CODE = Object.fromEntries(BINARY_OPS.map((m, i) => [m, i])) as Record<string, number>;
/** Rows of rmsNorm's dw partial sums (one block each); the addon reduces them in a second pass. */
const RMS_CHUNKS = 128;

let native: CudaNative | null | undefined;
let reason = "";
let backend: DeviceKernels | null = null;

function findAddon(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, "build-cuda", "nexus_cuda.node");
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

function loadNative(): CudaNative | null {
  if (native !== undefined) return native;
  native = null;
  if (process.env.NEXUS_CUDA === "0") {
    reason = "disabled by NEXUS_CUDA=0";
    return native;
  }
  const path = findAddon();
  if (path === null) {
    reason = "build-cuda/nexus_cuda.node not built (run `npm run build:cuda` where nvcc is installed; CUDA_HOME, default /usr/local/cuda)";
    return native;
  }
  let mod: Record<string, unknown>;
  try {
    mod = createRequire(import.meta.url)(path) as Record<string, unknown>;
  } catch (e) {
    reason = `${path} failed to load: ${(e as Error).message}`;
    return native;
  }
  const missing = missingKernels(mod, CUDA_EXPORTS);
  if (missing.length > 0) {
    reason = `${path} lacks ${missing.join(", ")} (a stale build: run \`npm run build:cuda\`)`;
    return native;
  }
  const err = (mod as unknown as CudaNative).init();
  if (err !== null) {
    reason = err;
    return native;
  }
  native = mod as unknown as CudaNative;
  return native;
}

export function cudaUnavailableReason(): string {
  loadNative();
  return reason;
}

/** Device facts when the cuda backend can run here, else null (see cudaUnavailableReason). */
export function cudaDeviceInfo(): CudaDeviceInfo | null {
  return loadNative()?.deviceInfo() ?? null;
}

function createCudaKernels(n: CudaNative): DeviceKernels {
  const raw: RawDeviceMemory = {
    malloc: (bytes) => n.malloc(bytes),
    release: (addr) => n.free(addr),
    copyIn: (addr, src) => n.upload(addr, src),
    copyOut: (addr, dst) => n.download(dst, addr),
    info: () => {
      const i = n.deviceInfo();
      return { total: i.totalBytes, free: i.freeBytes };
    },
  };
  const memory = new PooledDeviceMemory("cuda", raw);
  const a = (b: DeviceBuffer, op: string, what: string): Addr => memory.blockOf(b, op, what).addr;
  const maybe = (b: DeviceBuffer | null, op: string, what: string): Addr => (b === null ? 0 : a(b, op, what));
  /** Run fn with a scratch buffer of `count` f32 elements (0: none), freed after the launch. */
  const withScratch = (count: number, op: string, fn: (addr: Addr) => void): void => {
    if (count <= 0) {
      fn(0);
      return;
    }
    const s = memory.alloc("f32", count, op);
    try {
      fn(a(s, op, "scratch"));
    } finally {
      memory.free(s);
    }
  };
  const isInt = (b: DeviceBuffer) => b.dtype === "i32";

  const kernels = {
    name: "cuda",
    device: "cuda",
    mathModes: ["fp32", "tf32", "bf16"],
    memory,
    describe: () => {
      const i = n.deviceInfo();
      return `${i.name}, sm_${i.computeCapability.replace(".", "")}, ${(i.totalBytes / 2 ** 30).toFixed(1)} GiB, driver ${i.driverVersion}`;
    },
    unary: (op, out, x, p0, p1) => n.unary(UNARY_CODE[op], a(out, "unary", "out"), a(x, "unary", "x"), x.length, p0, p1),
    binary: (op, out, x, y, layout) => {
      const c = coalesceDims(layout.outShape, [layout.aStrides, layout.bStrides]);
      n.binary(
        BINARY_CODE[op],
        a(out, "binary", "out"),
        a(x, "binary", "a"),
        a(y, "binary", "b"),
        out.length,
        c.shape,
        c.strides[0],
        c.strides[1],
      );
    },
    where: (out, cond, x, y) =>
      n.where(a(out, "where", "out"), a(cond, "where", "cond"), a(x, "where", "a"), a(y, "where", "b"), out.length),
    fill: (out, value) => n.fill(a(out, "fill", "out"), out.length, value, isInt(out)),
    cast: (out, x) => n.cast(a(out, "cast", "out"), a(x, "cast", "x"), out.length, isInt(out), isInt(x)),
    sum: (out, x, outer, len, inner) => n.sum(a(out, "sum", "out"), a(x, "sum", "x"), outer, len, inner),
    max: (out, idx, x, outer, len, inner) => n.max(a(out, "max", "out"), a(idx, "max", "idx"), a(x, "max", "x"), outer, len, inner),
    logsumexp: (out, x, outer, len, inner) => n.logsumexp(a(out, "logsumexp", "out"), a(x, "logsumexp", "x"), outer, len, inner),
    matmul: (c, x, y, batch, m, nn, k, tA, tB, sA, sB, sC, acc, math) => {
      // bf16: the addon rounds A and B into these scratch copies (2 bytes per element, so half as many f32 slots)
      const spanA = sA === 0 ? m * k : sA * (batch - 1) + m * k;
      const spanB = sB === 0 ? k * nn : sB * (batch - 1) + k * nn;
      const bf16 = math === "bf16";
      withScratch(bf16 ? Math.ceil(spanA / 2) : 0, "matmul", (scA) =>
        withScratch(bf16 ? Math.ceil(spanB / 2) : 0, "matmul", (scB) =>
          n.matmul(
            a(c, "matmul", "c"),
            a(x, "matmul", "a"),
            a(y, "matmul", "b"),
            batch,
            m,
            nn,
            k,
            tA,
            tB,
            sA,
            sB,
            sC,
            acc,
            MATH_CODE[math],
            scA,
            scB,
          ),
        ),
      );
    },
    copyStrided: (out, x, shape, strides, offset) => {
      const c = coalesceDims(shape, [strides]);
      n.copyStrided(a(out, "copyStrided", "out"), a(x, "copyStrided", "x"), out.length, c.shape, c.strides[0], offset);
    },
    copyToStrided: (out, x, shape, strides, offset) => {
      const c = coalesceDims(shape, [strides]);
      n.copyToStrided(a(out, "copyToStrided", "out"), a(x, "copyToStrided", "x"), x.length, c.shape, c.strides[0], offset);
    },
    gather: (out, x, idx, outer, nIn, nIdx, inner) =>
      n.gather(a(out, "gather", "out"), a(x, "gather", "x"), a(idx, "gather", "idx"), outer, nIn, nIdx, inner),
    scatterAdd: (out, src, idx, outer, nOut, nIdx, inner) =>
      n.scatterAdd(a(out, "scatterAdd", "out"), a(src, "scatterAdd", "src"), a(idx, "scatterAdd", "idx"), outer, nOut, nIdx, inner),
    indexSelect: (out, table, ids, len, d, rows) =>
      n.indexSelect(a(out, "indexSelect", "out"), a(table, "indexSelect", "table"), a(ids, "indexSelect", "ids"), len, d, rows),
    indexAdd: (table, src, ids, len, d, rows) =>
      n.indexAdd(a(table, "indexAdd", "table"), a(src, "indexAdd", "src"), a(ids, "indexAdd", "ids"), len, d, rows),
    softmax: (out, x, rows, len) => n.softmax(a(out, "softmax", "out"), a(x, "softmax", "x"), rows, len, false),
    logSoftmax: (out, x, rows, len) => n.softmax(a(out, "logSoftmax", "out"), a(x, "logSoftmax", "x"), rows, len, true),
    tokenLogprobs: (out, lse, logits, targets, rows, v) =>
      n.tokenLogprobs(
        a(out, "tokenLogprobs", "out"),
        a(lse, "tokenLogprobs", "lse"),
        a(logits, "tokenLogprobs", "logits"),
        a(targets, "tokenLogprobs", "targets"),
        rows,
        v,
      ),
    tokenLogprobsBackward: (dlogits, dout, logits, lse, targets, rows, v) =>
      n.tokenLogprobsBackward(
        a(dlogits, "tokenLogprobsBackward", "dlogits"),
        a(dout, "tokenLogprobsBackward", "dout"),
        a(logits, "tokenLogprobsBackward", "logits"),
        a(lse, "tokenLogprobsBackward", "lse"),
        a(targets, "tokenLogprobsBackward", "targets"),
        rows,
        v,
      ),
    rmsNorm: (y, rstd, x, w, rows, d, eps) =>
      n.rmsNorm(a(y, "rmsNorm", "y"), a(rstd, "rmsNorm", "rstd"), a(x, "rmsNorm", "x"), a(w, "rmsNorm", "w"), rows, d, eps),
    rmsNormBackward: (dx, dw, dy, x, w, rstd, rows, d) => {
      const chunks = Math.max(1, Math.min(RMS_CHUNKS, rows));
      withScratch(chunks * d, "rmsNormBackward", (partials) =>
        n.rmsNormBackward(
          a(dx, "rmsNormBackward", "dx"),
          a(dw, "rmsNormBackward", "dw"),
          a(dy, "rmsNormBackward", "dy"),
          a(x, "rmsNormBackward", "x"),
          a(w, "rmsNormBackward", "w"),
          a(rstd, "rmsNormBackward", "rstd"),
          rows,
          d,
          partials,
          chunks,
        ),
      );
    },
    rope: (out, x, cos, sin, b, h, t, dh, inverse) =>
      n.rope(a(out, "rope", "out"), a(x, "rope", "x"), a(cos, "rope", "cos"), a(sin, "rope", "sin"), b, h, t, dh, inverse),
    attention: (out, lse, q, k, v, mask, b, h, hkv, t, s, dh, scale, causal, sCap, math) =>
      n.attention(
        a(out, "attention", "out"),
        a(lse, "attention", "lse"),
        a(q, "attention", "q"),
        a(k, "attention", "k"),
        a(v, "attention", "v"),
        maybe(mask, "attention", "keyMask"),
        b,
        h,
        hkv,
        t,
        s,
        dh,
        scale,
        causal,
        sCap,
        MATH_CODE[math],
      ),
    attentionBackward: (dq, dk, dv, dout, q, k, v, out, lse, mask, b, h, hkv, t, s, dh, scale, causal, math) =>
      withScratch(b * h * t, "attentionBackward", (dsum) =>
        n.attentionBackward(
          a(dq, "attentionBackward", "dq"),
          a(dk, "attentionBackward", "dk"),
          a(dv, "attentionBackward", "dv"),
          a(dout, "attentionBackward", "dout"),
          a(q, "attentionBackward", "q"),
          a(k, "attentionBackward", "k"),
          a(v, "attentionBackward", "v"),
          a(out, "attentionBackward", "out"),
          a(lse, "attentionBackward", "lse"),
          maybe(mask, "attentionBackward", "keyMask"),
          b,
          h,
          hkv,
          t,
          s,
          dh,
          scale,
          causal,
          MATH_CODE[math],
          dsum,
        ),
      ),
    swiglu: (out, gate, up) => n.swiglu(a(out, "swiglu", "out"), a(gate, "swiglu", "gate"), a(up, "swiglu", "up"), out.length),
    swigluBackward: (dgate, dup, dout, gate, up) =>
      n.swigluBackward(
        a(dgate, "swigluBackward", "dgate"),
        a(dup, "swigluBackward", "dup"),
        a(dout, "swigluBackward", "dout"),
        a(gate, "swigluBackward", "gate"),
        a(up, "swigluBackward", "up"),
        dout.length,
      ),
    // keys and positions, twice (ping-pong merge passes): 4 words per element
    sort: (values, indices, x, outer, len, inner, descending) =>
      withScratch(4 * outer * len * inner, "sort", (scratch) =>
        n.sort(a(values, "sort", "values"), a(indices, "sort", "indices"), a(x, "sort", "x"), outer, len, inner, descending, scratch),
      ),
    pagedKvWrite: (kCache, vCache, k, v, slots, len, hkv, dh, bs) =>
      n.pagedKvWrite(
        a(kCache, "pagedKvWrite", "kCache"),
        a(vCache, "pagedKvWrite", "vCache"),
        a(k, "pagedKvWrite", "k"),
        a(v, "pagedKvWrite", "v"),
        a(slots, "pagedKvWrite", "slots"),
        len,
        hkv,
        dh,
        bs,
      ),
    copyBlocks: (cache, src, dst, len, blockElems) =>
      n.copyBlocks(a(cache, "copyBlocks", "cache"), a(src, "copyBlocks", "src"), a(dst, "copyBlocks", "dst"), len, blockElems),
    pagedAttention: (out, q, kCache, vCache, tables, lens, starts, seqs, h, hkv, dh, bs, maxBlocks, scale) =>
      n.pagedAttention(
        a(out, "pagedAttention", "out"),
        a(q, "pagedAttention", "q"),
        a(kCache, "pagedAttention", "kCache"),
        a(vCache, "pagedAttention", "vCache"),
        a(tables, "pagedAttention", "blockTables"),
        a(lens, "pagedAttention", "contextLens"),
        a(starts, "pagedAttention", "queryStarts"),
        seqs,
        q.length / Math.max(h * dh, 1),
        h,
        hkv,
        dh,
        bs,
        maxBlocks,
        scale,
      ),
    sampleTokens: (ids, logprobs, logits, temperature, topK, topP, minP, uniform, rows, v) => {
      const host = (b: DeviceBuffer) => memory.download(b);
      const outIds = new Int32Array(rows);
      const outLp = new Float32Array(rows);
      refDecodeKernels.sampleTokens(
        outIds,
        outLp,
        host(logits) as Float32Array,
        host(temperature) as Float32Array,
        host(topK) as Int32Array,
        host(topP) as Float32Array,
        host(minP) as Float32Array,
        host(uniform) as Float32Array,
        rows,
        v,
      );
      memory.upload(ids, outIds);
      memory.upload(logprobs, outLp);
    },
    // the packed layout is the plain [n, k] weight: cuBLASLt reads it as a transposed operand
    packedWeightSize: (nn, k) => nn * k,
    packWeight: (out, w, nn, k) => n.copyStrided(a(out, "packWeight", "out"), a(w, "packWeight", "w"), nn * k, [nn * k], [1], 0),
    linearPacked: (y, x, packed, m, nn, k) =>
      n.matmul(
        a(y, "linearPacked", "y"),
        a(x, "linearPacked", "x"),
        a(packed, "linearPacked", "packed"),
        1,
        m,
        nn,
        k,
        false,
        true,
        0,
        0,
        0,
        false,
        MATH_CODE.fp32,
        0,
        0,
      ),
    adamw: (p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2) =>
      n.adamw(a(p, "adamw", "p"), a(g, "adamw", "g"), a(m, "adamw", "m"), a(v, "adamw", "v"), p.length, lr, b1, b2, eps, wd, bc1, bc2),
    adamwMulti: (params, grads, m, v, hyper) => {
      const count = params.length;
      const addrs = new Float64Array(4 * count);
      const sizes = new Float64Array(count);
      const hp = new Float64Array(7 * count);
      for (let i = 0; i < count; i++) {
        addrs[4 * i] = a(params[i], "adamwMulti", "param");
        addrs[4 * i + 1] = a(grads[i], "adamwMulti", "grad");
        addrs[4 * i + 2] = a(m[i], "adamwMulti", "expAvg");
        addrs[4 * i + 3] = a(v[i], "adamwMulti", "expAvgSq");
        sizes[i] = params[i].length;
        const h = hyper[i];
        hp.set([h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.bc1, h.bc2], 7 * i);
      }
      n.adamwMulti(addrs, sizes, hp);
    },
  } satisfies DeviceKernels & KernelSet<DeviceBuffer, DeviceBuffer>;
  return kernels;
}

/** The cuda kernels when the addon is built and a device answers; null otherwise (cudaUnavailableReason says why). */
export function cudaKernels(): DeviceKernels | null {
  if (backend !== null) return backend;
  const n = loadNative();
  if (n === null) return null;
  backend = createCudaKernels(n);
  return backend;
}

/** Wait for every queued kernel (benchmarks; downloads already wait). */
export function cudaSynchronize(): void {
  loadNative()?.synchronize();
}
