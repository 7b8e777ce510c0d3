// Tokenized examples → padded batch tensors, and per-token log-probs of a causal LM aligned with the
// tokens they score. Shared by trainers, reward scorers and agents (anything that scores sequences with a model).

import type { CausalLM } from "../models/causal_lm.js";
import { concat, fromArray, slice, type Tensor, tokenLogprobs, zeros } from "../tensor/index.js";

/** One tokenized sequence; lossMask[t] = 1 where token t counts (completion / assistant tokens). */
export interface Example {
  ids: number[];
  lossMask: number[];
}

export interface Batch {
  /** [B, T] i32, right-padded with padId. */
  inputIds: Tensor;
  /** [B, T] f32: 1 for real tokens. */
  attentionMask: Tensor;
  /** [B, T] f32: 1 where a token's log-prob counts. */
  lossMask: Tensor;
  /** Real tokens per row. */
  lengths: number[];
}

/** Right-pad examples into one batch (right padding keeps position ids 0..len-1 for every row). */
export function collate(examples: readonly Example[], padId: number): Batch {
  const b = examples.length;
  const t = Math.max(1, ...examples.map((e) => e.ids.length));
  const ids = new Int32Array(b * t).fill(padId);
  const attn = new Float32Array(b * t);
  const loss = new Float32Array(b * t);
  examples.forEach((e, i) => {
    for (let j = 0; j < e.ids.length; j++) {
      ids[i * t + j] = e.ids[j];
      attn[i * t + j] = 1;
      loss[i * t + j] = e.lossMask[j] ?? 0;
    }
  });
  return {
    inputIds: fromArray(ids, [b, t]),
    attentionMask: fromArray(attn, [b, t]),
    lossMask: fromArray(loss, [b, t]),
    lengths: examples.map((e) => e.ids.length),
  };
}

/**
 * logps[b, t] = log p(ids[b, t] | ids[b, < t]) for t >= 1 and 0 at t = 0, so `lossMask` (aligned with the
 * tokens) selects them directly. The shifted targets avoid slicing the [B, T, V] logits.
 */
export function alignedTokenLogprobs(logits: Tensor, inputIds: Tensor): Tensor {
  const [b, t] = inputIds.shape;
  const src = inputIds.hostData(); // the batch's host ids (no transfer on a device)
  const tgt = new Int32Array(b * t);
  for (let i = 0; i < b; i++) for (let j = 0; j + 1 < t; j++) tgt[i * t + j] = src[i * t + j + 1];
  const lp = tokenLogprobs(logits, fromArray(tgt, [b, t])); // (B, T): position j scores token j + 1
  if (t === 1) return zeros([b, 1], lp.dtype);
  return concat([zeros([b, 1], lp.dtype), slice(lp, 1, 0, t - 1)], 1);
}

/** Forward a causal LM on a batch and return aligned per-token log-probs [B, T]. */
export function batchLogprobs(model: CausalLM, batch: Batch): Tensor {
  const { logits } = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
  return alignedTokenLogprobs(logits, batch.inputIds);
}
