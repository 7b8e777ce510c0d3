// The kernel interface every backend implements: loops over contiguous buffers, outputs first.
// Kernels never allocate tensors, track gradients or validate user input: the op layer
// (src/tensor/ops/) owns shapes, broadcasting, autograd and errors, and calls these with checked sizes.
// `KernelSet<F, I>` is generic over the buffer types: host backends take typed arrays (`ref` also Float64Array,
// for gradient checks), device backends (`cuda`, `sim`) take opaque `DeviceBuffer` handles. Every backend object
// `satisfies` its KernelSet, and KERNEL_NAMES is checked against the interface at compile time, so a kernel missing
// from a backend is a type error (TS backends) or a load-time error (native addons), never a silent fallback.

export type FloatArray = Float32Array | Float64Array;
export type HostArray = FloatArray | Int32Array;
export type BackendName = "ref" | "cpu" | "cuda" | "sim";
/** Where a backend's tensors live: host memory (ref, cpu share it) or a device's own memory. */
export type DeviceKind = "host" | "cuda" | "sim";
export type DeviceDType = "f32" | "i32";

/**
 * How matmul and attention multiply: `fp32` exact float32 products; `tf32` (cuda) 10-bit-mantissa tensor-core
 * products, fp32 accumulation; `bf16` operands rounded to bfloat16, fp32 accumulation and fp32 results (AMP).
 */
export const MATH_MODES = ["fp32", "tf32", "bf16"] as const;
export type MathMode = (typeof MATH_MODES)[number];

/** An allocation in a device backend's memory. Only its backend can read what is behind it. */
export interface DeviceBuffer {
  readonly device: Exclude<DeviceKind, "host">;
  readonly dtype: DeviceDType;
  /** Elements. */
  readonly length: number;
  /** False once freed (dispose, scope exit): a kernel handed it throws instead of reading freed memory. */
  readonly live: boolean;
}

export const UNARY_OPS = [
  "neg",
  "exp",
  "log",
  "log1p",
  "expm1",
  "sqrt",
  "rsqrt",
  "abs",
  "sign",
  "sigmoid",
  "tanh",
  "relu",
  "silu",
  "softplus",
  "logSigmoid",
  "log1mexp",
  "square",
  "reciprocal",
  // parameterised by p0 (and p1): pow x^p0, clamp to [p0, p1], addScalar x+p0, mulScalar x*p0,
  // step (x > p0 ? 1 : 0), siluGrad (d silu/dx), sigmoidGrad (s*(1-s) given x)
  "powScalar",
  "clamp",
  "addScalar",
  "mulScalar",
  "gtScalar",
  "siluGrad",
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

export const BINARY_OPS = ["add", "sub", "mul", "div", "pow", "minimum", "maximum", "gt", "ge", "eq"] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Broadcast binary layout: `outShape` plus per-input element strides (0 on broadcast axes). */
export interface BroadcastLayout {
  outShape: readonly number[];
  aStrides: readonly number[];
  bStrides: readonly number[];
}

/** Per-tensor scalars of one AdamW update (a multi-tensor step takes one of these per parameter). */
export interface AdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^t for this parameter's step count t. */
  bc1: number;
  bc2: number;
}

/** The kernels of a backend whose float buffers are F and integer buffers I. */
export interface KernelSet<F, I> {
  /** out[i] = f(x[i]) with optional scalar parameters p0, p1 (out may be x). */
  unary(op: UnaryOp, out: F, x: F, p0: number, p1: number): void;
  /** out = a (op) b with broadcasting described by `layout` (out is contiguous over layout.outShape). */
  binary(op: BinaryOp, out: F, a: F, b: F, layout: BroadcastLayout): void;
  /** out[i] = cond[i] != 0 ? a[i] : b[i] (all the same length; the op layer expands first). */
  where(out: F, cond: F, a: F, b: F): void;
  /** Every element of out set to value. */
  fill(out: F | I, value: number): void;
  /** Element conversion: float to i32 truncates toward zero; i32 to float and float to float convert exactly or round. */
  cast(out: F | I, x: F | I): void;

  /** x viewed as [outer, n, inner]; out [outer, inner] = sum over n. */
  sum(out: F, x: F, outer: number, n: number, inner: number): void;
  /** Max over n of x [outer, n, inner]; argmax (first maximal index) into idx. */
  max(out: F, idx: I, x: F, outer: number, n: number, inner: number): void;
  /** Stable log(sum(exp(x))) over n of x [outer, n, inner]. */
  logsumexp(out: F, x: F, outer: number, n: number, inner: number): void;

  /**
   * Batched GEMM: for each b < batch, C_b = op(A_b) @ op(B_b) (+ C_b when accumulate), where
   * op(A) is [M, K] (stored [K, M] when transA), op(B) is [K, N] (stored [N, K] when transB), C_b [M, N].
   * A_b starts at b * strideA (strideA 0 broadcasts one matrix), likewise B and C. `math` says how products are
   * formed (fp32 accumulation in every mode); a backend rejects modes it does not list in `mathModes`.
   */
  matmul(
    c: F,
    a: F,
    b: F,
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
    math: MathMode,
  ): void;

  /** Materialise a strided view: out (contiguous over shape) [i] = x[offset + sum_d idx_d * strides[d]]. */
  copyStrided(out: F | I, x: F | I, shape: readonly number[], strides: readonly number[], offset: number): void;
  /** The converse write: out[outOffset + sum_d idx_d * outStrides[d]] = x (contiguous over shape) [i]. */
  copyToStrided(out: F | I, x: F | I, shape: readonly number[], outStrides: readonly number[], outOffset: number): void;

  /**
   * x [outer, nIn, inner], idx [outer, nIdx, inner]: out [outer, nIdx, inner] = x[o, idx, i]. Indices outside
   * [0, nIn) give NaN (the op layer range-checks indices it can read; device-made indices are guarded here).
   */
  gather(out: F, x: F, idx: I, outer: number, nIn: number, nIdx: number, inner: number): void;
  /** out [outer, nOut, inner] += src [outer, nIdx, inner] at rows idx [outer, nIdx, inner]; out-of-range rows are skipped. */
  scatterAdd(out: F, src: F, idx: I, outer: number, nOut: number, nIdx: number, inner: number): void;
  /** Row lookup: out [n, D] = table[ids[i], :] (rows: the table's row count; an id outside [0, rows) gives NaN). */
  indexSelect(out: F, table: F, ids: I, n: number, d: number, rows: number): void;
  /** table [rows, D] += src [n, D] at rows ids (duplicates accumulate; out-of-range ids are skipped). */
  indexAdd(table: F, src: F, ids: I, n: number, d: number, rows: number): void;

  /** Softmax / log-softmax over the last axis of x [rows, n]. */
  softmax(out: F, x: F, rows: number, n: number): void;
  logSoftmax(out: F, x: F, rows: number, n: number): void;

  /**
   * out[r] = log_softmax(logits[r, :])[targets[r]], and lse[r] = logsumexp(logits[r, :]); no [rows, V] buffer.
   * A target outside [0, v) gives NaN.
   */
  tokenLogprobs(out: F, lse: F, logits: F, targets: I, rows: number, v: number): void;
  /** dlogits[r, j] = dout[r] * (onehot(targets[r])_j - exp(logits[r, j] - lse[r])). */
  tokenLogprobsBackward(dlogits: F, dout: F, logits: F, lse: F, targets: I, rows: number, v: number): void;

  /** y = x * rstd * w over rows of length d; rstd[r] = 1 / sqrt(mean(x[r]^2) + eps). */
  rmsNorm(y: F, rstd: F, x: F, w: F, rows: number, d: number, eps: number): void;
  /** Gradients of rmsNorm; dw is overwritten (not accumulated). */
  rmsNormBackward(dx: F, dw: F, dy: F, x: F, w: F, rstd: F, rows: number, d: number): void;

  /**
   * Rotary embedding, rotate-half convention (HF Llama): x [B, H, T, Dh], cos/sin [B, T, Dh/2].
   * out[..., i] = x_i cos_i - x_{i+Dh/2} sin_i; out[..., i+Dh/2] = x_{i+Dh/2} cos_i + x_i sin_i.
   * inverse = true rotates by -angle (the backward pass).
   */
  rope(out: F, x: F, cos: F, sin: F, b: number, h: number, t: number, dh: number, inverse: boolean): void;

  /**
   * Scaled dot-product attention with GQA: q [B, H, T, Dh], k/v [B, Hkv, sCap, Dh], head h reads kv head
   * h / (H / Hkv); only the first s key rows of each (batch, kv head) are read (sCap > s: a preallocated KV cache).
   * keyMask [B, S] (1 keep, 0 drop) or null. causal: query t sees keys j <= t + (S - T).
   * out [B, H, T, Dh]; lse [B, H, T] = logsumexp of the scaled, masked scores (-Infinity if a row sees no key,
   * in which case out is 0). `math`: how q k^T and p v are multiplied (softmax statistics stay fp32).
   */
  attention(
    out: F,
    lse: F,
    q: F,
    k: F,
    v: F,
    keyMask: F | null,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
    sCap: number,
    math: MathMode,
  ): void;
  /** Gradients of attention from the saved out and lse (dq, dk, dv overwritten); k/v dense (sCap = s). */
  attentionBackward(
    dq: F,
    dk: F,
    dv: F,
    dout: F,
    q: F,
    k: F,
    v: F,
    out: F,
    lse: F,
    keyMask: F | null,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
    math: MathMode,
  ): void;

  /** out = silu(gate) * up. */
  swiglu(out: F, gate: F, up: F): void;
  swigluBackward(dgate: F, dup: F, dout: F, gate: F, up: F): void;

  /** Stable sort of x [outer, n, inner] along n (NaN last); indices are positions in the input. */
  sort(values: F, indices: I, x: F, outer: number, n: number, inner: number, descending: boolean): void;

  // ---- decode (inference only: no gradients; src/generate/'s rollout engine) ----
  // Paged KV cache: per layer, kCache [numBlocks, Hkv, Dh, blockSize] (keys transposed within a block, so a block's
  // scores are blockSize-wide vector FMAs) and vCache [numBlocks, Hkv, blockSize, Dh]; key/value j of a sequence
  // live in block blockTable[j / blockSize] at position j % blockSize. Sizes are flat numbers and block tables flat
  // i32 buffers, so a device version maps one-to-one.

  /** For each of n new tokens i: position slots[i] (= block * blockSize + row) of the caches gets k/v [n, Hkv, Dh]; slot < 0 skips. */
  pagedKvWrite(kCache: F, vCache: F, k: F, v: F, slots: I, n: number, hkv: number, dh: number, blockSize: number): void;
  /** cache[dst[i]] = cache[src[i]] for i < n, blocks of blockElems elements (copy-on-write of shared blocks). */
  copyBlocks(cache: F, src: I, dst: I, n: number, blockElems: number): void;
  /**
   * Attention of packed query tokens over a paged KV cache, prefill chunks and decode in one call, GQA (head h reads
   * kv head h / (H / Hkv)). q/out [N, H, Dh] token-major; sequence i owns query rows queryStarts[i] ..
   * queryStarts[i + 1] - 1 (queryStarts [numSeqs + 1]), which are its last q_i of contextLens[i] cached keys (written
   * before this call), so its query j sees keys [0, contextLens[i] - q_i + j]. blockTables [numSeqs, maxBlocks].
   */
  pagedAttention(
    out: F,
    q: F,
    kCache: F,
    vCache: F,
    blockTables: I,
    contextLens: I,
    queryStarts: I,
    numSeqs: number,
    h: number,
    hkv: number,
    dh: number,
    blockSize: number,
    maxBlocks: number,
    scale: number,
  ): void;
  /**
   * One token per row of logits [rows, V], HF's order of filters (generate/sampling.ts is the definition): x / T, then
   * top-k, top-p, min-p over the probabilities (ties by lower id), then the kept token whose cumulative mass (in id
   * order) first exceeds uniform[r] * kept mass. temperature[r] 0 is greedy (first argmax); topK 0, topP 1, minP 0 are
   * off. ids[r] = the token, logprobs[r] = log_softmax(x / T)[id] before filtering (T = 1 when greedy).
   */
  sampleTokens(ids: I, logprobs: F, logits: F, temperature: F, topK: I, topP: F, minP: F, uniform: F, rows: number, v: number): void;
  /** Elements packWeight writes for a [n, k] weight (its layout is the backend's own). */
  packedWeightSize(n: number, k: number): number;
  /** Repack a Linear weight w [n, k] (PyTorch layout) once, for many linearPacked calls while it does not change. */
  packWeight(out: F, w: F, n: number, k: number): void;
  /** y [m, n] = x [m, k] W^T with W packed by packWeight. */
  linearPacked(y: F, x: F, packed: F, m: number, n: number, k: number): void;

  /**
   * One AdamW step in place (decoupled weight decay, PyTorch semantics):
   * p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps).
   */
  adamw(p: F, g: F, m: F, v: F, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void;
  /** The same update over many parameters at once (one launch on a device); hyper[i] belongs to params[i]. */
  adamwMulti(params: readonly F[], grads: readonly F[], m: readonly F[], v: readonly F[], hyper: readonly AdamwHyper[]): void;
}

export type KernelName = keyof KernelSet<unknown, unknown>;

/** Every kernel by name; the type check below fails to compile when the interface gains a kernel this list lacks. */
export const KERNEL_NAMES = [
  "unary",
  "binary",
  "where",
  "fill",
  "cast",
  "sum",
  "max",
  "logsumexp",
  "matmul",
  "copyStrided",
  "copyToStrided",
  "gather",
  "scatterAdd",
  "indexSelect",
  "indexAdd",
  "softmax",
  "logSoftmax",
  "tokenLogprobs",
  "tokenLogprobsBackward",
  "rmsNorm",
  "rmsNormBackward",
  "rope",
  "attention",
  "attentionBackward",
  "swiglu",
  "swigluBackward",
  "sort",
  "pagedKvWrite",
  "copyBlocks",
  "pagedAttention",
  "sampleTokens",
  "packedWeightSize",
  "packWeight",
  "linearPacked",
  "adamw",
  "adamwMulti",
] as const satisfies readonly KernelName[];
type Unlisted = Exclude<KernelName, (typeof KERNEL_NAMES)[number]>;
/** `true` only when KERNEL_NAMES lists every kernel of the interface (a compile-time check). */
export const KERNEL_NAMES_COMPLETE: [Unlisted] extends [never] ? true : Unlisted = true;

/** Bytes of device memory in use and held, PyTorch's torch.cuda.memory_stats names in camelCase. */
export interface MemoryStats {
  /** Bytes in tensors that are alive now. */
  allocated: number;
  /** Bytes held from the device: allocated plus cached free blocks (host backends: equal to allocated). */
  reserved: number;
  /** Highest `allocated` since start or the last resetPeakMemoryStats(). */
  peakAllocated: number;
  /** Highest `reserved` since start or the last reset. */
  peakReserved: number;
  /** Live allocations (tensors and kernel scratch). */
  allocations: number;
}

/** Host <-> device copies, counted so tests can prove a training step makes none per op. */
export interface TransferStats {
  toHost: number;
  toHostBytes: number;
  toDevice: number;
  toDeviceBytes: number;
}

/** What the tensor layer needs from any backend besides its kernels. */
interface BackendCommon {
  readonly name: BackendName;
  readonly device: DeviceKind;
  /** Math modes matmul and attention accept here. */
  readonly mathModes: readonly MathMode[];
}

/** A host backend: kernels over typed arrays; tensors hold the arrays themselves (zero-copy). */
export interface HostKernels extends KernelSet<FloatArray, Int32Array>, BackendCommon {
  readonly device: "host";
}

/** How a device backend holds memory: a caching allocator plus counted host copies. */
export interface DeviceMemory {
  /** A new, uninitialised buffer of n elements; throws OutOfMemoryError naming `op` when the device is full. */
  alloc(dtype: DeviceDType, n: number, op: string): DeviceBuffer;
  /** Return a buffer to the cache now (later kernels given it throw). Freeing twice is a no-op. */
  free(buf: DeviceBuffer): void;
  /** Host -> device copy of src (same length and element type) into buf. Counted. */
  upload(buf: DeviceBuffer, src: Float32Array | Int32Array): void;
  /** Device -> host copy (a new array). Counted; waits for the kernels that write buf. */
  download(buf: DeviceBuffer): Float32Array | Int32Array;
  stats(): MemoryStats;
  resetPeak(): void;
  /** Give cached free blocks back to the device (PyTorch's empty_cache). */
  emptyCache(): void;
  transfers(): TransferStats;
  resetTransfers(): void;
}

/** A device backend: kernels over DeviceBuffer handles, and the memory they live in. */
export interface DeviceKernels extends KernelSet<DeviceBuffer, DeviceBuffer>, BackendCommon {
  readonly device: Exclude<DeviceKind, "host">;
  readonly memory: DeviceMemory;
  /** One line for `nexus info` and the auto-selection notice (device name, memory, driver). */
  describe(): string;
}

export type AnyKernels = HostKernels | DeviceKernels;

/** The kernels as the op layer sees them: it hands every backend only buffers of that backend's device. */
export type Buf = HostArray | DeviceBuffer;
export type OpKernels = KernelSet<Buf, Buf> & BackendCommon & { readonly memory?: DeviceMemory };

/** Legacy name: the host kernel table. */
export type Kernels = HostKernels;
