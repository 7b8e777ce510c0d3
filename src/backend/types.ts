// The kernel interface every backend implements: loops over contiguous typed arrays, outputs first.
// Kernels never allocate tensors, track gradients or validate user input: the op layer
// (src/tensor/ops/) owns shapes, broadcasting, autograd and errors, and calls these with checked sizes.
// Float kernels take Float32Array on every backend; `ref` also takes Float64Array (for gradient checks).

export type FloatArray = Float32Array | Float64Array;
export type BackendName = "ref" | "cpu";

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

export interface Kernels {
  readonly name: BackendName;

  /** out[i] = f(x[i]) with optional scalar parameters p0, p1. */
  unary(op: UnaryOp, out: FloatArray, x: FloatArray, p0: number, p1: number): void;
  /** out = a (op) b with broadcasting described by `layout` (out is contiguous over layout.outShape). */
  binary(op: BinaryOp, out: FloatArray, a: FloatArray, b: FloatArray, layout: BroadcastLayout): void;
  /** out[i] = cond[i] != 0 ? a[i] : b[i] (all the same length; the op layer expands first). */
  where(out: FloatArray, cond: FloatArray, a: FloatArray, b: FloatArray): void;

  /** x viewed as [outer, n, inner]; out [outer, inner] = sum over n. */
  sum(out: FloatArray, x: FloatArray, outer: number, n: number, inner: number): void;
  /** Max over n of x [outer, n, inner]; argmax (first maximal index) into idx. */
  max(out: FloatArray, idx: Int32Array, x: FloatArray, outer: number, n: number, inner: number): void;
  /** Stable log(sum(exp(x))) over n of x [outer, n, inner]. */
  logsumexp(out: FloatArray, x: FloatArray, outer: number, n: number, inner: number): void;

  /**
   * Batched GEMM: for each b < batch, C_b = op(A_b) @ op(B_b) (+ C_b when accumulate), where
   * op(A) is [M, K] (stored [K, M] when transA), op(B) is [K, N] (stored [N, K] when transB), C_b [M, N].
   * A_b starts at b * strideA (strideA 0 broadcasts one matrix), likewise B and C.
   */
  matmul(
    c: FloatArray,
    a: FloatArray,
    b: FloatArray,
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
  ): void;

  /** Materialise a strided view: out (contiguous over shape) [i] = x[offset + sum_d idx_d * strides[d]]. */
  copyStrided(
    out: FloatArray | Int32Array,
    x: FloatArray | Int32Array,
    shape: readonly number[],
    strides: readonly number[],
    offset: number,
  ): void;

  /** x [outer, nIn, inner], idx [outer, nIdx, inner] (values in [0, nIn)): out [outer, nIdx, inner] = x[o, idx, i]. */
  gather(out: FloatArray, x: FloatArray, idx: Int32Array, outer: number, nIn: number, nIdx: number, inner: number): void;
  /** out [outer, nOut, inner] += src [outer, nIdx, inner] at rows idx [outer, nIdx, inner]. */
  scatterAdd(out: FloatArray, src: FloatArray, idx: Int32Array, outer: number, nOut: number, nIdx: number, inner: number): void;
  /** Row lookup: out [n, D] = table[ids[i], :] (ids validated in range by the op layer). */
  indexSelect(out: FloatArray, table: FloatArray, ids: Int32Array, n: number, d: number): void;
  /** table [rows, D] += src [n, D] at rows ids (duplicates accumulate). */
  indexAdd(table: FloatArray, src: FloatArray, ids: Int32Array, n: number, d: number): void;

  /** Softmax / log-softmax over the last axis of x [rows, n]. */
  softmax(out: FloatArray, x: FloatArray, rows: number, n: number): void;
  logSoftmax(out: FloatArray, x: FloatArray, rows: number, n: number): void;

  /** out[r] = log_softmax(logits[r, :])[targets[r]], and lse[r] = logsumexp(logits[r, :]); no [rows, V] buffer. */
  tokenLogprobs(out: FloatArray, lse: FloatArray, logits: FloatArray, targets: Int32Array, rows: number, v: number): void;
  /** dlogits[r, j] = dout[r] * (onehot(targets[r])_j - exp(logits[r, j] - lse[r])). */
  tokenLogprobsBackward(
    dlogits: FloatArray,
    dout: FloatArray,
    logits: FloatArray,
    lse: FloatArray,
    targets: Int32Array,
    rows: number,
    v: number,
  ): void;

  /** y = x * rstd * w over rows of length d; rstd[r] = 1 / sqrt(mean(x[r]^2) + eps). */
  rmsNorm(y: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, d: number, eps: number): void;
  /** Gradients of rmsNorm; dw is overwritten (not accumulated). */
  rmsNormBackward(
    dx: FloatArray,
    dw: FloatArray,
    dy: FloatArray,
    x: FloatArray,
    w: FloatArray,
    rstd: FloatArray,
    rows: number,
    d: number,
  ): void;

  /**
   * Rotary embedding, rotate-half convention (HF Llama): x [B, H, T, Dh], cos/sin [B, T, Dh/2].
   * out[..., i] = x_i cos_i - x_{i+Dh/2} sin_i; out[..., i+Dh/2] = x_{i+Dh/2} cos_i + x_i sin_i.
   * inverse = true rotates by -angle (the backward pass).
   */
  rope(
    out: FloatArray,
    x: FloatArray,
    cos: FloatArray,
    sin: FloatArray,
    b: number,
    h: number,
    t: number,
    dh: number,
    inverse: boolean,
  ): void;

  /**
   * Scaled dot-product attention with GQA: q [B, H, T, Dh], k/v [B, Hkv, S, Dh], head h reads kv head
   * h / (H / Hkv). keyMask [B, S] (1 keep, 0 drop) or null. causal: query t sees keys s <= t + (S - T).
   * out [B, H, T, Dh]; lse [B, H, T] = logsumexp of the scaled, masked scores (-Infinity if a row sees no key,
   * in which case out is 0). sCap (default s): k/v are stored [B, Hkv, sCap, Dh] and only the first s key
   * rows of each (batch, kv head) are read (a preallocated KV cache).
   */
  attention(
    out: FloatArray,
    lse: FloatArray,
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    keyMask: FloatArray | null,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
    sCap?: number,
  ): void;
  /** Gradients of attention from the saved out and lse (dq, dk, dv overwritten); k/v dense (sCap = s). */
  attentionBackward(
    dq: FloatArray,
    dk: FloatArray,
    dv: FloatArray,
    dout: FloatArray,
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    lse: FloatArray,
    keyMask: FloatArray | null,
    b: number,
    h: number,
    hkv: number,
    t: number,
    s: number,
    dh: number,
    scale: number,
    causal: boolean,
  ): void;

  /** out = silu(gate) * up. */
  swiglu(out: FloatArray, gate: FloatArray, up: FloatArray): void;
  swigluBackward(dgate: FloatArray, dup: FloatArray, dout: FloatArray, gate: FloatArray, up: FloatArray): void;

  /** Stable sort of x [outer, n, inner] along n; indices are positions in the input. */
  sort(values: FloatArray, indices: Int32Array, x: FloatArray, outer: number, n: number, inner: number, descending: boolean): void;

  // ---- decode (inference only: no gradients; src/generate/'s rollout engine) ----
  // Paged KV cache: per layer, kCache [numBlocks, Hkv, Dh, blockSize] (keys transposed within a block, so a block's
  // scores are blockSize-wide vector FMAs) and vCache [numBlocks, Hkv, blockSize, Dh]; key/value j of a sequence
  // live in block blockTable[j / blockSize] at position j % blockSize. Sizes are flat numbers and block tables flat
  // Int32Arrays, so a device version maps one-to-one.

  /** For each of n new tokens i: position slots[i] (= block * blockSize + row) of the caches gets k/v [n, Hkv, Dh]; slot < 0 skips. */
  pagedKvWrite(
    kCache: FloatArray,
    vCache: FloatArray,
    k: FloatArray,
    v: FloatArray,
    slots: Int32Array,
    n: number,
    hkv: number,
    dh: number,
    blockSize: number,
  ): void;
  /** cache[dst[i]] = cache[src[i]] for i < n, blocks of blockElems elements (copy-on-write of shared blocks). */
  copyBlocks(cache: FloatArray, src: Int32Array, dst: Int32Array, n: number, blockElems: number): void;
  /**
   * Attention of packed query tokens over a paged KV cache, prefill chunks and decode in one call, GQA (head h reads
   * kv head h / (H / Hkv)). q/out [N, H, Dh] token-major; sequence i owns query rows queryStarts[i] ..
   * queryStarts[i + 1] - 1 (queryStarts [numSeqs + 1]), which are its last q_i of contextLens[i] cached keys (written
   * before this call), so its query j sees keys [0, contextLens[i] - q_i + j]. blockTables [numSeqs, maxBlocks].
   */
  pagedAttention(
    out: FloatArray,
    q: FloatArray,
    kCache: FloatArray,
    vCache: FloatArray,
    blockTables: Int32Array,
    contextLens: Int32Array,
    queryStarts: Int32Array,
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
  sampleTokens(
    ids: Int32Array,
    logprobs: FloatArray,
    logits: FloatArray,
    temperature: FloatArray,
    topK: Int32Array,
    topP: FloatArray,
    minP: FloatArray,
    uniform: FloatArray,
    rows: number,
    v: number,
  ): void;
  /** Elements packWeight writes for a [n, k] weight (its layout is the backend's own). */
  packedWeightSize(n: number, k: number): number;
  /** Repack a Linear weight w [n, k] (PyTorch layout) once, for many linearPacked calls while it does not change. */
  packWeight(out: FloatArray, w: FloatArray, n: number, k: number): void;
  /** y [m, n] = x [m, k] W^T with W packed by packWeight. */
  linearPacked(y: FloatArray, x: FloatArray, packed: FloatArray, m: number, n: number, k: number): void;

  /**
   * One AdamW step in place (decoupled weight decay, PyTorch semantics):
   * p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps).
   */
  adamw(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;
}
