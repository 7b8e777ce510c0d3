// Types shared by the generation layer's local engine (engine.ts, generate.ts), `nexus serve` and the remote client:
// what a model must offer to generate, and what a finished completion looks like.

import type { ModelConfig } from "../io/hf_config.js";
import type { DecoderInputs } from "../models/decoder.js";
import type { Tensor } from "../tensor/index.js";

/** What generation needs from a model: final hidden states and the output projection (CausalLM fits). */
export interface GenerativeLM {
  readonly config: Pick<ModelConfig, "vocabSize" | "eosTokenId" | "padTokenId" | "numHiddenLayers" | "numKeyValueHeads" | "headDim">;
  /** Final hidden states [B, T, D]; the engine calls it on packed tokens with a paged (attending) KV cache. */
  forwardHidden(inputs: DecoderInputs): Tensor;
  /** [V, D]. */
  readonly lmHeadWeight: Tensor;
}

export type FinishReason = "eos" | "stop" | "length";

export interface Generation {
  promptIds: number[];
  /**
   * Generated ids: up to and including the eos id, or the token that completed a stop string (the text is
   * truncated at the stop string, the ids are not: each id keeps its log-prob).
   */
  completionIds: number[];
  /** log_softmax(logits / temperature)[id] for each completion id (temperature 1 when greedy), before filtering. */
  logprobs: number[];
  finishReason: FinishReason;
  /** The decoded completion (only with a tokenizer). */
  text?: string;
}

export class GenerateError extends Error {
  override name = "GenerateError";
}
