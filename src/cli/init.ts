// `nexus init`: write a randomly initialised model folder (config.json + model.safetensors, HF layout) with its
// tokenizer (tokenizer.json + tokenizer_config.json) next to it, from a frozen preset table. The default tokenizer
// is character level (printable ASCII + newline, <unk> for other characters, a simple chat template);
// `--tokenizer DIR` copies an HF tokenizer instead (a note says when it has no chat template).
// Not here: downloading checkpoints or training (other subcommands).

import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { CharTokenizer } from "../io/char_tokenizer.js";
import { type ModelConfig, parseHfConfig } from "../io/hf_config.js";
import { loadTokenizer, saveTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { createCausalLM, saveCausalLM } from "../models/causal_lm.js";
import { prepareOutputDir } from "../train/output_dir.js";
import { cliErr, cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

export class InitError extends Error {
  override name = "InitError";
}

export interface ModelPreset {
  /** One line for --help. */
  describe: string;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  intermediateSize: number;
  tieWordEmbeddings: boolean;
  /** Fixed vocabulary size; null: the tokenizer's size rounded up to a multiple of 64. */
  vocabSize: number | null;
  maxPositionEmbeddings: number;
  ropeTheta: number;
}

export const MODEL_PRESETS = Object.freeze({
  tiny: Object.freeze({
    describe: "d 64, 2 layers, 4 heads / 2 KV heads, ffn 176 (tests, smoke runs)",
    hiddenSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    intermediateSize: 176,
    tieWordEmbeddings: true,
    vocabSize: null,
    maxPositionEmbeddings: 1024,
    ropeTheta: 10000,
  }),
  small: Object.freeze({
    describe: "d 256, 4 layers, 8 heads / 8 KV heads, ffn 768 (the lab's default; W1 bench shape)",
    hiddenSize: 256,
    numHiddenLayers: 4,
    numAttentionHeads: 8,
    numKeyValueHeads: 8,
    intermediateSize: 768,
    tieWordEmbeddings: false,
    vocabSize: null,
    maxPositionEmbeddings: 2048,
    ropeTheta: 10000,
  }),
  "smollm-135m": Object.freeze({
    describe: "SmolLM2-135M shape: vocab 49152, d 576, 30 layers, 9 heads / 3 KV heads, ffn 1536, tied",
    hiddenSize: 576,
    numHiddenLayers: 30,
    numAttentionHeads: 9,
    numKeyValueHeads: 3,
    intermediateSize: 1536,
    tieWordEmbeddings: true,
    vocabSize: 49152,
    maxPositionEmbeddings: 8192,
    ropeTheta: 100000,
  }),
} satisfies Record<string, ModelPreset>);

export type PresetName = keyof typeof MODEL_PRESETS;

/** Printable ASCII (space to ~) and newline: the character set of the default tokenizer. */
export const CHAR_TOKENIZER_CHARS = `${Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")}\n`;

/**
 * The char tokenizer's chat template: "role: content" messages on their own lines, an assistant turn ended by the
 * EOS token (so a model learns to stop), "assistant: " as the generation prompt. Uses only characters it encodes,
 * and renders each conversation as a prefix of its continuation (so assistant-only loss masks are exact).
 */
export const CHAR_CHAT_TEMPLATE =
  "{%- for message in messages %}{%- if not loop.first %}{{ '\\n' }}{%- endif %}{{ message['role'] + ': ' + message['content'] }}" +
  "{%- if message['role'] == 'assistant' %}{{ eos_token }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{%- if messages %}{{ '\\n' }}{%- endif %}{{ 'assistant: ' }}{%- endif %}";

/** `nexus init`'s tokenizer: printable ASCII + newline, `<unk>` (last id) for anything else, a chat template. */
export function defaultCharTokenizer(): CharTokenizer {
  return new CharTokenizer(CHAR_TOKENIZER_CHARS, { unkToken: "<unk>", chatTemplate: CHAR_CHAT_TEMPLATE });
}

export interface InitOptions {
  preset: string;
  output: string;
  seed?: number;
  /** "char" (default) or a folder with tokenizer.json. */
  tokenizer?: string;
  modelType?: "llama" | "qwen2";
  /** Replace a model (or run) already in `output`; without it such a folder is refused. */
  overwrite?: boolean;
}

/** The model config of a preset for a tokenizer (ids of special tokens taken from it). */
export function presetConfig(name: string, tok: Tokenizer, modelType: "llama" | "qwen2" = "llama"): ModelConfig {
  const p = (MODEL_PRESETS as Record<string, ModelPreset>)[name];
  if (p === undefined) throw new InitError(`[init] unknown preset "${name}" (known: ${Object.keys(MODEL_PRESETS).join(", ")})`);
  const vocab = p.vocabSize ?? Math.ceil(tok.vocabSize / 64) * 64;
  if (tok.vocabSize > vocab) {
    throw new InitError(`[init] the tokenizer has ${tok.vocabSize} ids, more than preset "${name}"'s vocabulary of ${vocab}`);
  }
  return parseHfConfig({
    model_type: modelType,
    vocab_size: vocab,
    hidden_size: p.hiddenSize,
    intermediate_size: p.intermediateSize,
    num_hidden_layers: p.numHiddenLayers,
    num_attention_heads: p.numAttentionHeads,
    num_key_value_heads: p.numKeyValueHeads,
    head_dim: p.hiddenSize / p.numAttentionHeads,
    max_position_embeddings: p.maxPositionEmbeddings,
    rms_norm_eps: 1e-5,
    rope_theta: p.ropeTheta,
    tie_word_embeddings: p.tieWordEmbeddings,
    initializer_range: 0.02,
    bos_token_id: tok.bosTokenId,
    eos_token_id: tok.eosTokenId,
    pad_token_id: tok.padTokenId,
  });
}

/** Create the folder; returns the config written. */
export function initModel(opts: InitOptions): ModelConfig {
  const tokArg = opts.tokenizer ?? "char";
  const tok: Tokenizer = tokArg === "char" ? defaultCharTokenizer() : loadTokenizer(tokArg);
  const config = presetConfig(opts.preset, tok, opts.modelType ?? "llama");
  const model = createCausalLM(config, { seed: opts.seed ?? 0 });
  prepareOutputDir(opts.output, {
    label: "init",
    overwrite: opts.overwrite,
    resumable: false,
    protect: [tokArg === "char" ? null : tokArg],
  });
  saveCausalLM(model, opts.output);
  saveTokenizer(tok, opts.output);
  return config;
}

export const INIT_SCHEMA = z
  .object({
    preset: z.enum(Object.keys(MODEL_PRESETS) as [PresetName, ...PresetName[]]).describe("model shape"),
    output: z.string().describe("folder to write (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)"),
    seed: SHARED.seed.describe("seed of the weight init"),
    tokenizer: z.string().default("char").describe("char: printable ASCII + newline; or a folder with tokenizer.json"),
    modelType: z.enum(["llama", "qwen2"]).default("llama").describe("architecture of config.json"),
    overwrite: z.boolean().default(false).describe("replace a model already in --output (without it, such a folder is refused)"),
  })
  .strict();

export function registerInit(program: Command): void {
  registerSchemaCommand(program, {
    name: "init",
    description: "create a randomly initialised model and its tokenizer in one HF-layout folder",
    schema: INIT_SCHEMA,
    epilog: `Presets:\n${Object.entries(MODEL_PRESETS)
      .map(([n, p]) => `  ${n}: ${p.describe}`)
      .join("\n")}`,
    action: (o) => {
      const cfg = initModel({
        preset: o.preset,
        output: o.output,
        seed: o.seed,
        tokenizer: o.tokenizer,
        modelType: o.modelType,
        overwrite: o.overwrite,
      });
      const params =
        cfg.vocabSize * cfg.hiddenSize * (cfg.tieWordEmbeddings ? 1 : 2) +
        cfg.numHiddenLayers *
          (cfg.hiddenSize * cfg.headDim * (2 * cfg.numAttentionHeads + 2 * cfg.numKeyValueHeads) +
            3 * cfg.hiddenSize * cfg.intermediateSize +
            2 * cfg.hiddenSize) +
        cfg.hiddenSize;
      cliOut(
        `wrote ${o.output}: ${cfg.modelType} preset ${o.preset}, vocab ${cfg.vocabSize}, ${(params / 1e6).toFixed(2)}M parameters (+ biases), seed ${o.seed}\n`,
      );
      if (loadTokenizer(o.output).chatTemplate === null) {
        cliErr(
          `[init] note: the tokenizer has no chat template; conversational rows ({messages}) and chat serving need one: add ${join(o.output, "chat_template.jinja")}\n`,
        );
      }
    },
  });
}
