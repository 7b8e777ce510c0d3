// PRM trainer: TRL PRMTrainer token labels checked index by index (BOS, separator spans, last-step-only,
// truncation), ProcessBench first-error scoring on hand-made cases, and training on a separable synthetic
// stepwise set (a wrong step contains "h") that raises step accuracy and first-error F1; frozen tensors stay put.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { tokenizePrmRow } from "../src/data/row_tokenize.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { TokenClassifier } from "../src/models/heads.js";
import { Rng } from "../src/nn/rng.js";
import { resolveConfig } from "../src/train/config.js";
import { evaluatePrm, PRM_SCHEMA, processBenchF1, trainPrm } from "../src/train/prm_trainer.js";

const TOK = new CharTokenizer("abcdefgh+=\n");
const BOS = TOK.bosTokenId as number;
const CFG = resolveConfig("prm", PRM_SCHEMA, {});
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
});
const X = -100;

/** Steps of 1-2 letters; the first wrong step (if any) contains "h"; rows stop at the first error. */
function rows(n: number, seed: number) {
  const rng = new Rng(seed);
  const letter = () => "abcdefg"[rng.int(7)];
  return Array.from({ length: n }, () => {
    const k = 2 + rng.int(3);
    const bad = rng.int(2) === 0 ? rng.int(k) : -1;
    const len = bad === -1 ? k : bad + 1;
    const completions = Array.from({ length: len }, (_, i) => (i === bad ? `${letter()}h` : letter() + (rng.int(2) ? letter() : "")));
    return { prompt: `${letter()}+${letter()}=`, completions, labels: completions.map((_, i) => i !== bad) };
  });
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("PRM labels (TRL PRMTrainer.tokenize_row)", () => {
  const row = { prompt: "ab", completions: ["c", "de"], labels: [true, false] };
  test("BOS + prompt, then each step + separator with the label on the separator's last token", () => {
    const e = tokenizePrmRow(TOK, row, CFG);
    assert.deepEqual(e.ids, [BOS, ...TOK.encode("abc\nde\n")]);
    //                         bos a  b  c  \n d  e  \n
    assert.deepEqual(e.labels, [X, X, X, X, 1, X, X, 0]);
  });

  test("a multi-token separator puts the label on its last token", () => {
    const e = tokenizePrmRow(TOK, row, { ...CFG, stepSeparator: "==" });
    assert.deepEqual(e.ids, [BOS, ...TOK.encode("abc==de==")]);
    assert.deepEqual(e.labels, [X, X, X, X, X, 1, X, X, X, 0]);
  });

  test("trainOnLastStepOnly keeps only the last label in training, all of them in evaluation", () => {
    const cfg = { ...CFG, trainOnLastStepOnly: true };
    assert.deepEqual(tokenizePrmRow(TOK, row, cfg).labels, [X, X, X, X, X, X, X, 0]);
    assert.deepEqual(tokenizePrmRow(TOK, row, cfg, true).labels, [X, X, X, X, 1, X, X, 0]);
  });

  test("maxCompletionLength, then maxLength, truncate ids and labels together", () => {
    const e = tokenizePrmRow(TOK, row, { ...CFG, maxCompletionLength: 3 });
    assert.deepEqual(e.ids, [BOS, ...TOK.encode("abc\nd")]);
    assert.deepEqual(e.labels, [X, X, X, X, 1, X]);
    const f = tokenizePrmRow(TOK, row, { ...CFG, maxLength: 4 });
    assert.deepEqual(f.labels, [X, X, X, X]);
  });

  test("ProcessBench first-error scoring", () => {
    // gold: two erroneous samples (first error 1 and 0) and two correct ones (-1)
    const r = processBenchF1([1, 0, -1, -1], [1, 2, -1, 0]);
    assert.equal(r.errorAccuracy, 0.5);
    assert.equal(r.correctAccuracy, 0.5);
    assert.equal(r.f1, 0.5);
    assert.equal(processBenchF1([2, -1], [2, -1]).f1, 1);
  });
});

describe("PRM training", () => {
  test("raises step accuracy and first-error F1 on a separable set; 2-label token-classification layout", async () => {
    const model = new TokenClassifier(MODEL_CONFIG, { rng: new Rng(1) });
    const heldOut = rows(60, 77);
    const heldOutEx = heldOut.map((r) => tokenizePrmRow(TOK, r, CFG, true));
    const before = evaluatePrm(model, heldOutEx, 0);
    const out = mkdtempSync(join(tmpdir(), "nexus-prm-"));
    dirs.push(out);
    const res = await trainPrm({
      model,
      tokenizer: TOK,
      data: rows(160, 1),
      evalData: heldOut,
      config: { learningRate: 1e-2, numTrainEpochs: 4, perDeviceTrainBatchSize: 16, loggingSteps: 5 },
      outputDir: out,
      quiet: true,
    });
    const ev = res.run.history.find((h) => h.eval_step_accuracy !== undefined);
    assert.ok(ev !== undefined);
    assert.ok((ev.eval_step_accuracy as number) > 0.95, `step accuracy ${before.step_accuracy} -> ${ev.eval_step_accuracy}`);
    assert.ok((ev.eval_step_accuracy as number) > (before.step_accuracy as number) + 0.2);
    assert.ok((ev.eval_processbench_f1 as number) > 0.9, `F1 ${ev.eval_processbench_f1}`);
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["LlamaForTokenClassification"]);
    const st = readSafetensors(join(out, "model.safetensors")).tensors;
    assert.deepEqual([...(st.get("score.weight")?.shape ?? [])], [2, 16]);
    assert.deepEqual([...(st.get("score.bias")?.shape ?? [])], [2]);
  });

  test("moves every trainable tensor and leaves frozen ones bitwise unchanged", async () => {
    const model = new TokenClassifier(MODEL_CONFIG, { rng: new Rng(2) });
    model.model.layers.items[0].selfAttn.freeze();
    const isFrozen = (n: string) => n.startsWith("model.layers.0.self_attn.");
    const before = new Map([...model.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData() as Float32Array)]));
    await trainPrm({
      model,
      tokenizer: TOK,
      data: rows(8, 5),
      config: { learningRate: 1e-3, maxSteps: 3, perDeviceTrainBatchSize: 4 },
      quiet: true,
    });
    let frozen = 0;
    for (const [name, t] of model.namedParameters()) {
      const b = before.get(name) as Float32Array;
      const a = t.hostData() as Float32Array;
      if (isFrozen(name)) {
        frozen++;
        assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${name} changed`);
      } else
        assert.ok(
          a.some((x, i) => x !== b[i]),
          `${name} did not change`,
        );
    }
    assert.ok(frozen >= 4);
  });
});
