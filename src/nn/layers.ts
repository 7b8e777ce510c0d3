// Basic layers over the engine's ops: Linear (PyTorch [out, in] weight), Embedding, RMSNorm.
// Initialisation follows HF's `_init_weights` for decoder LMs: weights ~ normal(0, std) drawn from a seeded
// Rng, biases 0, norm weights 1. Without an rng, weights are zeros (to be filled by loadStateDict).
// Not here: dropout, LayerNorm, LoRA (src/nn/lora.ts).

import {
  add,
  embedding,
  fromArray,
  linear,
  linearPacked,
  ones,
  packedGroupFor,
  rmsNorm,
  slice,
  type Tensor,
  zeros,
} from "../tensor/index.js";
import { Module } from "./module.js";
import type { Rng } from "./rng.js";

export interface InitOptions {
  /** Draw weights from this generator; omitted: zeros (the module will be loaded). */
  rng?: Rng;
  /** Std of the normal init (HF `initializer_range`, default 0.02). */
  std?: number;
}

function normalInit(shape: readonly number[], init: InitOptions): Tensor {
  if (!init.rng) return zeros(shape);
  // drawn on the host (the same values on every backend), then one upload on a device
  const a = new Float32Array(shape.reduce((n, d) => n * d, 1));
  init.rng.fillNormal(a, 0, init.std ?? 0.02);
  return fromArray(a, shape);
}

export interface LinearOptions extends InitOptions {
  bias?: boolean;
}

/** y = x W^T + b with W [outF, inF]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    this.weight = this.registerParameter("weight", normalInit([outFeatures, inFeatures], opts));
    this.bias = opts.bias ? this.registerParameter("bias", zeros([outFeatures])) : null;
  }

  /** x [..., inF] → [..., outF]. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/**
 * x through several Linears that share it (q/k/v, gate/up): one GEMM when the rollout engine packed their weights
 * together (decode, no gradients, no adapter on them), else each layer's own forward. Same values either way.
 */
export function linearMany(x: Tensor, layers: readonly Linear[]): Tensor[] {
  const plain = layers.every((l) => (l as { forward: unknown }).forward === Linear.prototype.forward);
  const group = plain ? packedGroupFor(layers.map((l) => l.weight)) : undefined;
  if (group === undefined) return layers.map((l) => l.forward(x));
  const y = linearPacked(x, group.packed); // (..., sum of outF)
  let at = 0;
  return layers.map((l) => {
    const part = slice(y, -1, at, at + l.outFeatures);
    at += l.outFeatures;
    return l.bias ? add(part, l.bias) : part;
  });
}

/** Row lookup table [numEmbeddings, dim]. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: InitOptions = {},
  ) {
    super();
    this.weight = this.registerParameter("weight", normalInit([numEmbeddings, dim], opts));
  }

  /** ids [...] (i32) → [..., dim]. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** x * rsqrt(mean(x^2) + eps) * weight over the last axis (Llama's RMSNorm, weight init 1). */
export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = this.registerParameter("weight", ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
