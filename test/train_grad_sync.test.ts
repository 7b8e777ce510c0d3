// The data-parallel hook of the shared loops: syncGradients runs once per optimizer step, after the last backward
// and before clipping and the update, with the optimizer's parameters, and what it does to the gradients is what the
// optimizer applies: a stand-in all-reduce mean over two ranks holding the same gradient (g + g) / 2 leaves training
// bitwise unchanged, and a hook that zeroes the gradients freezes the weights.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { add, mul, noGrad, type Tensor } from "../src/tensor/index.js";
import { resolveConfig } from "../src/train/config.js";
import { setGradientSync } from "../src/train/grad_sync.js";
import { LOOP_SCHEMA, runTraining } from "../src/train/loop.js";
import { type SftExample, sftLossSum } from "../src/train/sft.js";

const TOK = new CharTokenizer("abcdefgh=");
const CONFIG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 32,
  tie_word_embeddings: false,
});
const ROWS: SftExample[] = ["abc=", "gfe=dc", "ha=b", "fgh="].map((t) => {
  const ids = TOK.encode(t);
  return { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) };
});

async function train(): Promise<{ weights: Float32Array[] }> {
  const model = createCausalLM(CONFIG, { seed: 5 });
  const config = resolveConfig("test", LOOP_SCHEMA, {
    learningRate: 1e-2,
    maxSteps: 3,
    perDeviceTrainBatchSize: 2,
    gradientAccumulationSteps: 2,
    maxGradNorm: 0,
    weightDecay: 0,
  });
  const task = {
    rowTokens: (r: SftExample) => r.ids.length,
    countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
    lossSum: (rows: SftExample[]) => ({ loss: sftLossSum(model, rows, TOK.padTokenId).loss }),
  };
  await runTraining({ model, task, rows: ROWS, config, outputDir: null, quiet: true });
  return { weights: model.parameters().map((p) => Float32Array.from(p.hostData())) };
}

afterEach(() => setGradientSync(null));

describe("gradient sync hook", () => {
  test("called once per optimizer step with every trainable parameter, after the accumulated backward", async () => {
    const seen: number[] = [];
    let withGrads = 0;
    setGradientSync((params) => {
      seen.push(params.length);
      if (params.every((p) => p.grad !== null)) withGrads++;
    });
    await train();
    const n = createCausalLM(CONFIG, { seed: 5 }).parameters().length;
    assert.deepEqual(seen, [n, n, n]);
    assert.equal(withGrads, 3);
  });

  test("its changes to the gradients are what the optimizer applies", async () => {
    const plain = await train();
    // the mean over two ranks with equal gradients is the gradient itself, exactly
    setGradientSync((params) => {
      noGrad(() => {
        for (const p of params) (p.grad as Tensor).assign(mul(add(p.grad as Tensor, p.grad as Tensor), 0.5));
      });
    });
    const averaged = await train();
    plain.weights.forEach((w, i) => {
      assert.deepEqual(Array.from(averaged.weights[i]), Array.from(w), `parameter ${i}`);
    });
    // a hook that zeroes the gradients freezes the weights (weight decay 0)
    setGradientSync((params) => {
      noGrad(() => {
        for (const p of params) (p.grad as Tensor).assign(mul(p.grad as Tensor, 0));
      });
    });
    const frozen = await train();
    const init = createCausalLM(CONFIG, { seed: 5 })
      .parameters()
      .map((p) => Float32Array.from(p.hostData()));
    frozen.weights.forEach((w, i) => {
      assert.deepEqual(Array.from(w), Array.from(init[i]), `parameter ${i} moved`);
    });
    assert.ok(
      plain.weights.some((w, i) => w.some((x, j) => x !== init[i][j])),
      "without the hook the weights move",
    );
  });
});
