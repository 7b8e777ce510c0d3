// SFT trainer: TRL's tokenisation and loss masks checked position by position (text + EOS, completion-only
// auto for prompt-completion rows, assistant-only chats, truncation), and a few steps on a tiny char-level
// model that lower the loss, move every trainable tensor and leave frozen ones bitwise unchanged.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM, loadCausalLM } from "../src/models/index.js";
import { ConfigError, resolveConfig } from "../src/train/config.js";
import { SFT_SCHEMA, tokenizeSftRow, trainSft } from "../src/train/sft.js";

const TEMPLATE = "{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }};{% endfor %}{% if add_generation_prompt %}a:{% endif %}";
const TOK = new CharTokenizer("abcdefghij+=:;us", { chatTemplate: TEMPLATE });
const id = (s: string) => TOK.encode(s);
const EOS = TOK.eosTokenId;
const CFG = resolveConfig("sft", SFT_SCHEMA, {});
const MODEL_CONFIG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 64,
  tie_word_embeddings: false,
});

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("SFT tokenisation and masks", () => {
  test("text rows get EOS appended; every token but the first counts", () => {
    const e = tokenizeSftRow(TOK, { text: "abc" }, CFG);
    assert.deepEqual(e.ids, [...id("abc"), EOS]);
    assert.deepEqual(e.lossMask, [0, 1, 1, 1]);
  });

  test("prompt-completion: completion-only loss by default masks the prompt exactly", () => {
    const e = tokenizeSftRow(TOK, { prompt: "ab=", completion: "cd" }, CFG);
    assert.deepEqual(e.ids, [...id("ab=cd"), EOS]);
    assert.deepEqual(e.lossMask, [0, 0, 0, 1, 1, 1]);
    const all = tokenizeSftRow(TOK, { prompt: "ab=", completion: "cd" }, { ...CFG, completionOnlyLoss: false });
    assert.deepEqual(all.lossMask, [0, 1, 1, 1, 1, 1]);
  });

  test("messages: assistant-only loss covers the assistant's content and closing token", () => {
    const messages = [
      { role: "user", content: "ab" },
      { role: "assistant", content: "cd" },
    ];
    const e = tokenizeSftRow(TOK, { messages }, { ...CFG, assistantOnlyLoss: true });
    assert.deepEqual(e.ids, id("u:ab;a:cd;"));
    // "u:ab;a:" is 7 tokens; the assistant part is c, d, ;
    assert.deepEqual(e.lossMask, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    const all = tokenizeSftRow(TOK, { messages }, CFG);
    assert.deepEqual(all.lossMask, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  });

  test("maxLength truncates ids and mask together (keep start)", () => {
    const e = tokenizeSftRow(TOK, { prompt: "ab", completion: "cdefg" }, { ...CFG, maxLength: 4 });
    assert.deepEqual(e.ids, id("abcd"));
    assert.deepEqual(e.lossMask, [0, 0, 1, 1]);
  });

  test("unknown config keys are rejected with a suggestion", async () => {
    await assert.rejects(
      trainSft({ model: createCausalLM(MODEL_CONFIG), tokenizer: TOK, data: [{ text: "a" }], config: { completionOnlyLos: true } }),
      (e: Error) =>
        e instanceof ConfigError && /unknown config key 'completionOnlyLos' \(did you mean 'completionOnlyLoss'\?\)/.test(e.message),
    );
  });
});

describe("SFT training", () => {
  test("lowers the loss, moves every trainable tensor, leaves frozen ones bitwise unchanged, writes the output folder", async () => {
    const model = createCausalLM(MODEL_CONFIG, { seed: 3 });
    model.model.embedTokens.freeze();
    model.model.layers.items[0].freeze();
    const before = new Map([...model.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData() as Float32Array)]));
    const rows = [
      { prompt: "a+b=", completion: "ab" },
      { prompt: "c+d=", completion: "cd" },
      { prompt: "e+f=", completion: "ef" },
      { prompt: "g+h=", completion: "gh" },
    ];
    const out = mkdtempSync(join(tmpdir(), "nexus-sft-"));
    dirs.push(out);
    const res = await trainSft({
      model,
      tokenizer: TOK,
      data: rows,
      evalData: rows,
      config: { learningRate: 1e-2, maxSteps: 40, perDeviceTrainBatchSize: 4, loggingSteps: 1, lrSchedulerType: "constant" },
      outputDir: out,
      quiet: true,
    });
    const losses = res.run.history.filter((h) => h.loss !== undefined).map((h) => h.loss as number);
    assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
    const last = res.run.history.filter((h) => h.mean_token_accuracy !== undefined).at(-1);
    assert.ok((last?.mean_token_accuracy as number) > 0.5);
    // num_tokens is a running total of real tokens (7 tokens per row, 4 rows per step, 40 steps)
    assert.equal(last?.num_tokens, 7 * 4 * 40);
    const evalRow = res.run.history.find((h) => h.eval_loss !== undefined);
    assert.ok(evalRow !== undefined && (evalRow.eval_loss as number) < losses[0]);
    for (const [name, t] of model.namedParameters()) {
      const b = before.get(name) as Float32Array;
      const a = t.hostData() as Float32Array;
      const frozen = name.startsWith("model.embed_tokens.") || name.startsWith("model.layers.0.");
      if (frozen) assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${name} is frozen but changed`);
      else
        assert.ok(
          a.some((x, i) => x !== b[i]),
          `${name} is trainable but did not change`,
        );
    }
    for (const f of [
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
      "metrics.jsonl",
      "training_config.json",
    ]) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    const saved = JSON.parse(readFileSync(join(out, "training_config.json"), "utf8"));
    assert.equal(saved.learningRate, 1e-2);
    assert.equal(saved.completionOnlyLoss, null);
    const reloaded = await loadCausalLM(out);
    assert.deepEqual(reloaded.model.norm.weight.hostData(), model.model.norm.weight.hostData());
  });
});
