// RoPE angles and position ids as transformers computes them for Llama/Qwen2: inv_freq from the config
// (float32, llama3 rescaling included), freqs = position * inv_freq rounded to float32, cos/sin of those.
// Positions default to cumsum(mask) - 1 clamped at 0 (HF generate's rule for padded batches).
// Not here: the rotation itself (the fused `rope` op) or dynamic/NTK scaling.

import { type ModelConfig, ropeInverseFrequencies } from "../io/hf_config.js";
import { fromArray, type Tensor, TensorError } from "../tensor/index.js";

/** cos and sin [B, T, Dh/2] for positions [B, T]. */
export function ropeCosSin(cfg: Pick<ModelConfig, "headDim" | "ropeTheta" | "rope">, positions: Int32Array, b: number, t: number) {
  const invFreq = ropeInverseFrequencies(cfg);
  const half = invFreq.length;
  const cos = new Float32Array(b * t * half);
  const sin = new Float32Array(b * t * half);
  for (let r = 0; r < b * t; r++) {
    const pos = positions[r];
    for (let i = 0; i < half; i++) {
      const f = Math.fround(pos * invFreq[i]);
      cos[r * half + i] = Math.cos(f);
      sin[r * half + i] = Math.sin(f);
    }
  }
  return { cos: fromArray(cos, [b, t, half]), sin: fromArray(sin, [b, t, half]) };
}

/**
 * Position ids [B, T] for the last T of S columns of a mask [B, S] (S = cached + new tokens):
 * cumsum(mask) - 1 clamped at 0; without a mask, past, past + 1, ... .
 */
export function defaultPositionIds(b: number, t: number, past: number, mask: Tensor | null): Int32Array {
  const out = new Int32Array(b * t);
  if (mask === null) {
    for (let r = 0; r < b; r++) for (let j = 0; j < t; j++) out[r * t + j] = past + j;
    return out;
  }
  const s = mask.shape[1];
  if (mask.ndim !== 2 || mask.shape[0] !== b || s !== past + t) {
    throw new TensorError(`[positions] attention mask [${mask.shape.join(", ")}] must be [${b}, ${past + t}] (cached + new tokens)`);
  }
  const md = mask.hostData(); // the batch's host mask (no transfer on a device for host-made masks)
  for (let r = 0; r < b; r++) {
    let c = 0;
    for (let j = 0; j < s; j++) {
      c += md[r * s + j] !== 0 ? 1 : 0;
      if (j >= past) out[r * t + (j - past)] = Math.max(0, c - 1);
    }
  }
  return out;
}
