// Shared fixtures of the preference-trainer tests: a CharTokenizer with a tiny chat template, a tiny Llama
// (D 32, 2 layers, 4 heads / 2 KV heads) and a synthetic preference set whose chosen completion copies the
// prompt while the rejected one is random letters. Not a test file itself.

import type { PreferenceRow, UnpairedPreferenceRow } from "../../src/data/index.js";
import { CharTokenizer } from "../../src/io/char_tokenizer.js";
import { parseHfConfig } from "../../src/io/hf_config.js";
import { type CausalLM, createCausalLM } from "../../src/models/index.js";
import { Rng } from "../../src/nn/rng.js";

export const LETTERS = "abcd";
export const TOK = new CharTokenizer(`${LETTERS}=xyzu: `, {
  chatTemplate: "{% for m in messages %}{{ m.role[0] }}:{{ m.content }} {% endfor %}{% if add_generation_prompt %}a:{% endif %}",
});

export function tinyModel(seed = 0): CausalLM {
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: TOK.vocabSize,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  });
  return createCausalLM(cfg, { seed });
}

/** Prompt: 4 letters; chosen: "=" + the prompt (the pattern); rejected: "=" + 4 random letters. */
export function preferenceRows(n: number, seed = 7): PreferenceRow[] {
  const rng = new Rng(seed);
  const word = () => Array.from({ length: 4 }, () => LETTERS[rng.int(LETTERS.length)]).join("");
  return Array.from({ length: n }, () => {
    const p = word();
    let r = word();
    while (r === p) r = word();
    return { prompt: p, chosen: `=${p}`, rejected: `=${r}` };
  });
}

/** The pairs unpaired (KTO): chosen rows desirable, rejected rows undesirable, interleaved. */
export function unpairedRows(n: number, seed = 7): UnpairedPreferenceRow[] {
  return preferenceRows(n, seed).flatMap((r) => [
    { prompt: r.prompt as string, completion: r.chosen as string, label: true },
    { prompt: r.prompt as string, completion: r.rejected as string, label: false },
  ]);
}

export { snapshot } from "./tiny_model.js";
