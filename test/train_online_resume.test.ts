// Exact resume of every online trainer on the one loop (interrupted + resumed == uninterrupted, byte for byte:
// weights, optimizer, trainer state, metrics): RLOO mid generation batch, SPIN across a reference refresh, GKD
// (its per-micro-batch source draws), reverse-KL distillation, GRPO with asynchronous rollouts (batches sampled ahead
// are part of the checkpoint) and GRPO with multi-turn calculator rollouts. PPO, GRPO and online DPO are in
// train_run_state.test.ts.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { calculatorEnvironment } from "../src/agent/calculator.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import type { CausalLM } from "../src/models/index.js";
import { namedReward } from "../src/rewards/types.js";
import { listCheckpoints } from "../src/train/checkpoint.js";
import { trainDistill } from "../src/train/distill.js";
import { trainGkd } from "../src/train/gkd.js";
import { trainGrpo } from "../src/train/grpo.js";
import type { OnlineTrainResult } from "../src/train/online_entry.js";
import { trainRloo } from "../src/train/rloo.js";
import { trainSpin } from "../src/train/spin.js";
import { tempDirs, tinyLlama } from "./helpers/tiny_model.js";

const TOK = new CharTokenizer("abcd=+*[]0123", { bosToken: null });
const tiny = (seed: number): CausalLM => tinyLlama(TOK, seed, { shape: "d16", eos: true, pad: true });
const tmp = tempDirs("nexus-resume-");

const TIMING = new Set(["elapsed_s", "step_time"]);
function metricsOf(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => !TIMING.has(k))));
}

type Run = (outputDir: string, extra: { stopAfterStep?: number; resume?: boolean }) => Promise<OnlineTrainResult<unknown>>;

/** Run uninterrupted, then interrupted at `stop` and resumed; the last checkpoints and the metrics must match. */
async function assertResumes(run: Run, stop: number, total: number): Promise<void> {
  const full = tmp();
  await run(full, {});
  const dir = tmp();
  const first = await run(dir, { stopAfterStep: stop });
  assert.equal(first.run.interrupted, true);
  assert.ok(listCheckpoints(dir).includes(stop));
  await run(dir, { resume: true });
  for (const f of ["model.safetensors", "optimizer.safetensors"]) {
    const a = readFileSync(join(full, `checkpoint-${total}`, f));
    const b = readFileSync(join(dir, `checkpoint-${total}`, f));
    assert.ok(a.equals(b), `${f} of checkpoint-${total} differs after resume`);
  }
  const state = (d: string) => JSON.parse(readFileSync(join(d, `checkpoint-${total}`, "trainer_state.json"), "utf8"));
  assert.deepEqual(state(dir), state(full));
  assert.deepEqual(metricsOf(dir), metricsOf(full));
}

const countA = namedReward("count_a", ({ completions }) => completions.map((c) => [...c].filter((ch) => ch === "a").length));
const PROMPTS = ["ab", "cd", "ba", "dc", "bc", "db"].map((prompt) => ({ prompt }));
const PAIRS = PROMPTS.map((p) => ({ prompt: p.prompt, completion: `=${p.prompt}` }));
const common = { learningRate: 1e-2, loggingSteps: 1, maxCompletionLength: 4 };

describe("every online trainer resumes exactly", () => {
  test("RLOO, interrupted between the two passes over a batch", async () => {
    const run: Run = (outputDir, extra) =>
      trainRloo({
        model: tiny(1),
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [countA],
        config: { ...common, maxSteps: 4, numGenerations: 2, perDeviceTrainBatchSize: 4, numIterations: 2, seed: 3 },
        outputDir,
        quiet: true,
        ...extra,
      });
    await assertResumes(run, 3, 4);
  });

  test("SPIN, interrupted before a reference refresh", async () => {
    const run: Run = (outputDir, extra) =>
      trainSpin({
        model: tiny(2),
        tokenizer: TOK,
        data: PAIRS,
        config: { ...common, numTrainEpochs: 2, perDeviceTrainBatchSize: 3, seed: 4 },
        outputDir,
        quiet: true,
        ...extra,
      });
    await assertResumes(run, 2, 4);
  });

  test("GKD and reverse-KL distillation", async () => {
    const teacher = tiny(9);
    const gkd: Run = (outputDir, extra) =>
      trainGkd({
        model: tiny(3),
        tokenizer: TOK,
        data: PAIRS,
        teacher,
        config: { ...common, maxSteps: 4, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, lmbda: 0.5, seed: 5 },
        outputDir,
        quiet: true,
        ...extra,
      });
    await assertResumes(gkd, 2, 4);
    const distill: Run = (outputDir, extra) =>
      trainDistill({
        model: tiny(4),
        tokenizer: TOK,
        data: PROMPTS,
        teacher,
        config: { ...common, maxSteps: 3, perDeviceTrainBatchSize: 4, numGenerations: 2, seed: 6 },
        outputDir,
        quiet: true,
        ...extra,
      });
    await assertResumes(distill, 1, 3);
  });

  test("GRPO with asynchronous rollouts (two batches in flight) and GRPO with multi-turn calculator rollouts", async () => {
    const grpo =
      (maxOffPolicySteps: number, env: boolean): Run =>
      (outputDir, extra) =>
        trainGrpo({
          model: tiny(5),
          tokenizer: TOK,
          data: env ? [{ prompt: "12*3=" }, { prompt: "3+2=" }] : PROMPTS,
          rewardFuncs: [countA],
          environment: env ? calculatorEnvironment({ open: "[", close: "]", resultTemplate: "={value}", errorText: "=0" }) : null,
          config: {
            ...common,
            maxCompletionLength: 8,
            maxSteps: 5,
            numGenerations: 2,
            perDeviceTrainBatchSize: 4,
            maxOffPolicySteps,
            seed: 7,
          },
          outputDir,
          quiet: true,
          ...extra,
        });
    await assertResumes(grpo(2, false), 2, 5);
    await assertResumes(grpo(0, true), 3, 5);
  });
});
