// Titans neural long-term memory (Behrouz, Zhong, Mirrokni, "Learning to Memorize at Test Time", 2501.00663):
// a 2-layer MLP memory M(k) = W2·silu(W1·k) with explicit per-sequence weights, written at test time by
// surprise (the closed-form gradient of ||M(k_t) − v_t||²) with momentum η_t, step size θ_t and forgetting α_t,
// in chunks whose gradients are all taken at the chunk-start weights (the paper's parallel form, §3.2).
// Also: NeuralMemory (projections + gates) and TitansCausalLM (memory-as-gate after one decoder layer).
// Differs from the paper: no 1-D depthwise convs, no persistent memory tokens, MAG gates into the full causal
// attention stack (no sliding window); tokens read the memory as it was at their chunk's start (causal, as
// lucidrains/titans-pytorch); TitansCausalLM does not decode with a KV cache. Two guards against divergence of the
// inner loop (both on by default in NeuralMemory, off in the bare memoryScan, which is the paper's update exactly):
// - inputNorm: x is RMS-normalised before the projections (the paper's memory reads a pre-normed residual stream;
//   lucidrains' store_norm). Otherwise v = silu(x W_V) and the gates scale with the input: on raw hidden states
//   (norm ~ 100) the errors, the W2 step and then the W1 curvature blow up, and η, α saturate at 0 or 1.
// - boundedStep: a chunk's gradients are all taken at its start weights and summed (§3.2), so C near-collinear
//   keys act as one step C·θ/(1 − η) times larger; once that step times the curvature passes 2 the memory
//   diverges (NaN within 100-200 tokens). The chunk's θ_t are scaled by ρ = 1 / max(1, Σ_i θ_i u_i L_i), L_i the
//   largest Gauss-Newton curvature of token i's loss (curvatureBound): ρ = 1 (the paper's update, bit for bit)
//   unless the chunk's step would overshoot the minimum of its local quadratic model along its stiffest direction.

import type { ModelConfig } from "../io/hf_config.js";
import { Linear, RMSNorm } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import type { Rng } from "../nn/rng.js";
import {
  add,
  concat,
  div,
  expand,
  fromArray,
  linear,
  matmul,
  maximum,
  mean,
  mul,
  ones,
  reshape,
  rsqrt,
  shapeStr,
  sigmoid,
  silu,
  slice,
  sqrt,
  sub,
  sum,
  type Tensor,
  unsqueeze,
  zeros,
} from "../tensor/index.js";
import { CausalLM, type CausalLMOutput } from "./causal_lm.js";
import type { DecoderInputs } from "./decoder.js";
import { defaultPositionIds, ropeCosSin } from "./rope.js";

export class TitansError extends Error {
  override name = "TitansError";
}

/** Memory weights, one copy per sequence: w1 [B, Dm, Dk], w2 [B, Dv, Dm]. */
export interface MemoryWeights {
  w1: Tensor;
  w2: Tensor;
}

/** Weights plus the momentum ("past surprise") S, same shapes. */
export interface MemoryState extends MemoryWeights {
  s1: Tensor;
  s2: Tensor;
}

/** Per-token gates [B, T]: step size θ > 0, surprise decay η ∈ [0, 1), forgetting α ∈ [0, 1]. */
export interface MemoryGates {
  theta: Tensor;
  eta: Tensor;
  alpha: Tensor;
}

/** ℓ2-normalise over the last axis. */
function l2norm(x: Tensor, eps = 1e-6): Tensor {
  return mul(x, rsqrt(add(sum(mul(x, x), -1, true), eps)));
}

/** silu'(z) = σ(z)·(1 + z·(1 − σ(z))), in tensor ops so it stays differentiable. */
function siluGrad(z: Tensor): Tensor {
  const s = sigmoid(z);
  return mul(s, add(mul(z, sub(1, s)), 1));
}

/** Retrieval without update: y = W2·silu(W1·k). k [B, T, Dk] → [B, T, Dv]. */
export function memoryForward(w: MemoryWeights, k: Tensor): Tensor {
  const h = silu(matmul(k, w.w1, { transB: true })); // (B, T, Dk) @ (B, Dk, Dm) -> (B, T, Dm)
  return matmul(h, w.w2, { transB: true }); // (B, T, Dm) @ (B, Dm, Dv) -> (B, T, Dv)
}

/** The pieces of the per-token gradient at weights w: ℓ_t = ||e_t||², dy = 2e, dz = (W2ᵀ dy) ⊙ silu'(z). */
function lossPieces(w: MemoryWeights, k: Tensor, v: Tensor) {
  const z = matmul(k, w.w1, { transB: true }); // (B, T, Dm)
  const h = silu(z);
  const e = sub(matmul(h, w.w2, { transB: true }), v); // (B, T, Dv)
  const dy = mul(e, 2);
  const sz = siluGrad(z);
  const dz = mul(matmul(dy, w.w2), sz); // (B, T, Dv) @ (B, Dv, Dm) -> (B, T, Dm)
  return { loss: sum(mul(e, e), -1), h, dy, dz, sz };
}

const sqNorm = (x: Tensor) => sum(mul(x, x), -1); // [B, T, D] -> [B, T]

/**
 * Per token, an upper bound L_t ≥ λ_max of the Gauss-Newton Hessian 2JᵀJ of ℓ_t w.r.t. (W1, W2), J = ∂M(k_t)/∂(W1, W2):
 * JJᵀ = ||h||² I + ||k||² A Aᵀ with A = W2 diag(silu'(z)), so λ_max ≤ 2(||h||² + ||k||² ||A||²_F). [B, T].
 * A chunk's summed update Σ_i w_i ∇ℓ_i has curvature ≤ Σ_i w_i L_i, with equality when the tokens are collinear.
 */
function curvatureBound(w2: Tensor, k: Tensor, h: Tensor, sz: Tensor): Tensor {
  const colSq = unsqueeze(sum(mul(w2, w2), 1), 1); // ||W2[:, m]||²: (B, Dv, Dm) -> (B, 1, Dm)
  const aSq = sum(mul(mul(sz, sz), colSq), -1); // ||A||²_F: (B, T)
  return mul(add(sqNorm(h), mul(sqNorm(k), aSq)), 2);
}

/** Associative loss ℓ(M; x_t) = ||M(k_t) − v_t||² per token: [B, T]. */
export function memoryLoss(w: MemoryWeights, k: Tensor, v: Tensor): Tensor {
  return lossPieces(w, k, v).loss;
}

/**
 * Closed-form per-token surprise ∇ℓ w.r.t. the memory weights, materialised (outer products):
 * g1 [B, T, Dm, Dk] = dz kᵀ, g2 [B, T, Dv, Dm] = dy hᵀ. The chunked update never builds these.
 */
export function memoryGrad(w: MemoryWeights, k: Tensor, v: Tensor): { loss: Tensor; g1: Tensor; g2: Tensor } {
  const { loss, h, dy, dz } = lossPieces(w, k, v);
  const g1 = mul(unsqueeze(dz, -1), unsqueeze(k, -2)); // (B, T, Dm, 1) * (B, T, 1, Dk)
  const g2 = mul(unsqueeze(dy, -1), unsqueeze(h, -2)); // (B, T, Dv, 1) * (B, T, 1, Dm)
  return { loss, g1, g2 };
}

export interface ScanInputs {
  /** Keys [B, T, Dk]. */
  k: Tensor;
  /** Values [B, T, Dv]. */
  v: Tensor;
  /** Queries [B, T, Dk] to retrieve with (each at its chunk-start weights); omitted: no retrieval. */
  q?: Tensor | null;
}

export interface ScanOptions {
  /**
   * Scale each chunk's θ by ρ = 1 / max(1, Σ_i θ_i u_i L_i) so that its step cannot overshoot (see the header).
   * Default false: the paper's update exactly.
   */
  boundedStep?: boolean;
}

export interface ScanResult {
  /** Memory after the last token. */
  state: MemoryState;
  /** ℓ(M_chunkstart; x_t) per token, before the update that uses it [B, T]. */
  loss: Tensor;
  /** ||∇ℓ(M_chunkstart; x_t)||_F per token [B, T] (momentary surprise). */
  gradNorm: Tensor;
  /** M_chunkstart(q_t) [B, T, Dv] when queries were given. */
  retrieved: Tensor | null;
  /** Per token, the step scale ρ of its chunk (all 1 without boundedStep, or while the bound does not bind) [B, T]. */
  stepScale: Tensor;
}

const col = (x: Tensor, j: number) => slice(x, 1, j, j + 1); // [B, C] -> [B, 1]
const bcast = (x: Tensor) => unsqueeze(x, -1); // [B, 1] -> [B, 1, 1] against [B, R, C] weights

/**
 * Run the memory over a sequence: S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t'}; x_t), M_t = (1 − α_t) M_{t−1} + S_t,
 * with t' the start of t's chunk. Within a chunk of C tokens the scan is folded into per-token coefficients
 *   M_C = b_0 M_0 + η_1 u_1 S_0 − Σ_i θ_i u_i G_i,   S_C = a_0 S_0 − Σ_i θ_i a_i G_i,
 *   b_i = Π_{j>i}(1 − α_j), a_i = Π_{j>i} η_j, u_i = b_i + η_{i+1} u_{i+1}  (u_C = b_C = a_C = 1),
 * so Σ_i w_i G_i is two matmuls (dyᵀ·diag(w)·H, dzᵀ·diag(w)·K): no per-token weight copies. chunkSize 1 is
 * the sequential recurrence exactly. Everything is differentiable (outer-loop training of projections/gates).
 */
export function memoryScan(
  state0: MemoryState,
  inputs: ScanInputs,
  gates: MemoryGates,
  chunkSize: number,
  opts: ScanOptions = {},
): ScanResult {
  const { k, v } = inputs;
  const q = inputs.q ?? null;
  const [b, t] = k.shape;
  if (!Number.isInteger(chunkSize) || chunkSize < 1)
    throw new TitansError(`[memoryScan] chunkSize must be an integer >= 1, got ${chunkSize}`);
  if (k.ndim !== 3 || v.ndim !== 3 || v.shape[0] !== b || v.shape[1] !== t) {
    throw new TitansError(`[memoryScan] k ${shapeStr(k.shape)} and v ${shapeStr(v.shape)} must be [B, T, *] with the same B, T`);
  }
  for (const [name, g] of Object.entries(gates) as [string, Tensor][]) {
    if (g.ndim !== 2 || g.shape[0] !== b || g.shape[1] !== t)
      throw new TitansError(`[memoryScan] gate ${name} ${shapeStr(g.shape)} must be [${b}, ${t}]`);
  }
  let { w1, w2, s1, s2 } = state0;
  const losses: Tensor[] = [];
  const norms: Tensor[] = [];
  const reads: Tensor[] = [];
  const scales: Tensor[] = [];
  const one = ones([b, 1], k.dtype);
  for (let c0 = 0; c0 < t; c0 += chunkSize) {
    const c1 = Math.min(t, c0 + chunkSize);
    const n = c1 - c0;
    const kc = slice(k, 1, c0, c1);
    const { loss, h, dy, dz, sz } = lossPieces({ w1, w2 }, kc, slice(v, 1, c0, c1));
    losses.push(loss);
    // ||dy hᵀ||² + ||dz kᵀ||² = |dy|²|h|² + |dz|²|k|² (outer products)
    norms.push(add(mul(sqNorm(dy), sqNorm(h)), mul(sqNorm(dz), sqNorm(kc))));
    if (q !== null) reads.push(memoryForward({ w1, w2 }, slice(q, 1, c0, c1)));
    const th = slice(gates.theta, 1, c0, c1);
    const et = slice(gates.eta, 1, c0, c1);
    const al = slice(gates.alpha, 1, c0, c1);
    // backward recursion over the chunk for the coefficients (index j = i − 1, 0-based)
    const u: Tensor[] = new Array(n);
    const a: Tensor[] = new Array(n);
    let bj = one;
    u[n - 1] = one;
    a[n - 1] = one;
    for (let j = n - 2; j >= 0; j--) {
      bj = mul(sub(1, col(al, j + 1)), bj);
      u[j] = add(bj, mul(col(et, j + 1), u[j + 1]));
      a[j] = mul(col(et, j + 1), a[j + 1]);
    }
    const b0 = mul(sub(1, col(al, 0)), bj);
    const cS = mul(col(et, 0), u[0]); // S_0's weight in M_C
    const a0 = mul(col(et, 0), a[0]); // S_0's weight in S_C
    let wM = unsqueeze(mul(th, concat(u, 1)), -1); // (B, C, 1)
    let wS = unsqueeze(mul(th, concat(a, 1)), -1);
    let rho = one;
    if (opts.boundedStep) {
      // the chunk's effective step times its curvature bound; scale the chunk's θ so that it is at most 1
      const stiff = sum(mul(reshape(wM, [b, n]), curvatureBound(w2, kc, h, sz)), -1, true); // (B, 1)
      rho = div(1, maximum(stiff, 1));
      wM = mul(wM, bcast(rho));
      wS = mul(wS, bcast(rho));
    }
    scales.push(expand(rho, [b, n]));
    const g1 = (w: Tensor) => matmul(mul(dz, w), kc, { transA: true }); // Σ w_i dz_i k_iᵀ: (B, Dm, Dk)
    const g2 = (w: Tensor) => matmul(mul(dy, w), h, { transA: true }); // Σ w_i dy_i h_iᵀ: (B, Dv, Dm)
    const nw1 = sub(add(mul(w1, bcast(b0)), mul(s1, bcast(cS))), g1(wM));
    const nw2 = sub(add(mul(w2, bcast(b0)), mul(s2, bcast(cS))), g2(wM));
    s1 = sub(mul(s1, bcast(a0)), g1(wS));
    s2 = sub(mul(s2, bcast(a0)), g2(wS));
    w1 = nw1;
    w2 = nw2;
  }
  const cat = (xs: Tensor[]) => (xs.length === 1 ? xs[0] : concat(xs, 1));
  return {
    state: { w1, w2, s1, s2 },
    loss: t === 0 ? zeros([b, 0], k.dtype) : cat(losses),
    gradNorm: t === 0 ? zeros([b, 0], k.dtype) : sqrt(cat(norms)),
    retrieved: q === null ? null : t === 0 ? zeros([b, 0, w2.shape[1]], k.dtype) : cat(reads),
    stepScale: t === 0 ? zeros([b, 0], k.dtype) : cat(scales),
  };
}

// ---- module ------------------------------------------------------------------------------------------

export interface NeuralMemoryConfig {
  /** Input width D (the model's hidden size). */
  dim: number;
  /** Key/query width Dk. */
  keyDim: number;
  /** Value (and retrieval) width Dv. */
  valueDim: number;
  /** Hidden width Dm of the 2-layer memory MLP. */
  memoryHidden: number;
  /** Tokens per chunk whose gradients share the chunk-start weights (1 = sequential). */
  chunkSize: number;
  /** θ_t = maxLr · σ(linear(x_t)); without boundedStep the update is stable roughly while θ·memoryHidden·chunk ≲ 1. */
  maxLr: number;
  /** Initial gate biases: η ≈ σ(etaBias), α ≈ σ(alphaBias). */
  etaBias: number;
  alphaBias: number;
  /** RMS-normalise x before the projections and gates, so the memory does not depend on the input's scale. */
  inputNorm: boolean;
  /** Scale a chunk's θ down when its step would overshoot (memoryScan's boundedStep); false: the paper's update. */
  boundedStep: boolean;
}

export const NEURAL_MEMORY_DEFAULTS: Readonly<Omit<NeuralMemoryConfig, "dim">> = Object.freeze({
  keyDim: 32,
  valueDim: 32,
  memoryHidden: 32,
  chunkSize: 16,
  maxLr: 0.05,
  etaBias: 0,
  alphaBias: -5,
  inputNorm: true,
  boundedStep: true,
});

/** Merge over the defaults, reject unknown keys, check values. */
export function resolveNeuralMemoryConfig(partial: Partial<NeuralMemoryConfig> & { dim: number }): NeuralMemoryConfig {
  const known = new Set(["dim", ...Object.keys(NEURAL_MEMORY_DEFAULTS)]);
  for (const key of Object.keys(partial)) if (!known.has(key)) throw new TitansError(`[NeuralMemory] unknown config key '${key}'`);
  const cfg = { ...NEURAL_MEMORY_DEFAULTS, ...partial } as NeuralMemoryConfig;
  for (const key of ["dim", "keyDim", "valueDim", "memoryHidden", "chunkSize"] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] < 1)
      throw new TitansError(`[NeuralMemory] ${key} must be an integer >= 1, got ${cfg[key]}`);
  }
  if (!(cfg.maxLr > 0)) throw new TitansError(`[NeuralMemory] maxLr must be > 0, got ${cfg.maxLr}`);
  for (const key of ["inputNorm", "boundedStep"] as const) {
    if (typeof cfg[key] !== "boolean") throw new TitansError(`[NeuralMemory] ${key} must be true or false, got ${cfg[key]}`);
  }
  return cfg;
}

export interface MemoryRunOptions {
  /** Start from this state (else the learned initial weights, zero momentum). */
  state?: MemoryState | null;
  /** Fixed gates [B, T] instead of the learned ones (tests, ablations). */
  gates?: Partial<MemoryGates> | null;
  /** [B, T] 1 real / 0 pad: pads get θ = 0, η = 1, α = 0 (a no-op while momentum is 0, i.e. left padding). */
  mask?: Tensor | null;
  chunkSize?: number;
}

export interface MemoryRun extends ScanResult {
  gates: MemoryGates;
}

/** Projections W_K, W_V, W_Q, the gate projections and the learned initial memory M_0 (outer-loop parameters). */
export class NeuralMemory extends Module {
  readonly wK: Linear;
  readonly wV: Linear;
  readonly wQ: Linear;
  readonly thetaProj: Linear;
  readonly etaProj: Linear;
  readonly alphaProj: Linear;
  readonly w1Init: Tensor;
  readonly w2Init: Tensor;

  constructor(
    readonly config: NeuralMemoryConfig,
    opts: { rng?: Rng } = {},
  ) {
    super();
    const { dim: d, keyDim: dk, valueDim: dv, memoryHidden: dm } = config;
    const rng = opts.rng;
    const init = { rng, std: 1 / Math.sqrt(d) };
    this.wK = this.registerModule("w_k", new Linear(d, dk, init));
    this.wV = this.registerModule("w_v", new Linear(d, dv, init));
    this.wQ = this.registerModule("w_q", new Linear(d, dk, init));
    // gates start near their bias values (small weights), so an untrained memory behaves like fixed gates
    const gateInit = { rng, std: 0.02, bias: true };
    this.thetaProj = this.registerModule("theta_proj", new Linear(d, 1, gateInit));
    this.etaProj = this.registerModule("eta_proj", new Linear(d, 1, gateInit));
    this.alphaProj = this.registerModule("alpha_proj", new Linear(d, 1, gateInit));
    this.etaProj.bias?.copyFrom(new Float32Array(1).fill(config.etaBias));
    this.alphaProj.bias?.copyFrom(new Float32Array(1).fill(config.alphaBias));
    const w1a = new Float32Array(dm * dk);
    const w2a = new Float32Array(dv * dm);
    rng?.fillNormal(w1a, 0, 1); // keys are unit vectors: pre-activations ~ N(0, 1)
    rng?.fillNormal(w2a, 0, 1 / Math.sqrt(dm));
    const w1 = fromArray(w1a, [dm, dk]);
    const w2 = fromArray(w2a, [dv, dm]);
    this.w1Init = this.registerParameter("w1_init", w1);
    this.w2Init = this.registerParameter("w2_init", w2);
  }

  /** M_0 for a batch of b sequences (the learned init broadcast), momentum 0. */
  initialState(b: number): MemoryState {
    const { w1Init: w1, w2Init: w2 } = this;
    const rep = (w: Tensor) => expand(unsqueeze(w, 0), [b, ...w.shape]); // (R, C) -> (B, R, C)
    return { w1: rep(w1), w2: rep(w2), s1: zeros([b, ...w1.shape], w1.dtype), s2: zeros([b, ...w2.shape], w2.dtype) };
  }

  /** x / rms(x) over the last axis when inputNorm is set (parameter-free: a learned scale folds into the projections). */
  normalizeInput(x: Tensor): Tensor {
    return this.config.inputNorm ? mul(x, rsqrt(add(mean(mul(x, x), -1, true), 1e-6))) : x;
  }

  /** k, q = ℓ2norm(silu(x̂ W)), v = silu(x̂ W_V), x̂ the (normalised) input [B, T, D]. */
  project(x: Tensor): { k: Tensor; v: Tensor; q: Tensor } {
    const xn = this.normalizeInput(x);
    return { k: l2norm(silu(this.wK.forward(xn))), v: silu(this.wV.forward(xn)), q: l2norm(silu(this.wQ.forward(xn))) };
  }

  /** Data-dependent gates in (0, 1) (θ in (0, maxLr)) from the (normalised) input x [B, T, D] → each [B, T]. */
  gates(x: Tensor): MemoryGates {
    const xn = this.normalizeInput(x);
    const g = (p: Linear) => sigmoid(reshape(p.forward(xn), x.shape.slice(0, 2))); // (B, T, 1) -> (B, T)
    return { theta: mul(g(this.thetaProj), this.config.maxLr), eta: g(this.etaProj), alpha: g(this.alphaProj) };
  }

  /** Write x's keys/values into the memory and read its queries. */
  forward(x: Tensor, opts: MemoryRunOptions = {}): MemoryRun {
    if (x.ndim !== 3 || x.shape[2] !== this.config.dim) {
      throw new TitansError(`[NeuralMemory] input must be [B, T, ${this.config.dim}], got ${shapeStr(x.shape)}`);
    }
    const { k, v, q } = this.project(x);
    const learned = opts.gates?.theta && opts.gates.eta && opts.gates.alpha ? null : this.gates(x);
    let gates: MemoryGates = {
      theta: opts.gates?.theta ?? (learned as MemoryGates).theta,
      eta: opts.gates?.eta ?? (learned as MemoryGates).eta,
      alpha: opts.gates?.alpha ?? (learned as MemoryGates).alpha,
    };
    const m = opts.mask ?? null;
    if (m !== null) {
      const mf = m.dtype === x.dtype ? m : m.cast(x.dtype);
      gates = { theta: mul(gates.theta, mf), eta: add(mul(gates.eta, mf), sub(1, mf)), alpha: mul(gates.alpha, mf) };
    }
    const state = opts.state ?? this.initialState(x.shape[0]);
    const res = memoryScan(state, { k, v, q }, gates, opts.chunkSize ?? this.config.chunkSize, {
      boundedStep: this.config.boundedStep,
    });
    return { ...res, gates };
  }
}

// ---- memory as gate (MAG) inside a decoder ---------------------------------------------------------------

export interface TitansLayerConfig {
  /** Insert the memory branch after this decoder layer (0-based). */
  afterLayer: number;
  /** NeuralMemory settings (dim is the model's hidden size). */
  memory?: Partial<Omit<NeuralMemoryConfig, "dim">>;
}

/**
 * MAG block: h ← h + W_o( RMSNorm(M*(q)) ⊙ σ(W_g RMSNorm(h)) ), the memory read from RMSNorm(h).
 * W_o starts at zero, so a fresh TitansCausalLM computes exactly its base CausalLM.
 */
export class MemoryGateBlock extends Module {
  readonly norm: RMSNorm;
  readonly memory: NeuralMemory;
  readonly memNorm: RMSNorm;
  readonly gate: Linear;
  readonly outProj: Linear;

  constructor(dim: number, eps: number, mem: NeuralMemoryConfig, rng?: Rng) {
    super();
    this.norm = this.registerModule("norm", new RMSNorm(dim, eps));
    this.memory = this.registerModule("memory", new NeuralMemory(mem, { rng }));
    this.memNorm = this.registerModule("mem_norm", new RMSNorm(mem.valueDim, eps));
    this.gate = this.registerModule("gate", new Linear(dim, mem.valueDim, { rng, std: 1 / Math.sqrt(dim) }));
    this.outProj = this.registerModule("out_proj", new Linear(mem.valueDim, dim)); // zeros
  }

  forward(h: Tensor, mask: Tensor | null): Tensor {
    const x = this.norm.forward(h);
    const run = this.memory.forward(x, { mask });
    const y = mul(this.memNorm.forward(run.retrieved as Tensor), sigmoid(this.gate.forward(x))); // (B, T, Dv)
    return add(h, this.outProj.forward(y));
  }
}

/** A CausalLM with one MAG memory block inserted after decoder layer `afterLayer` (decoder.ts untouched). */
export class TitansCausalLM extends CausalLM {
  readonly titans: MemoryGateBlock;
  readonly titansConfig: TitansLayerConfig;

  constructor(config: ModelConfig, titans: TitansLayerConfig, opts: { rng?: Rng } = {}) {
    super(config, opts);
    if (!Number.isInteger(titans.afterLayer) || titans.afterLayer < 0 || titans.afterLayer >= config.numHiddenLayers) {
      throw new TitansError(`[TitansCausalLM] afterLayer must be in [0, ${config.numHiddenLayers - 1}], got ${titans.afterLayer}`);
    }
    this.titansConfig = titans;
    const mem = resolveNeuralMemoryConfig({ ...titans.memory, dim: config.hiddenSize });
    this.titans = this.registerModule("titans", new MemoryGateBlock(config.hiddenSize, config.rmsNormEps, mem, opts.rng));
  }

  /** The decoder's forward with the memory block spliced in (no KV cache: the memory state is not cached). */
  override forwardHidden(inputs: DecoderInputs): Tensor {
    const dec = this.model;
    const ids = inputs.inputIds;
    if (inputs.kvCache)
      throw new TitansError("[TitansCausalLM] KV-cache decoding is not supported (the memory state is not cached); run full sequences");
    if (ids.dtype !== "i32" || ids.ndim !== 2)
      throw new TitansError(`[TitansCausalLM] inputIds must be i32 [B, T], got ${ids.dtype} ${shapeStr(ids.shape)}`);
    const [b, t] = ids.shape;
    const mask = inputs.attentionMask ?? null;
    const positions = inputs.positionIds ? (inputs.positionIds.hostData() as Int32Array) : defaultPositionIds(b, t, 0, mask);
    const keyMask = mask === null ? null : mask.dtype === "f32" ? mask : mask.cast("f32");
    const { cos, sin } = ropeCosSin(this.config, positions, b, t);
    let h = dec.embedTokens.forward(ids); // (B, T, D)
    dec.layers.items.forEach((layer, l) => {
      h = layer.forward(h, cos, sin, keyMask, null, l);
      if (l === this.titansConfig.afterLayer) h = this.titans.forward(h, keyMask);
    });
    return dec.norm.forward(h);
  }

  override forward(inputs: DecoderInputs): CausalLMOutput {
    const hidden = this.forwardHidden(inputs);
    return { logits: linear(hidden, this.lmHeadWeight), hidden };
  }
}
