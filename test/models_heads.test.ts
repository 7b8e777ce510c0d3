// Reward / value / PRM heads: the reward is dot(score.weight, hidden at the last real token) computed
// independently; left- and right-padded batches give the same per-row rewards; values per token; PRM logits at
// chosen positions with bias; gradients reach the picked rows; save → load round trips in the HF layout.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readSafetensorsHeader } from "../src/io/safetensors.js";
import { loadCausalLM, saveCausalLM } from "../src/models/causal_lm.js";
import {
  classifierFromCausalLM,
  lastRealIndex,
  loadClassifier,
  type SequenceClassifier,
  saveClassifier,
  type TokenClassifier,
} from "../src/models/heads.js";
import { Rng } from "../src/nn/rng.js";
import { backward, fromArray, noGrad, sum, type Tensor } from "../src/tensor/index.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));

async function rewardModel(name = "qwen2-tiny"): Promise<SequenceClassifier> {
  const lm = await loadCausalLM(path.join(FIXTURES, name));
  const m = classifierFromCausalLM(lm, "sequence", { seed: 3 }) as SequenceClassifier;
  return m;
}

/** Rows padded on one side: ids [B, T] and mask [B, T]. */
function pad(rows: number[][], side: "left" | "right"): { inputIds: Tensor; attentionMask: Tensor } {
  const t = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * t);
  const mask = new Float32Array(rows.length * t);
  rows.forEach((r, i) => {
    const off = i * t + (side === "left" ? t - r.length : 0);
    ids.set(r, off);
    mask.fill(1, off, off + r.length);
  });
  return { inputIds: fromArray(ids, [rows.length, t]), attentionMask: fromArray(mask, [rows.length, t]) };
}

const ROWS = [
  [5, 17, 200, 31, 9, 77],
  [12, 4],
  [300, 301, 302, 1, 2, 3, 4, 5, 6],
];

describe("SequenceClassifier (reward / value model)", () => {
  test("reward = dot(score.weight, hidden at the last real token), computed independently", async () => {
    const m = await rewardModel();
    const batch = pad(ROWS, "left");
    const rewards = noGrad(() => m.rewards(batch));
    assert.deepEqual(rewards.shape, [ROWS.length]);
    const w = m.score.weight.hostData();
    ROWS.forEach((r, i) => {
      // the row alone, no padding: its final hidden state at the last position
      const h = noGrad(() => m.model.forward({ inputIds: fromArray(Int32Array.from(r), [1, r.length]) }));
      const d = h.shape[2];
      let dot = 0;
      for (let k = 0; k < d; k++) dot += w[k] * h.hostData()[(r.length - 1) * d + k];
      assert.ok(Math.abs(dot - rewards.hostData()[i]) < 1e-5, `row ${i}: ${rewards.hostData()[i]} vs ${dot}`);
    });
  });

  test("left- and right-padded batches give the same per-row rewards; values are per token", async () => {
    const m = await rewardModel("llama-tiny");
    const left = noGrad(() => m.rewards(pad(ROWS, "left")));
    const right = noGrad(() => m.rewards(pad(ROWS, "right")));
    for (let i = 0; i < ROWS.length; i++) assert.ok(Math.abs(left.hostData()[i] - right.hostData()[i]) < 1e-5, `row ${i}`);
    // the pooled logits are the per-token values at the last real token
    const batch = pad(ROWS, "right");
    const values = noGrad(() => m.values(batch));
    const t = batch.inputIds.shape[1];
    assert.deepEqual(values.shape, [ROWS.length, t]);
    ROWS.forEach((r, i) => {
      assert.equal(values.hostData()[i * t + r.length - 1], right.hostData()[i]);
    });
    assert.deepEqual(Array.from(lastRealIndex(batch.attentionMask, 3, t)), [5, 1, 8]);
    assert.deepEqual(Array.from(lastRealIndex(pad(ROWS, "left").attentionMask, 3, t)), [8, 8, 8]);
  });

  test("the reward's gradient reaches the score weight and the backbone", async () => {
    const m = await rewardModel();
    const r = m.rewards(pad(ROWS, "left"));
    backward(sum(r));
    // d(sum r)/d(score.weight) = sum of the picked hidden states
    const h = noGrad(() => m.model.forward(pad(ROWS, "left")));
    const [b, t, d] = h.shape;
    const g = m.score.weight.grad as Tensor;
    for (let k = 0; k < d; k++) {
      let s = 0;
      for (let i = 0; i < b; i++) s += h.hostData()[(i * t + t - 1) * d + k];
      assert.ok(Math.abs(g.hostData()[k] - s) < 1e-4);
    }
    assert.ok(m.model.embedTokens.weight.grad !== null);
  });

  test("save → load round trip in the HF *ForSequenceClassification layout", async () => {
    const m = await rewardModel();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-rm-"));
    assert.throws(() => saveClassifier(m, dir), /padTokenId/);
    const withPad = classifierFromCausalLM(await loadCausalLM(path.join(FIXTURES, "qwen2-tiny")), "sequence", {
      seed: 3,
    }) as SequenceClassifier;
    (withPad.config as { padTokenId: number | null }).padTokenId = 0;
    saveClassifier(withPad, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf-8"));
    assert.deepEqual(cfg.architectures, ["Qwen2ForSequenceClassification"]);
    assert.deepEqual(cfg.id2label, { "0": "LABEL_0" });
    assert.equal(cfg.pad_token_id, 0);
    const keys = [...readSafetensorsHeader(path.join(dir, "model.safetensors")).tensors.keys()];
    assert.ok(keys.includes("score.weight") && keys.every((k) => k === "score.weight" || k.startsWith("model.")));
    const back = loadClassifier(dir) as SequenceClassifier;
    assert.equal(back.kind, "sequence");
    const a = noGrad(() => withPad.rewards(pad(ROWS, "left")));
    const b = noGrad(() => back.rewards(pad(ROWS, "left")));
    assert.deepEqual(Array.from(a.hostData()), Array.from(b.hostData()));
    fs.rmSync(dir, { recursive: true });
  });

  test("a causal-LM folder loads as a classifier with a seeded score layer", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-rm-lm-"));
    const lm = await loadCausalLM(path.join(FIXTURES, "llama-tiny"));
    saveCausalLM(lm, dir);
    const a = loadClassifier(dir, { kind: "sequence", seed: 5 }) as SequenceClassifier;
    const b = loadClassifier(dir, { kind: "sequence", seed: 5 }) as SequenceClassifier;
    assert.deepEqual(Array.from(a.score.weight.hostData()), Array.from(b.score.weight.hostData()));
    assert.ok(a.score.weight.hostData().some((x) => x !== 0));
    assert.deepEqual(Array.from(a.model.norm.weight.hostData()), Array.from(lm.model.norm.weight.hostData()));
    assert.throws(() => loadClassifier(dir), /not a classifier/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe("TokenClassifier (PRM)", () => {
  test("logits at chosen positions = W h + b at those positions, and a save → load round trip", async () => {
    const lm = await loadCausalLM(path.join(FIXTURES, "llama-tiny"));
    const prm = classifierFromCausalLM(lm, "token", { seed: 9 }) as TokenClassifier;
    const b0 = new Float32Array(prm.score.bias?.size ?? 0);
    new Rng(1).fillNormal(b0, 0, 0.5); // a non-zero bias, so it is tested
    prm.score.bias?.copyFrom(b0);
    const batch = pad(ROWS, "left");
    const t = batch.inputIds.shape[1];
    const positions = [[t - 4, t - 1], [t - 1], [t - 9, t - 5, t - 1]];
    const logits = noGrad(() => prm.logitsAt(batch, positions));
    assert.deepEqual(logits.shape, [6, 2]);
    const h = noGrad(() => prm.model.forward(batch));
    const d = h.shape[2];
    const w = prm.score.weight.hostData();
    const bias = prm.score.bias?.hostData() as Float32Array;
    let n = 0;
    positions.forEach((ps, r) => {
      for (const p of ps) {
        for (let l = 0; l < 2; l++) {
          let s = bias[l];
          for (let k = 0; k < d; k++) s += w[l * d + k] * h.hostData()[(r * t + p) * d + k];
          assert.ok(Math.abs(s - logits.hostData()[n * 2 + l]) < 1e-5);
        }
        n++;
      }
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-prm-"));
    saveClassifier(prm, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf-8"));
    assert.deepEqual(cfg.architectures, ["LlamaForTokenClassification"]);
    assert.equal(Object.keys(cfg.id2label).length, 2);
    const back = loadClassifier(dir) as TokenClassifier;
    assert.equal(back.kind, "token");
    assert.deepEqual(Array.from(noGrad(() => back.logitsAt(batch, positions)).hostData()), Array.from(logits.hostData()));
    assert.throws(() => prm.logitsAt(batch, [[t]]), /1 position lists for 3 rows/);
    fs.rmSync(dir, { recursive: true });
  });
});

test("CausalLM.forward given plain arrays says how to build the i32 tensor (not a TypeError deep inside)", async () => {
  const lm = await loadCausalLM(path.join(FIXTURES, "qwen2-tiny"));
  const want =
    /\[CausalLM\] inputIds must be an i32 Tensor \[B, T\], e\.g\. tensor\(\[tok\.encode\(text\)\], \{ dtype: "i32" \}\); got an array/;
  assert.throws(() => lm.forward({ inputIds: [[5, 17, 200]] as unknown as Tensor }), want);
  const { inputIds } = pad([[5, 17, 200]], "right");
  assert.throws(() => lm.forward({ inputIds, attentionMask: [[1, 1, 1]] as unknown as Tensor }), /attentionMask must be an i32 Tensor/);
  assert.deepEqual(lm.forward({ inputIds }).logits.shape.slice(0, 2), [1, 3]);
});
