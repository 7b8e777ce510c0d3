// The one online loop (src/train/online_loop.ts) on a tiny Llama: asynchronous rollouts (a frozen policy samples the
// same batches at any staleness; a learning one trains on batches exactly maxOffPolicySteps old, with rollout-
// correction metrics; against a remote nexus serve, staleness 0 and 1 train bit for bit the same; a run two
// batches ahead raises the held-out reward about as much as a synchronous one: gains 2.8-3.2 vs 3.3-3.7 over seven
// seeds), DAPO dynamic sampling (kept groups keep their first scores: each completion is scored once; steps without
// a batch still log, evaluate and checkpoint; metrics describe the trained batch), presets that fill only unset
// fields, GRPO with a reward model, held-out reward on evalData (refused with a reason by trainers without a
// reward), the accuracy reward refusing rows without a gold column, and the reward in GRPO's progress line.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SequenceClassifier } from "../src/models/heads.js";
import type { CausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import { accuracyReward } from "../src/rewards/rule.js";
import { namedReward, type RewardFn } from "../src/rewards/types.js";
import { startServer } from "../src/serve/server.js";
import { resolveGrpoTrainConfig, trainGrpo } from "../src/train/grpo.js";
import { MetricsLogger } from "../src/train/metrics.js";
import type { GenerationBatch } from "../src/train/online_loop.js";
import { frozenCopy } from "../src/train/policy.js";
import { sampleCompletions } from "../src/train/sampling.js";
import { trainSpin } from "../src/train/spin.js";
import {
  arithConfig,
  constantReward as constant,
  onesReward as ones,
  ARITH_PROMPTS as PROMPTS,
  ARITH_TOK as TOK,
  tempDirs,
  arithModel as tinyModel,
} from "./helpers/tiny_model.js";

const base = { numGenerations: 4, perDeviceTrainBatchSize: 8, maxCompletionLength: 5, learningRate: 1e-2, seed: 3, loggingSteps: 1 };
const TIMING = new Set(["step_time", "elapsed_s"]);
const strip = (m: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !TIMING.has(k) && k !== "async/staleness"));

const tmp = tempDirs("nexus-online-");

describe("asynchronous rollouts", () => {
  test("a frozen policy samples the same batches at staleness 2 as synchronously; a learning one trains on batches exactly 1 step old", async () => {
    const run = async (maxOffPolicySteps: number, reward: RewardFn) => {
      const batches: GenerationBatch[] = [];
      const model = tinyModel(1);
      const res = await trainGrpo({
        model,
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [reward],
        config: { ...base, maxSteps: 4, maxOffPolicySteps },
        quiet: true,
        onBatch: (b) => batches.push(b),
      });
      return { batches, res, model };
    };
    // equal rewards give an exactly zero gradient, so the weights never move and sampling ahead changes nothing
    const sync = await run(0, constant);
    const ahead = await run(2, constant);
    assert.equal(sync.batches.length, 4);
    assert.deepEqual(
      ahead.batches.map((b) => b.rollout.completionIds),
      sync.batches.map((b) => b.rollout.completionIds),
    );
    assert.deepEqual(
      ahead.res.run.history
        .map(strip)
        .map((m) => Object.keys(m).filter((k) => !k.startsWith("sampling/") && !k.startsWith("rollout_corr/"))),
      sync.res.run.history.map(strip).map((m) => Object.keys(m)),
    );
    // staleness 2 from the third batch on (the first two were sampled before any update)
    assert.deepEqual(
      ahead.res.run.history.map((h) => h["async/staleness"]),
      [0, 1, 2, 2],
    );
    // with learning, staleness 1: batch k was sampled by the weights of step k - 1, so its sampling log-probs differ
    // from the training ones and the correction weights (sequence_mask, cap 3) are logged
    const learn = await run(1, ones);
    const h = learn.res.run.history as Record<string, number>[];
    assert.deepEqual(
      h.map((m) => m["async/staleness"]),
      [0, 1, 1, 1],
    );
    assert.ok(h[0]["sampling/sampling_logp_difference/mean"] < 1e-4, "the first batch is on-policy");
    assert.ok(
      h[2]["sampling/sampling_logp_difference/mean"] > 1e-4,
      `later batches are off-policy: ${h[2]["sampling/sampling_logp_difference/mean"]}`,
    );
    for (const m of h) assert.ok(m["sampling/importance_sampling_ratio/mean"] > 0 && m["sampling/importance_sampling_ratio/mean"] <= 3);
  });

  test("against a remote nexus serve, staleness 1 (requests in flight during updates) trains bit for bit like staleness 0", async (t) => {
    const served = tinyModel(4);
    const server = await startServer({ model: served, tokenizer: TOK, port: 0, host: "127.0.0.1" });
    t.after(() => server.close());
    const run = async (maxOffPolicySteps: number) => {
      const model = tinyModel(4);
      const res = await trainGrpo({
        model,
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [ones],
        config: { ...base, maxSteps: 3, generatorUrl: server.url, maxOffPolicySteps, importanceSamplingCorrection: "token_truncate" },
        quiet: true,
      });
      return { model, history: res.run.history };
    };
    const a = await run(0);
    const b = await run(1);
    for (const [[n, p], [, q]] of [...a.model.namedParameters()].map((x, i) => [x, [...b.model.namedParameters()][i]] as const)) {
      assert.ok(
        p.hostData().every((v, i) => v === q.hostData()[i]),
        `${n} differs`,
      );
    }
    assert.deepEqual(b.history.map(strip), a.history.map(strip));
    assert.ok((a.history[2] as Record<string, number>)["sampling/importance_sampling_ratio/mean"] > 0);
  });
});

describe("asynchronous rollouts learn", () => {
  /** Mean number of "1"s per completion on held-out prompts (16 samples each, temperature 1, a fixed seed). */
  const heldOutOnes = async (m: CausalLM) => {
    const prompts = ["0=", "11=", "0+0=", "1+10="].flatMap((p) => Array.from({ length: 16 }, () => TOK.encode(p)));
    const out = await sampleCompletions({ kind: "local", model: m }, prompts, {
      maxCompletionLength: 5,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      rng: new Rng(77),
      tokenizer: TOK,
      eosTokenId: TOK.eosTokenId,
    });
    return out.reduce((a, c) => a + [...c.text].filter((x) => x === "1").length, 0) / out.length;
  };

  test("GRPO two batches ahead (maxOffPolicySteps 2, sequence_mask correction) raises the held-out reward like synchronous GRPO", async () => {
    const run = async (maxOffPolicySteps: number) => {
      const model = tinyModel(5);
      const res = await trainGrpo({
        model,
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [ones],
        config: { ...base, maxSteps: 16, maxOffPolicySteps, seed: 9 },
        quiet: true,
      });
      return { gain: (await heldOutOnes(model)) - before, history: res.run.history as Record<string, number>[] };
    };
    const before = await heldOutOnes(tinyModel(5));
    const sync = await run(0);
    const ahead = await run(2);
    console.log(`async learning: held-out ones ${before.toFixed(3)}; gain sync ${sync.gain.toFixed(3)}, 2 ahead ${ahead.gain.toFixed(3)}`);
    assert.ok(
      ahead.history.slice(2).every((m) => m["async/staleness"] === 2),
      "trained on batches 2 steps old",
    );
    assert.ok(
      ahead.history.slice(2).every((m) => m["sampling/sampling_logp_difference/mean"] > 0),
      "off-policy",
    );
    assert.ok(ahead.gain > 2, `the asynchronous run learns: held-out ones +${ahead.gain}`);
    assert.ok(ahead.gain > 0.6 * sync.gain, `about as well as synchronous: ${ahead.gain} vs ${sync.gain}`);
  });
});

describe("DAPO dynamic sampling", () => {
  test("kept groups keep their first scores (one reward call per completion); the logged metrics describe the trained batch", async () => {
    let scored = 0;
    const byPrompt: RewardFn = namedReward("by_prompt", (a) => {
      scored += a.completions.length;
      return a.prompts.map((p, i) => (p.startsWith("1") ? [...a.completions[i]].length : 0));
    });
    const trained: GenerationBatch[] = [];
    const res = await trainGrpo({
      model: tinyModel(6),
      tokenizer: TOK,
      data: [{ prompt: "0+1=" }, { prompt: "0=" }, { prompt: "1+1=" }, { prompt: "10=" }],
      rewardFuncs: [byPrompt],
      config: { ...base, maxSteps: 2, dynamicSampling: true, dynamicSamplingMaxRounds: 3 },
      quiet: true,
      onBatch: (b) => trained.push(b),
    });
    const h = res.run.history as Record<string, number>[];
    const generated = h.reduce((a, m) => a + m["dynamic_sampling/generated_groups"], 0);
    assert.equal(scored, generated * 4, "every sampled completion was scored exactly once");
    for (const [k, b] of trained.entries()) {
      const total = (b.rewards as { total: number[] }).total;
      assert.ok(b.rollout.prompts.every((p) => p.promptText.startsWith("1")));
      assert.equal(h[k]["dynamic_sampling/kept_groups"], b.rollout.prompts.length);
      assert.ok(Math.abs(h[k].reward - total.reduce((x, y) => x + y, 0) / total.length) < 1e-12, "reward is the trained batch's mean");
      assert.equal(h[k].frac_reward_zero_std, 0, "the trained batch has no zero-signal group");
    }
  });

  test("steps without any signal still log, evaluate and checkpoint (and resume past them)", async () => {
    const out = tmp();
    let evaluated = 0;
    const res = await trainGrpo({
      model: tinyModel(2),
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [constant],
      config: { ...base, maxSteps: 3, dynamicSampling: true, dynamicSamplingMaxRounds: 2, saveSteps: 1, evalSteps: 1, saveTotalLimit: 3 },
      outputDir: out,
      quiet: true,
      evaluate: () => {
        evaluated++;
        return { probe: 1 };
      },
    });
    assert.equal(res.run.step, 3);
    const rows = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      rows.filter((r) => r.skipped === 1).map((r) => r.step),
      [1, 2, 3],
    );
    assert.equal(evaluated, 3);
    for (const s of [1, 2, 3]) assert.ok(existsSync(join(out, `checkpoint-${s}`, "trainer_state.json")), `checkpoint-${s}`);
    assert.equal(rows[0]["dynamic_sampling/kept_groups"], 0);
  });
});

describe("online trainers: config, rewards, evaluation", () => {
  test("a preset fills only fields the user did not set (an explicit default stays)", () => {
    const dr = resolveGrpoTrainConfig({ preset: "dr_grpo", scaleRewards: "group" });
    assert.deepEqual([dr.lossType, dr.scaleRewards], ["dr_grpo", "group"]);
    const dapo = resolveGrpoTrainConfig({ preset: "dapo", maskTruncatedCompletions: false, lossType: "dapo" });
    assert.deepEqual([dapo.maskTruncatedCompletions, dapo.epsilonHigh, dapo.dynamicSampling], [false, 0.28, true]);
    const cispo = resolveGrpoTrainConfig({ preset: "cispo" });
    assert.deepEqual([cispo.lossType, cispo.epsilonHigh], ["cispo", 5]);
    assert.equal(resolveGrpoTrainConfig({ preset: "reinforce_pp_baseline" }).advantageEstimator, "reinforce_pp_baseline");
    assert.throws(() => resolveGrpoTrainConfig({ preset: "dpo" }), /preset/);
  });

  test("GRPO takes a reward model in its weighted mix; held-out reward is evaluated on evalData", async () => {
    const rm = new SequenceClassifier(arithConfig(), { rng: new Rng(5) });
    const res = await trainGrpo({
      model: tinyModel(3),
      tokenizer: TOK,
      data: PROMPTS,
      evalData: [{ prompt: "11=" }, { prompt: "0+0=" }],
      rewardFuncs: [ones],
      rewardModel: rm,
      config: { ...base, maxSteps: 2, evalSteps: 1, rewardWeights: [1, 0.5], evalNumGenerations: 2 },
      quiet: true,
    });
    const h = res.run.history as Record<string, number>[];
    const train = h.filter((m) => typeof m.loss === "number");
    for (const m of train) {
      assert.ok(Number.isFinite(m["rewards/reward_model/mean"]));
      assert.ok(Math.abs(m.reward - (m["rewards/ones/mean"] + 0.5 * m["rewards/reward_model/mean"])) < 1e-6, "weighted sum of the sources");
    }
    const evals = h.filter((m) => typeof m.eval_reward === "number");
    assert.equal(evals.length, 2);
    for (const m of evals) assert.ok(Number.isFinite(m["eval_rewards/ones/mean"]) && Number.isFinite(m["eval_completions/mean_length"]));
    // GRPO's progress line shows the reward
    const { step: _s, ...logged } = train[0];
    assert.match(new MetricsLogger(null, { label: "grpo", total: 2 }).progressLine(1, logged), /\[grpo\] step 1\/2 loss \S+ reward -?\d/);
  });

  test("trainers without a reward refuse evalData with the reason; accuracy refuses rows without a gold column", async () => {
    await assert.rejects(
      trainSpin({
        model: tinyModel(1),
        tokenizer: TOK,
        data: [{ prompt: "1=", completion: "1" }],
        evalData: [{ prompt: "1=", completion: "1" }],
        refModel: frozenCopy(tinyModel(1)),
        config: { maxSteps: 1 },
        quiet: true,
      }),
      /\[spin\] evalData is not supported: SPIN has no reward to evaluate/,
    );
    await assert.rejects(
      trainGrpo({
        model: tinyModel(1),
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [accuracyReward()],
        config: { ...base, maxSteps: 1 },
        quiet: true,
      }),
      /accuracy_reward\] the rows have no gold answer: add an "answer" or "solution" column/,
    );
  });
});
