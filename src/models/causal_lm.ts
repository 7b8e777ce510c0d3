// CausalLM: HF `LlamaForCausalLM` / `Qwen2ForCausalLM` — the decoder backbone plus an LM head (tied to
// embed_tokens.weight when `tieWordEmbeddings`, then no `lm_head.weight` parameter exists, as in HF's
// safetensors). Random init (normal(0, initializer_range), norms 1), load and save of HF checkpoint dirs.
// Not here: sampling (src/generate/), scalar heads, LoRA; bf16 compute (weights are widened to f32 on load).

import * as fs from "node:fs";
import { type BackendChoice, setBackend } from "../backend/index.js";
import { expectFolderKind } from "../io/folder_kind.js";
import { type ModelConfig, readHfConfig, writeHfConfig } from "../io/hf_config.js";
import type { WritableTensor } from "../io/safetensors.js";
import { readShardedHeaders, readShardedSafetensors, writeShardedSafetensors } from "../io/sharded.js";
import { Linear } from "../nn/layers.js";
import { Module, type TensorLike } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import { linear, type Tensor } from "../tensor/index.js";
import { type DecoderInputs, DecoderModel } from "./decoder.js";
import { causalLMParameterShapes, checkCheckpointShapes, checkParametersFit } from "./param_shapes.js";

export interface CausalLMOutput {
  /** [B, T, V]. */
  logits: Tensor;
  /** Final (normed) hidden states [B, T, D]. */
  hidden: Tensor;
}

export class CausalLM extends Module {
  readonly model: DecoderModel;
  /** null when tied: the head reuses model.embed_tokens.weight. */
  readonly lmHead: Linear | null;

  constructor(
    readonly config: ModelConfig,
    opts: { rng?: Rng } = {},
  ) {
    super();
    const init = { rng: opts.rng, std: config.initializerRange };
    this.model = this.registerModule("model", new DecoderModel(config, init));
    this.lmHead = config.tieWordEmbeddings ? null : this.registerModule("lm_head", new Linear(config.hiddenSize, config.vocabSize, init));
  }

  /** The [V, D] output projection (the embedding matrix when tied). */
  get lmHeadWeight(): Tensor {
    return this.lmHead?.weight ?? this.model.embedTokens.weight;
  }

  /** Final hidden states [B, T, D] (for value / reward heads). */
  forwardHidden(inputs: DecoderInputs): Tensor {
    return this.model.forward(inputs);
  }

  forward(inputs: DecoderInputs): CausalLMOutput {
    const hidden = this.model.forward(inputs);
    return { logits: linear(hidden, this.lmHeadWeight), hidden }; // (B, T, D) -> (B, T, V)
  }
}

export interface CreateOptions {
  /** Seed of the init Rng (or pass `rng` to continue an existing stream). */
  seed?: number;
  rng?: Rng;
  /** Selects the global backend first (tensors carry no device today). */
  backend?: BackendChoice;
}

/** A randomly initialised model: linear/embedding weights ~ normal(0, initializerRange), biases 0, norms 1. */
export function createCausalLM(config: ModelConfig, opts: CreateOptions = {}): CausalLM {
  if (opts.backend !== undefined) setBackend(opts.backend);
  checkParametersFit(causalLMParameterShapes(config), "config");
  return new CausalLM(config, { rng: opts.rng ?? new Rng(opts.seed ?? 0) });
}

/** Checkpoint keys HF models may carry that are not parameters here. */
function isIgnorableKey(name: string, config: ModelConfig): boolean {
  return name.endsWith(".rotary_emb.inv_freq") || (config.tieWordEmbeddings && name === "lm_head.weight");
}

/**
 * Load an HF checkpoint directory: config.json + model.safetensors (or an index and shards). The config's
 * shapes are checked against the checkpoint's headers and this machine's memory before anything is allocated.
 */
export async function loadCausalLM(dir: string, opts: { backend?: BackendChoice } = {}): Promise<CausalLM> {
  if (opts.backend !== undefined) setBackend(opts.backend);
  expectFolderKind(dir, ["causal-lm"], "loadCausalLM", "a policy");
  const config = readHfConfig(dir);
  const shapes = causalLMParameterShapes(config);
  checkCheckpointShapes(shapes, readShardedHeaders(dir), dir, (name) => isIgnorableKey(name, config));
  checkParametersFit(shapes, dir);
  const model = new CausalLM(config);
  const { tensors } = readShardedSafetensors(dir);
  const state = new Map<string, TensorLike>();
  for (const [name, t] of tensors) if (!isIgnorableKey(name, config)) state.set(name, t);
  model.loadStateDict(state, { strict: true });
  return model;
}

/** Write config.json and model.safetensors (sharded above maxShardBytes) with HF key names, as f32. */
export function saveCausalLM(model: CausalLM, dir: string, opts: { maxShardBytes?: number } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, WritableTensor>();
  for (const [name, t] of model.namedParameters()) {
    tensors.set(name, { dtype: "F32", shape: t.shape, data: Float32Array.from(t.hostData()) });
  }
  writeShardedSafetensors(dir, tensors, { maxShardBytes: opts.maxShardBytes });
  writeHfConfig(dir, { ...model.config, torchDtype: "float32" });
}
