// PPO trainer invariants on a tiny Llama and a char tokenizer: the per-token KL penalty equals
// -klCoef * (logp - ref) exactly, the missing-EOS penalty, value-loss clipping on a hand example, zero GAE
// advantages give a zero policy gradient, and a few PPO steps move policy and value weights while the frozen
// reference stays bitwise identical.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ppoLoss } from "../src/losses/ppo.js";
import { namedReward } from "../src/rewards/types.js";
import { startServer } from "../src/serve/server.js";
import { Tensor, tensor } from "../src/tensor/index.js";
import { frozenCopy } from "../src/train/policy.js";
import { ppoAdvantages, ppoRewards, trainPpo } from "../src/train/ppo.js";
import { type Rollout, scoreRollout } from "../src/train/rollout.js";
import { assertClose } from "./helpers/check.js";
import { snapshot, TOK, tinyModel } from "./helpers/tiny_preference.js";

const PROMPTS = ["ab", "cd", "ba", "dc", "aa", "bb", "cc", "dd"].map((prompt) => ({ prompt }));
const countA = namedReward("count_a", ({ completions }) => completions.map((c) => [...c].filter((ch) => ch === "a").length));
const constant = namedReward("constant", ({ completions }) => completions.map(() => 1));

const f = Math.fround;

describe("PPO rewards", () => {
  test("the per-token KL penalty is -klCoef * (logp - ref) on completion tokens, score added at the last real token", () => {
    const lp = [0, -1, -2, -0.5, 0, -0.3, -0.7, 0];
    const ref = [0, -1.5, -1, -0.25, 0, -0.1, -0.9, 0];
    const mask = [0, 1, 1, 1, 0, 1, 1, 0];
    const out = ppoRewards({
      logprobs: tensor(lp, { shape: [2, 4] }),
      refLogprobs: tensor(ref, { shape: [2, 4] }),
      scores: [2, -1],
      mask: tensor(mask, { shape: [2, 4] }),
      klCoef: 0.05,
      klEstimator: "k1",
    });
    const want = lp.map((x, i) => (mask[i] ? f(f(f(x) - f(ref[i])) * f(-0.05)) : 0));
    assert.deepEqual(
      Array.from(out.nonScoreReward.hostData(), (x) => x + 0),
      want,
    ); // + 0: -0 -> 0
    const rewards = [...want];
    rewards[3] = f(rewards[3] + 2);
    rewards[6] = f(rewards[6] - 1);
    assert.deepEqual(
      Array.from(out.rewards.hostData(), (x) => x + 0),
      rewards,
    );
    // e.g. token 1 of row 0: -0.05 * (-1 - -1.5) = -0.025
    assertClose(out.nonScoreReward.hostData()[1], -0.025, { atol: 1e-8 });
  });

  test("missing-EOS penalty: subtracted only from completions that ran out of tokens; stopTokenId ends completions", async () => {
    const rollout: Rollout = {
      prompts: [{ index: 0, prompt: "ab", promptText: "ab", promptIds: [2], columns: {} }],
      numGenerations: 3,
      promptIds: [[2], [2], [2]],
      completionIds: [[4], [4, 5], [6]],
      completions: ["a", "ab", "c"],
      finishReasons: ["eos", "length", "stop"],
      samplingLogprobs: [[0], [0, 0], [0]],
      tokenMasks: null,
      envRewards: null,
      envInfos: null,
    };
    assert.deepEqual((await scoreRollout(rollout, [constant], null, 0.5)).total, [1, 0.5, 1]);
    assert.deepEqual((await scoreRollout(rollout, [constant], null, null)).total, [1, 1, 1]);
    const seen: number[][] = [];
    await trainPpo({
      model: tinyModel(1),
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [constant],
      config: { maxCompletionLength: 6, temperature: 1, missingEosPenalty: 1, stopTokenId: 3, seed: 3, maxSteps: 1 },
      quiet: true,
      onBatch: (b) => {
        seen.push(...b.rollout.completionIds);
        const total = (b.rewards as { total: number[] }).total;
        for (const [i, f] of b.rollout.finishReasons.entries()) assert.equal(total[i], f === "length" ? 0 : 1);
      },
    });
    assert.ok(
      seen.some((c) => c.includes(3)),
      "some completion reaches the stop id",
    );
    for (const c of seen) if (c.includes(3)) assert.equal(c.indexOf(3), c.length - 1, "a completion ends at its first stop id");
  });

  test("value clipping on a hand example: 0.5 * mean(max((V-R)^2, (clip(V)-R)^2)) and its gradient", () => {
    const values = tensor([1.5, 0], { shape: [1, 2], requiresGrad: true });
    const out = ppoLoss(
      {
        logprobs: tensor([0, 0], { shape: [1, 2] }),
        oldLogprobs: tensor([0, 0], { shape: [1, 2] }),
        values,
        oldValues: tensor([1, 0.1], { shape: [1, 2] }),
        advantages: tensor([0, 0], { shape: [1, 2] }),
        returns: tensor([2, 0.5], { shape: [1, 2] }),
      },
      { whitenAdvantages: false },
    );
    // row 0: V moved 0.5 > 0.2, clipped to 1.2: max(0.25, 0.64) = 0.64; row 1 inside the clip: 0.25
    assertClose(out.vfLoss.item(), 0.5 * ((0.64 + 0.25) / 2), { atol: 1e-6 });
    assertClose(out.vfClipfrac.item(), 0.5);
    assertClose(out.loss.item(), 0.1 * 0.2225, { atol: 1e-7 });
    out.loss.backward();
    // the clipped element gets no gradient; the other 0.1 * 0.5 * (1/2) * 2 * (0 - 0.5) = -0.025
    assertClose(values.grad as Tensor, [[0, -0.025]], { atol: 1e-7 });
  });

  test("zero GAE advantages (equal scores, values = returns) give an exactly zero policy gradient", () => {
    const mask = tensor([1, 1, 1, 0, 1, 1, 0, 0], { shape: [2, 4] });
    const lp = tensor([-1, -2, -0.5, 0, -1.5, -0.2, 0, 0], { shape: [2, 4] });
    // V_t = 1 on every completion token, scores 1, klCoef 0: delta_t = V_{t+1} - V_t = 0 inside, 1 - V_last = 0 at the end
    const a = ppoAdvantages(
      { logprobs: lp, refLogprobs: lp, values: new Tensor(Float32Array.from(mask.hostData()), mask.shape), scores: [1, 1], mask },
      { klCoef: 0, klEstimator: "k1", whitenRewards: false, gamma: 1, lam: 0.95 },
    );
    assert.ok(a.advantages.hostData().every((x) => x === 0));
    assertClose(a.returns, mask);
    const logprobs = tensor(Array.from(lp.hostData()), { shape: [2, 4], requiresGrad: true });
    const values = tensor(
      Array.from(mask.hostData(), (x) => x * 0.5),
      { shape: [2, 4], requiresGrad: true },
    );
    const out = ppoLoss(
      { logprobs, oldLogprobs: lp, values, oldValues: mask, advantages: a.advantages, returns: a.returns, mask },
      { whitenAdvantages: false },
    );
    assert.equal(out.pgLoss.item(), 0);
    out.loss.backward();
    assert.ok((logprobs.grad as Tensor).hostData().every((g) => g === 0));
    assert.ok(
      (values.grad as Tensor).hostData().some((g) => g !== 0),
      "the value model still learns from V - R",
    );
  });
});

describe("PPO training", () => {
  test("a few PPO steps on a rule reward move policy and value weights; the reference stays bitwise unchanged", async () => {
    const model = tinyModel(3);
    const ref = frozenCopy(model);
    const ref0 = snapshot(ref);
    const pol0 = snapshot(model);
    const res = await trainPpo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [countA],
      refModel: ref,
      config: {
        learningRate: 1e-2,
        perDeviceTrainBatchSize: 2,
        gradientAccumulationSteps: 2,
        numMiniBatches: 2,
        numPpoEpochs: 2,
        maxCompletionLength: 6,
        temperature: 1,
        maxSteps: 2,
        missingEosPenalty: 0.5,
        loggingSteps: 1,
        seed: 11,
        valueModelInit: "policy",
      },
      quiet: true,
    });
    assert.equal(res.run.step, 2);
    for (const [n, p] of ref.namedParameters()) assert.deepEqual(p.hostData(), ref0.get(n), `reference ${n} changed`);
    const changed = (before: Map<string, Float32Array>, params: Iterable<[string, Tensor]>) =>
      [...params].filter(([n, p]) => p.hostData().some((v, i) => v !== before.get(n)?.[i])).length;
    assert.equal(changed(pol0, model.namedParameters()), model.parameters().length, "every policy weight moves");
    const v0 = snapshot(tinyModel(3));
    assert.ok(
      [...res.valueModel.namedParameters()].some(([n, p]) => n.startsWith("model.") && p.hostData().some((v, i) => v !== v0.get(n)?.[i])),
      "the value model's backbone moved away from the starting policy's",
    );
    const last = res.run.history.at(-1) ?? {};
    for (const k of [
      "objective/kl",
      "objective/entropy",
      "objective/non_score_reward",
      "objective/rlhf_reward",
      "objective/scores",
      "policy/approxkl_avg",
      "policy/clipfrac_avg",
      "loss/policy_avg",
      "loss/value_avg",
      "val/clipfrac_avg",
      "policy/entropy_avg",
      "val/ratio",
      "reward",
    ]) {
      assert.equal(typeof last[k], "number", `metric ${k}`);
      assert.ok(Number.isFinite(last[k] as number), `metric ${k} = ${last[k]}`);
    }
    // the first minibatch of the first epoch has ratio 1; over two epochs it stays near 1
    assert.ok(Math.abs((last["val/ratio"] as number) - 1) < 0.5);
  });
});

describe("PPO with a remote generator and dynamic sampling", () => {
  test("rollouts come from nexus serve (its log-probs match the policy's), groups without a signal are dropped, correction is logged", async (t) => {
    const served = tinyModel(8);
    const server = await startServer({ model: served, tokenizer: TOK, port: 0, host: "127.0.0.1" });
    t.after(() => server.close());
    const policy = tinyModel(8);
    let checked = 0;
    const res = await trainPpo({
      model: policy,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [countA],
      config: {
        maxSteps: 2,
        numGenerations: 2,
        perDeviceTrainBatchSize: 4,
        maxCompletionLength: 5,
        temperature: 1,
        numPpoEpochs: 1,
        learningRate: 1e-2,
        loggingSteps: 1,
        seed: 2,
        valueModelInit: "policy",
        generatorUrl: server.url,
        dynamicSampling: true,
        dynamicSamplingMaxRounds: 3,
      },
      quiet: true,
      onBatch: (b) => {
        const total = (b.rewards as { total: number[] }).total;
        for (let k = 0; k < total.length; k += 2) assert.notEqual(total[k], total[k + 1], "only groups with a signal are kept");
        if (checked > 0) return;
        for (const [i, lp] of b.rollout.samplingLogprobs.entries()) {
          for (const [j, v] of lp.entries()) assert.ok(Math.abs(v - (b.old as Float32Array[])[i][j]) < 1e-4, `completion ${i} token ${j}`);
        }
        checked++;
      },
    });
    const h = res.run.history as Record<string, number>[];
    assert.equal(checked, 1);
    for (const m of h) {
      assert.ok(m["dynamic_sampling/kept_groups"] >= 1);
      assert.ok(Number.isFinite(m["sampling/importance_sampling_ratio/mean"]));
    }
  });
});
