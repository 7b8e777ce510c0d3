// One checkpoint path (src/train/run_state.ts) behind every loop: a run interrupted after step k and resumed
// ends with the same weights, optimizer state and metrics, byte for byte, as the uninterrupted run — for the
// offline loop (SFT), the group-RL loop (GRPO, with numIterations 2 and the RNG/cursor it must restore) and the
// online-policy loop (PPO with its shuffles; online DPO with a TR-DPO reference that changes during the run), and
// SPIN stopped by its signal inside a later self-play iteration.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { namedReward } from "../src/rewards/types.js";
import { listCheckpoints } from "../src/train/checkpoint.js";
import { trainGrpo } from "../src/train/grpo.js";
import { trainOnlineDpo } from "../src/train/online_dpo.js";
import { trainPpo } from "../src/train/ppo.js";
import { TrainingInterrupted } from "../src/train/run_state.js";
import { trainSft } from "../src/train/sft.js";
import { trainSpin } from "../src/train/spin.js";
import { TOK, tinyModel } from "./helpers/tiny_preference.js";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "nexus-runstate-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const TIMING = new Set(["elapsed_s", "step_time", "eps"]);
/** metrics.jsonl without wall-clock fields. */
function metricsOf(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => !TIMING.has(k))));
}

/** The final checkpoint's tensors and trainer state must be byte-identical; the metrics identical. */
function assertSameRun(full: string, resumed: string, step: number): void {
  for (const f of ["model.safetensors", "optimizer.safetensors"]) {
    const a = readFileSync(join(full, `checkpoint-${step}`, f));
    const b = readFileSync(join(resumed, `checkpoint-${step}`, f));
    assert.ok(a.equals(b), `${f} of checkpoint-${step} differs after resume`);
  }
  const sa = JSON.parse(readFileSync(join(full, `checkpoint-${step}`, "trainer_state.json"), "utf8"));
  const sb = JSON.parse(readFileSync(join(resumed, `checkpoint-${step}`, "trainer_state.json"), "utf8"));
  assert.deepEqual(sb, sa);
  assert.deepEqual(metricsOf(resumed), metricsOf(full));
}

const countA = namedReward("count_a", ({ completions }) => completions.map((c) => [...c].filter((ch) => ch === "a").length));
const PROMPTS = ["ab", "cd", "ba", "dc", "bc", "db"].map((prompt) => ({ prompt }));

describe("one checkpoint path: interrupted + resumed == uninterrupted, byte for byte", () => {
  test("SFT (offline loop): weights, optimizer, totals and metrics", async () => {
    const rows = ["abcd", "dcba=", "ab: cd", "xyz", "aabb", "u: ab"].map((text) => ({ text }));
    const config = { maxSteps: 5, perDeviceTrainBatchSize: 2, learningRate: 1e-2, loggingSteps: 1, saveSteps: 0, seed: 5 };
    const run = (outputDir: string, extra: { stopAfterStep?: number; resume?: boolean }) =>
      trainSft({ model: tinyModel(2), tokenizer: TOK, data: rows, config, outputDir, quiet: true, ...extra });
    const full = tmp();
    await run(full, {});
    const dir = tmp();
    const first = await run(dir, { stopAfterStep: 2 });
    assert.equal(first.run.interrupted, true);
    await run(dir, { resume: true });
    assertSameRun(full, dir, 5);
    const state = JSON.parse(readFileSync(join(dir, "checkpoint-5", "trainer_state.json"), "utf8"));
    assert.ok(state.totals.num_tokens > 0, "running totals are kept across resume");
  });

  test("GRPO (group-RL loop): RNG state and prompt cursor restored, numIterations 2", async () => {
    const tok = new CharTokenizer("abcd", { bosToken: null });
    const model = () =>
      createCausalLM(
        parseHfConfig({
          model_type: "llama",
          vocab_size: tok.vocabSize,
          hidden_size: 16,
          intermediate_size: 32,
          num_hidden_layers: 1,
          num_attention_heads: 2,
          num_key_value_heads: 1,
          max_position_embeddings: 32,
          tie_word_embeddings: false,
        }),
        { seed: 1 },
      );
    const config = {
      maxSteps: 6,
      numGenerations: 2,
      perDeviceTrainBatchSize: 4,
      maxCompletionLength: 4,
      numIterations: 2,
      beta: 0.05,
      learningRate: 1e-2,
      loggingSteps: 1,
      seed: 9,
    };
    const run = (outputDir: string, extra: { stopAfterStep?: number; resume?: boolean }) =>
      trainGrpo({ model: model(), tokenizer: tok, data: PROMPTS, rewardFuncs: [countA], config, outputDir, quiet: true, ...extra });
    const full = tmp();
    await run(full, {});
    const dir = tmp();
    await run(dir, { stopAfterStep: 3 }); // mid generation batch: step 3 is the first iteration of batch 2
    assert.deepEqual(listCheckpoints(dir), [3]);
    const mid = JSON.parse(readFileSync(join(dir, "checkpoint-3", "trainer_state.json"), "utf8"));
    assert.equal(mid.rng.length, 4);
    assert.equal(mid.cursor, 2 * 2, "two generation batches of 2 prompts consumed");
    await run(dir, { resume: true });
    assertSameRun(full, dir, 6);
  });

  test("PPO (online-policy loop): policy + value weights and the shuffling RNG", async () => {
    const config = {
      maxSteps: 4,
      perDeviceTrainBatchSize: 2,
      numMiniBatches: 2,
      maxCompletionLength: 3,
      learningRate: 1e-2,
      loggingSteps: 1,
      seed: 4,
    };
    const run = (outputDir: string, extra: { stopAfterStep?: number; resume?: boolean }) =>
      trainPpo({ model: tinyModel(3), tokenizer: TOK, data: PROMPTS, rewardFuncs: [countA], config, outputDir, quiet: true, ...extra });
    const full = tmp();
    await run(full, {});
    const dir = tmp();
    await run(dir, { stopAfterStep: 2 });
    await run(dir, { resume: true });
    assertSameRun(full, dir, 4);
  });

  test("online DPO with TR-DPO reference sync: the synced reference is part of the checkpoint", async () => {
    const config = {
      maxSteps: 5,
      perDeviceTrainBatchSize: 2,
      maxCompletionLength: 4,
      learningRate: 1e-2,
      loggingSteps: 1,
      seed: 6,
      syncRefModel: true,
      refModelSyncSteps: 2,
      refModelMixupAlpha: 0.5,
    };
    const run = (outputDir: string, extra: { stopAfterStep?: number; resume?: boolean }) =>
      trainOnlineDpo({
        model: tinyModel(5),
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [countA],
        config,
        outputDir,
        quiet: true,
        ...extra,
      });
    const full = tmp();
    await run(full, {});
    const dir = tmp();
    await run(dir, { stopAfterStep: 3 }); // after the step-2 sync: the reference differs from the start
    await run(dir, { resume: true });
    assertSameRun(full, dir, 5);
    const a = readFileSync(join(full, "checkpoint-5", "trainer_tensors.safetensors"));
    assert.ok(a.equals(readFileSync(join(dir, "checkpoint-5", "trainer_tensors.safetensors"))));
  });

  test("SPIN: interrupted (Ctrl-C) in its second iteration, after the reference refresh, and resumed, equal to the uninterrupted run", async () => {
    const rows = ["ab", "cd", "ba", "dc"].map((prompt) => ({ prompt, completion: `=${prompt}` }));
    // two self-play iterations (epochs) of two batches each: step 3 is the first of iteration 2
    const config = { numTrainEpochs: 2, perDeviceTrainBatchSize: 2, maxCompletionLength: 4, learningRate: 1e-2, loggingSteps: 1, seed: 8 };
    const run = (outputDir: string, extra: { signal?: AbortSignal; resume?: boolean; onPairs?: () => void }) =>
      trainSpin({ model: tinyModel(6), tokenizer: TOK, data: rows, config, outputDir, quiet: true, ...extra });
    const full = tmp();
    await run(full, {});
    const dir = tmp();
    const ac = new AbortController();
    let batches = 0;
    await assert.rejects(
      run(dir, { signal: ac.signal, onPairs: () => ++batches === 3 && ac.abort() }),
      (e: Error) => e instanceof TrainingInterrupted && e.step === 3,
    );
    assert.deepEqual(listCheckpoints(dir), [3]);
    await run(dir, { resume: true });
    assertSameRun(full, dir, 4);
  });
});
