// PPO trainer invariants on a tiny Llama and a char tokenizer: the per-token KL penalty equals
// -klCoef * (logp - ref) exactly, the missing-EOS penalty, value-loss clipping on a hand example, zero GAE
// advantages give a zero policy gradient, and a few PPO steps move policy and value weights while the frozen
// reference stays bitwise identical.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ppoLoss } from "../src/losses/ppo.js";
import { namedReward } from "../src/rewards/types.js";
import { fromArray, type Tensor, tensor } from "../src/tensor/index.js";
import { applyMissingEosPenalty } from "../src/train/online_policy.js";
import { PpoTrainer, ppoRewards } from "../src/train/ppo.js";
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

  test("missing-EOS penalty: subtracted only from completions without EOS", async () => {
    assert.deepEqual(applyMissingEosPenalty([1, 2, 3], [true, false, false], 0.5), [1, 1.5, 2.5]);
    assert.deepEqual(applyMissingEosPenalty([1, 2], [false, false], null), [1, 2]);
    const t = new PpoTrainer({
      model: tinyModel(1),
      tokenizer: TOK,
      rows: PROMPTS,
      rewardFuncs: [constant],
      config: { responseLength: 3, temperature: 1, missingEosPenalty: 1, stopTokenId: 3, seed: 3 },
    });
    const b = await t.rollout(PROMPTS);
    const eos = b.samples.map((s) => s.hasEos);
    assert.ok(eos.some((e) => e) && eos.some((e) => !e), `want both kinds of completions, got ${eos}`);
    assert.deepEqual(
      b.scores,
      eos.map((e) => (e ? 1 : 0)),
    );
    for (const s of b.samples) assert.equal(s.hasEos, s.completionIds.includes(3) || s.completionIds.includes(TOK.eosTokenId));
  });
});

describe("PPO losses", () => {
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

  test("zero GAE advantages (equal scores, values = returns) give an exactly zero policy gradient", async () => {
    const t = new PpoTrainer({
      model: tinyModel(2),
      tokenizer: TOK,
      rows: PROMPTS,
      rewardFuncs: [constant],
      config: { responseLength: 4, klCoef: 0, seed: 5 },
    });
    const b = await t.rollout(PROMPTS.slice(0, 4));
    const mask = b.batch.lossMask;
    // V_t = 1 on every completion token: delta_t = V_{t+1} - V_t = 0 inside, 1 - V_last = 0 at the end
    const z = t.withAdvantages({ ...b, values: fromArray(Float32Array.from(mask.hostData()), mask.shape) });
    assert.ok(z.advantages.hostData().every((a) => a === 0));
    assertClose(z.returns, mask);
    const { out } = t.microLoss(z, [0, 1, 2, 3]);
    assert.equal(out.pgLoss.item(), 0);
    out.loss.backward();
    let policyGrads = 0;
    for (const p of t.policy.parameters()) {
      for (const g of p.grad?.hostData() ?? []) assert.equal(g, 0);
      policyGrads++;
    }
    assert.ok(policyGrads > 0);
    const valueGradNorm = t.valueModel.parameters().reduce((a, p) => a + (p.grad?.hostData() ?? []).reduce((s, g) => s + g * g, 0), 0);
    assert.ok(valueGradNorm > 0, "the value model still learns from V - R");
  });
});

describe("PPO training", () => {
  test("a few PPO steps on a rule reward move policy and value weights; the reference stays bitwise unchanged", async () => {
    const model = tinyModel(3);
    const t = new PpoTrainer({
      model,
      tokenizer: TOK,
      rows: PROMPTS,
      rewardFuncs: [countA],
      config: {
        learningRate: 1e-2,
        perDeviceTrainBatchSize: 2,
        gradientAccumulationSteps: 2,
        numMiniBatches: 2,
        numPpoEpochs: 2,
        responseLength: 6,
        temperature: 1,
        maxSteps: 2,
        missingEosPenalty: 0.5,
        seed: 11,
      },
      quiet: true,
    });
    const ref = t.frozenReference;
    assert.ok(ref !== null);
    const ref0 = snapshot(ref);
    const pol0 = snapshot(model);
    const val0 = new Map([...t.valueModel.namedParameters()].map(([n, p]) => [n, Float32Array.from(p.hostData())]));
    const run = await t.train();
    assert.equal(run.step, 2);
    for (const [n, p] of ref.namedParameters()) assert.deepEqual(p.hostData(), ref0.get(n), `reference ${n} changed`);
    const changed = (before: Map<string, Float32Array>, params: Iterable<[string, Tensor]>) =>
      [...params].filter(([n, p]) => p.hostData().some((v, i) => v !== before.get(n)?.[i])).length;
    assert.equal(changed(pol0, model.namedParameters()), model.parameters().length, "every policy weight moves");
    assert.ok(changed(val0, t.valueModel.namedParameters()) > 0);
    const last = run.history.at(-1) ?? {};
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
      "eps",
    ]) {
      assert.equal(typeof last[k], "number", `metric ${k}`);
      assert.ok(Number.isFinite(last[k] as number), `metric ${k} = ${last[k]}`);
    }
    console.log(
      `PPO step 2: ${["objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg", "policy/approxkl_avg", "policy/clipfrac_avg", "val/ratio"].map((k) => `${k} ${(last[k] as number).toPrecision(4)}`).join(", ")}`,
    );
    // first-epoch ratio is 1 on the first minibatch; over two epochs it stays near 1
    assert.ok(Math.abs((last["val/ratio"] as number) - 1) < 0.5);
  });
});
