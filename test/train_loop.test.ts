// Invariants of the shared training loop on a tiny char-level Llama: gradient accumulation 4×1 equals 1×4
// with rows of different lengths (loss normalised by the step's real token count), an interrupted run
// resumed from its checkpoint ends bitwise equal to an uninterrupted one, atomic checkpoints, NaN loss
// naming the step, token-budget batching, and strict configs with suggestions.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { tensor } from "../src/tensor/index.js";
import { latestCheckpoint, listCheckpoints, saveCheckpoint } from "../src/train/checkpoint.js";
import { ConfigError, resolveConfig } from "../src/train/config.js";
import { LOOP_SCHEMA, type LoopConfig, microBatches, runTraining } from "../src/train/loop.js";
import { NonFiniteError } from "../src/train/nonfinite.js";
import { type SftExample, sftLossSum } from "../src/train/sft.js";

const TOK = new CharTokenizer("abcdefghij +=");
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
const TEXTS = ["abc", "abcdefgh", "a+b=c", "jihgfedcba ab", "ee", "fgh+i", "cab", "bad face"];
const EXAMPLES: SftExample[] = TEXTS.map((t) => {
  const ids = TOK.encode(t + TOK.eosToken);
  return { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) };
});

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "nexus-loop-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cfg(over: Partial<LoopConfig>): LoopConfig {
  return resolveConfig("test", LOOP_SCHEMA, { learningRate: 1e-2, loggingSteps: 1, ...over });
}

function sftTask(model: ReturnType<typeof createCausalLM>) {
  return {
    rowTokens: (r: SftExample) => r.ids.length,
    countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
    lossSum: (rows: SftExample[]) => ({ loss: sftLossSum(model, rows, TOK.padTokenId).loss }),
  };
}

function weights(model: ReturnType<typeof createCausalLM>): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData() as Float32Array)]));
}

async function train(over: Partial<LoopConfig>, extra: { outputDir?: string | null; resume?: boolean; stopAfterStep?: number } = {}) {
  const model = createCausalLM(MODEL_CONFIG, { seed: 7 });
  const run = await runTraining({
    model,
    task: sftTask(model),
    rows: EXAMPLES,
    config: cfg(over),
    outputDir: extra.outputDir ?? null,
    resume: extra.resume,
    stopAfterStep: extra.stopAfterStep,
    quiet: true,
  });
  return { model, run };
}

describe("gradient accumulation", () => {
  test("4 micro-batches of 1 equal 1 batch of 4 (rows of different lengths, token-normalised)", async () => {
    const a = await train({ perDeviceTrainBatchSize: 1, gradientAccumulationSteps: 4, maxSteps: 4, learningRate: 1e-3 });
    const b = await train({ perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 1, maxSteps: 4, learningRate: 1e-3 });
    const init = weights(createCausalLM(MODEL_CONFIG, { seed: 7 }));
    const wa = weights(a.model);
    const wb = weights(b.model);
    let worst = 0;
    for (const [name, x] of wa) {
      const y = wb.get(name) as Float32Array;
      const w0 = init.get(name) as Float32Array;
      let diff = 0;
      let moved = 0;
      let scale = 0;
      for (let i = 0; i < x.length; i++) {
        diff = Math.max(diff, Math.abs(x[i] - y[i]));
        moved = Math.max(moved, Math.abs(y[i] - w0[i]));
        scale = Math.max(scale, Math.abs(y[i]));
      }
      assert.ok(moved > 1e-4, `${name} did not move`);
      worst = Math.max(worst, diff / scale);
    }
    assert.ok(worst < 1e-6, `max relative weight difference ${worst}`);
    // the logged step losses agree too (same rows, same normalisation)
    const la = a.run.history.map((h) => h.loss as number);
    const lb = b.run.history.map((h) => h.loss as number);
    for (let i = 0; i < la.length; i++) assert.ok(Math.abs(la[i] - lb[i]) < 1e-5 * Math.abs(lb[i]), `step ${i + 1}: ${la[i]} vs ${lb[i]}`);
  });

  test("a per-row mean (the wrong normalisation) would differ: rows really have different lengths", () => {
    const counts = EXAMPLES.slice(0, 4).map((e) => e.lossMask.reduce((a, b) => a + b, 0));
    assert.ok(new Set(counts).size > 1);
  });
});

describe("checkpoints and resume", () => {
  test("interrupted + resumed run ends bitwise equal to the uninterrupted run", async () => {
    const over = {
      perDeviceTrainBatchSize: 2,
      gradientAccumulationSteps: 2,
      maxSteps: 6,
      lrSchedulerType: "cosine" as const,
      warmupSteps: 2,
    };
    const full = await train(over, { outputDir: tmp() });
    const dir = tmp();
    const first = await train(over, { outputDir: dir, stopAfterStep: 3 });
    assert.equal(first.run.interrupted, true);
    assert.equal(first.run.step, 3);
    assert.deepEqual(listCheckpoints(dir), [3]);
    const second = await train(over, { outputDir: dir, resume: true });
    assert.equal(second.run.interrupted, false);
    assert.equal(second.run.step, 6);
    const wf = weights(full.model);
    for (const [name, x] of weights(second.model)) {
      const y = wf.get(name) as Float32Array;
      assert.ok(Buffer.from(x.buffer).equals(Buffer.from(y.buffer)), `${name} differs after resume`);
    }
    // the resumed run logged only steps 4..6; metrics.jsonl holds all six
    assert.deepEqual(
      second.run.history.map((h) => h.step),
      [4, 5, 6],
    );
    const logged = readFileSync(join(dir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(logged, [1, 2, 3, 4, 5, 6]);
    // the config is written next to the checkpoint
    const saved = JSON.parse(readFileSync(join(dir, "checkpoint-6", "config.json"), "utf8"));
    assert.equal(saved.maxSteps, 6);
    assert.equal(saved.lrSchedulerType, "cosine");
  });

  test("a leftover temp folder or a folder without trainer_state.json is not a checkpoint", () => {
    const dir = tmp();
    const w = tensor([1, 2, 3]);
    saveCheckpoint(dir, 2, { weights: [["w", w]], optimizer: [], state: { step: 2, epoch: 0 }, config: {} });
    mkdirSync(join(dir, ".checkpoint-9.tmp-12345"));
    writeFileSync(join(dir, ".checkpoint-9.tmp-12345", "trainer_state.json"), "{}");
    mkdirSync(join(dir, "checkpoint-7")); // crashed before the rename could have happened: incomplete
    assert.deepEqual(listCheckpoints(dir), [2]);
    assert.equal(latestCheckpoint(dir), join(dir, "checkpoint-2"));
    assert.equal(existsSync(join(dir, `.checkpoint-2.tmp-${process.pid}`)), false, "temp folder renamed away");
  });

  test("saveTotalLimit keeps the newest checkpoints", async () => {
    const dir = tmp();
    await train({ perDeviceTrainBatchSize: 4, maxSteps: 4, saveSteps: 1, saveTotalLimit: 2 }, { outputDir: dir });
    assert.deepEqual(listCheckpoints(dir), [3, 4]);
  });
});

describe("errors", () => {
  test("a NaN loss raises an error naming the step and keeps the last checkpoint", async () => {
    const dir = tmp();
    const model = createCausalLM(MODEL_CONFIG, { seed: 7 });
    const base = sftTask(model);
    let calls = 0;
    const task = {
      ...base,
      lossSum: (rows: SftExample[]) => {
        calls++;
        const r = base.lossSum(rows);
        return calls === 3 ? { loss: r.loss.mul(Number.NaN) } : r;
      },
    };
    await assert.rejects(
      runTraining({
        model,
        task,
        rows: EXAMPLES,
        config: cfg({ perDeviceTrainBatchSize: 2, maxSteps: 5, saveSteps: 1 }),
        outputDir: dir,
        quiet: true,
      }),
      (e: Error) =>
        e instanceof NonFiniteError &&
        /non-finite values at step 3: the loss is NaN, and the gradient of 'model\.embed_tokens\.weight' holds NaN/.test(e.message),
    );
    assert.deepEqual(listCheckpoints(dir), [1, 2]);
  });

  test("unknown config keys are rejected with a suggestion", () => {
    assert.throws(
      () => resolveConfig("sft", LOOP_SCHEMA, { learningRte: 1e-3 }),
      (e: Error) => e instanceof ConfigError && e.message === "[sft] unknown config key 'learningRte' (did you mean 'learningRate'?)",
    );
    assert.throws(() => resolveConfig("sft", LOOP_SCHEMA, { perDeviceTrainBatchSize: 0 }), /perDeviceTrainBatchSize/);
  });
});

describe("batching", () => {
  test("token budget: rows × longest row never exceeds maxTokens (a longer row goes alone)", () => {
    const rows = [3, 5, 2, 8, 1, 12, 1, 1];
    const batches = microBatches(rows, 8, 10, (r) => r);
    assert.deepEqual(batches, [[3, 5], [2], [8], [1], [12], [1, 1]]);
    assert.deepEqual(
      microBatches(rows, 3, 0, (r) => r),
      [
        [3, 5, 2],
        [8, 1, 12],
        [1, 1],
      ],
    );
  });

  test("maxTokensPerBatch is used by the loop (units still normalised per step)", async () => {
    const { run } = await train({ perDeviceTrainBatchSize: 8, maxTokensPerBatch: 20, maxSteps: 2 });
    assert.equal(run.step, 2);
    assert.ok(Number.isFinite(run.history[0].loss as number));
  });
});
