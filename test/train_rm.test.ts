// Reward trainer: TRL tokenisation of pairs (prompt + completion + EOS), a separable synthetic preference set
// (chosen holds a marker character) learnt to > 95 % held-out pair accuracy by a tiny model, trainable tensors
// all move while frozen ones stay bitwise equal, and the output folder is HF *ForSequenceClassification.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { tokenizeRewardRow } from "../src/data/row_tokenize.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { loadClassifier, SequenceClassifier } from "../src/models/heads.js";
import { createCausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import { evaluateRewardModel, trainRewardModel } from "../src/train/reward_trainer.js";

const TOK = new CharTokenizer("abcdefghx");
const MODEL_CONFIG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 64,
  tie_word_embeddings: false,
  pad_token_id: 0,
});

/** chosen = random letters with an "x" somewhere; rejected = random letters without one. */
function pairs(n: number, seed: number): { chosen: string; rejected: string }[] {
  const rng = new Rng(seed);
  const word = () => Array.from({ length: 3 + rng.int(4) }, () => "abcdefgh"[rng.int(8)]).join("");
  return Array.from({ length: n }, () => {
    const w = word();
    const at = rng.int(w.length + 1);
    return { chosen: `${w.slice(0, at)}x${w.slice(at)}`, rejected: word() };
  });
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("reward trainer", () => {
  test("pairs are tokenized as prompt + completion + EOS", () => {
    const p = tokenizeRewardRow(TOK, { prompt: "ab", chosen: "c", rejected: "dd", margin: 0.5 });
    assert.deepEqual(p.chosen, [...TOK.encode("abc"), TOK.eosTokenId]);
    assert.deepEqual(p.rejected, [...TOK.encode("abdd"), TOK.eosTokenId]);
    assert.equal(p.margin, 0.5);
  });

  test("learns a separable preference set to > 95 % held-out pair accuracy", async () => {
    const lm = createCausalLM(MODEL_CONFIG, { seed: 1 });
    const out = mkdtempSync(join(tmpdir(), "nexus-rm-"));
    dirs.push(out);
    const heldOut = pairs(100, 99);
    const res = await trainRewardModel({
      model: lm,
      tokenizer: TOK,
      data: pairs(128, 1),
      evalData: heldOut,
      config: { learningRate: 1e-2, numTrainEpochs: 4, perDeviceTrainBatchSize: 16, loggingSteps: 4, seed: 5 },
      outputDir: out,
      quiet: true,
    });
    const ev = res.run.history.find((h) => h.eval_accuracy !== undefined);
    assert.ok(ev !== undefined);
    assert.ok((ev.eval_accuracy as number) > 0.95, `held-out accuracy ${ev.eval_accuracy}`);
    assert.ok((ev.eval_margin as number) > 0);
    const hist = res.run.history.filter((h) => h.accuracy !== undefined);
    assert.ok((hist.at(-1)?.loss as number) < (hist[0].loss as number));

    // HF sequence-classification layout: backbone under model.*, score.weight [1, D], no lm_head
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["LlamaForSequenceClassification"]);
    assert.deepEqual(Object.keys(cfg.id2label), ["0"]);
    const st = readSafetensors(join(out, "model.safetensors")).tensors;
    assert.deepEqual([...(st.get("score.weight")?.shape ?? [])], [1, 16]);
    assert.equal(st.has("lm_head.weight"), false);
    assert.equal(st.has("score.bias"), false);
    const reloaded = loadClassifier(out) as SequenceClassifier;
    const again = evaluateRewardModel(
      reloaded,
      heldOut.map((r) => tokenizeRewardRow(TOK, r)),
      0,
    );
    assert.equal(again.accuracy, ev.eval_accuracy);
  });

  test("moves every trainable tensor and leaves frozen ones bitwise unchanged", async () => {
    const rm = new SequenceClassifier(MODEL_CONFIG, { rng: new Rng(4) });
    rm.model.embedTokens.freeze();
    const before = new Map([...rm.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData() as Float32Array)]));
    await trainRewardModel({
      model: rm,
      tokenizer: TOK,
      data: pairs(8, 3).map((p, i) => ({ ...p, margin: i % 2 })),
      config: { learningRate: 1e-3, maxSteps: 3, perDeviceTrainBatchSize: 4, centerRewardsCoefficient: 0.01 },
      quiet: true,
    });
    for (const [name, t] of rm.namedParameters()) {
      const b = before.get(name) as Float32Array;
      const a = t.hostData() as Float32Array;
      if (name.startsWith("model.embed_tokens.")) assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${name} changed`);
      else
        assert.ok(
          a.some((x, i) => x !== b[i]),
          `${name} did not change`,
        );
    }
  });
});
