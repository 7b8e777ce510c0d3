// Shared fixtures of the online-trainer, reward-model, run-lifecycle and CLI tests: tiny Llama configs in two shapes,
// the arithmetic tokenizer, prompts and rule rewards of the GRPO-family tests, a parameter snapshot, temp folders
// removed after the test file, and a policy / classifier saved with its tokenizer for the CLI tests. Which token ids
// a config names stays each test's choice: an absent eos_token_id means Llama's default (2), not "none", so configs
// that differ only there build different models. Not a test file itself.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { defaultCharTokenizer } from "../../src/cli/init.js";
import { CharTokenizer } from "../../src/io/char_tokenizer.js";
import { type ModelConfig, parseHfConfig } from "../../src/io/hf_config.js";
import { saveTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { SequenceClassifier, saveClassifier, TokenClassifier } from "../../src/models/heads.js";
import { type CausalLM, createCausalLM, saveCausalLM } from "../../src/models/index.js";
import { Rng } from "../../src/nn/rng.js";
import { namedReward, type RewardFn } from "../../src/rewards/types.js";

const SHAPES = {
  d32: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 },
  d16: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 },
} as const;

export interface TinyLlamaOptions {
  /** "d32" (default): hidden 32, 2 layers, 4 heads / 2 KV heads; "d16": hidden 16, 1 layer, 2 heads / 1 KV head. */
  shape?: keyof typeof SHAPES;
  /** max_position_embeddings (default 32). */
  maxPositions?: number;
  /** eos_token_id: the tokenizer's EOS when true; absent from the config (Llama's default) when false (default). */
  eos?: boolean;
  /** pad_token_id: the tokenizer's pad when true, this id when a number, absent when false (default). */
  pad?: boolean | number;
}

/** A tiny Llama config (untied embeddings) sized to the tokenizer's vocabulary. */
export function tinyLlamaConfig(tok: Pick<Tokenizer, "vocabSize" | "eosTokenId" | "padTokenId">, opts: TinyLlamaOptions = {}): ModelConfig {
  const pad = opts.pad ?? false;
  return parseHfConfig({
    model_type: "llama",
    vocab_size: tok.vocabSize,
    ...SHAPES[opts.shape ?? "d32"],
    max_position_embeddings: opts.maxPositions ?? 32,
    tie_word_embeddings: false,
    ...(opts.eos ? { eos_token_id: tok.eosTokenId } : {}),
    ...(pad === false ? {} : { pad_token_id: pad === true ? tok.padTokenId : pad }),
  });
}

/** A tiny Llama with seeded weights (see tinyLlamaConfig). */
export function tinyLlama(
  tok: Pick<Tokenizer, "vocabSize" | "eosTokenId" | "padTokenId">,
  seed: number,
  opts: TinyLlamaOptions = {},
): CausalLM {
  return createCausalLM(tinyLlamaConfig(tok, opts), { seed });
}

/** Every parameter's values, copied: compare before and after a step. */
export const snapshot = (m: CausalLM) => new Map([...m.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData())]));

// The GRPO-family fixture: binary sums as prompts, a policy that ends completions with EOS.

/** Digits 0 and 1, "+", "=", newline; no BOS. */
export const ARITH_TOK = new CharTokenizer("01+=\n", { bosToken: null });
export const ARITH_PROMPTS = [{ prompt: "0+1=" }, { prompt: "1+1=" }, { prompt: "10+1=" }, { prompt: "1=" }];
/** The policy's config: d32, 32 positions, the tokenizer's EOS and pad. */
export const arithConfig = (): ModelConfig => tinyLlamaConfig(ARITH_TOK, { eos: true, pad: true });
export const arithModel = (seed = 0): CausalLM => createCausalLM(arithConfig(), { seed });
/** Count of "1" characters: varies between completions, so groups carry a signal. */
export const onesReward: RewardFn = namedReward("ones", (a) => a.completions.map((c) => [...c].filter((x) => x === "1").length));
/** 1 for every completion: equal rewards in every group. */
export const constantReward: RewardFn = namedReward("constant", (a) => a.completions.map(() => 1));

/** `tmp()` makes a fresh folder `<tmpdir>/<prefix>XXXXXX`; all of them are removed after the test file. Call at top level. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

// The CLI fixture: model folders as `nexus init` leaves them (weights, config and the default char tokenizer).

export const CLI_TOK = defaultCharTokenizer();
/** d16, 128 positions, pad id 0. */
export const CLI_CONFIG = tinyLlamaConfig(CLI_TOK, { shape: "d16", maxPositions: 128, pad: 0 });

/** A causal LM (weights from seed) and the tokenizer, saved into dir. */
export function saveCliPolicy(dir: string, seed: number): void {
  saveCausalLM(createCausalLM(CLI_CONFIG, { seed }), dir);
  saveTokenizer(CLI_TOK, dir);
}

/** An outcome (sequence classifier) or process (token classifier) reward model (head from Rng(seed)) and the tokenizer, saved into dir. */
export function saveCliClassifier(kind: "orm" | "prm", dir: string, seed: number): void {
  const rng = new Rng(seed);
  saveClassifier(kind === "orm" ? new SequenceClassifier(CLI_CONFIG, { rng }) : new TokenClassifier(CLI_CONFIG, { rng }), dir);
  saveTokenizer(CLI_TOK, dir);
}
