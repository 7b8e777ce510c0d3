// RLOO trainer invariants on a tiny Llama: TRL's defaults; the k1 KL enters the reward (R - beta * sum(old - ref))
// before the leave-one-out baseline; the loss is the sequence-level clipped ratio on summed log-probs (checked
// against an independent recomputation); equal shaped rewards give zero gradient; LoRA trains adapters only.
// Not here: the advantage formula itself (losses_fixtures.test.ts).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CausalLM } from "../src/models/index.js";
import { applyLora } from "../src/models/lora.js";
import { namedReward } from "../src/rewards/types.js";
import type { MicroBatch } from "../src/train/online_loop.js";
import { RLOO_RULES, RLOO_SCHEMA, rlooRewardAdvantages, trainRloo } from "../src/train/rloo.js";
import { resolveTrainerConfig } from "../src/train/trainer_io.js";
import { onesReward as ones, ARITH_PROMPTS as PROMPTS, snapshot, ARITH_TOK as TOK, tinyLlama } from "./helpers/tiny_model.js";

/** The GRPO tests' policy, except that its config names no pad_token_id. */
const tinyModel = (seed = 0): CausalLM => tinyLlama(TOK, seed, { eos: true });
const base = { maxSteps: 2, numGenerations: 4, perDeviceTrainBatchSize: 8, maxCompletionLength: 5, learningRate: 1e-2, seed: 5 };

describe("RLOO trainer", () => {
  test("TRL defaults and config rules", () => {
    const c = resolveTrainerConfig("rloo", RLOO_SCHEMA, {}, RLOO_RULES);
    assert.deepEqual(
      [c.numGenerations, c.beta, c.epsilon, c.epsilonHigh, c.numIterations, c.normalizeAdvantages, c.learningRate],
      [2, 0.05, 0.2, null, 1, false, 1e-6],
    );
    assert.throws(
      () => resolveTrainerConfig("rloo", RLOO_SCHEMA, { numGenerations: 3, perDeviceTrainBatchSize: 8 }, RLOO_RULES),
      /whole groups/,
    );
  });

  test("shaped reward and leave-one-out advantages by hand", () => {
    const c = resolveTrainerConfig("rloo", RLOO_SCHEMA, { numGenerations: 2, beta: 0.5, perDeviceTrainBatchSize: 4 }, RLOO_RULES);
    // R' = R - 0.5 * kl: [1 - 0.5, 0 - 1, 2 - 0, 2 + 0.5]; advantages r_i - r_other
    const { shaped, advantages } = rlooRewardAdvantages([1, 0, 2, 2], [1, 2, 0, -1], c);
    assert.deepEqual(shaped, [0.5, -1, 2, 2.5]);
    assert.deepEqual(Array.from(advantages), [1.5, -1.5, -0.5, 0.5]);
    const n = rlooRewardAdvantages([1, 0, 2, 2], [1, 2, 0, -1], { ...c, normalizeAdvantages: true, rewardClipRange: [0, 1] });
    // clip first: [1, 0, 1, 1] - 0.5 kl = [0.5, -1, 1, 1.5]; loo: [1.5, -1.5, -0.5, 0.5]; z-score (mean 0, std ~1.29)
    const sd = Math.sqrt((1.5 ** 2 * 2 + 0.5 ** 2 * 2) / 3);
    assert.ok(Array.from(n.advantages).every((x, i) => Math.abs(x - [1.5, -1.5, -0.5, 0.5][i] / (sd + 1e-4)) < 1e-6));
  });

  test("loss is the sequence-level clipped ratio; KL enters the reward; the reference never moves", async () => {
    const model = tinyModel(1);
    const seen: { loss: number; want: number }[] = [];
    let klMetric = Number.NaN;
    const res = await trainRloo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [ones],
      config: { ...base, numIterations: 2, beta: 0.2, epsilon: 0.05, loggingSteps: 1 },
      quiet: true,
      onBatch: (b) => {
        assert.ok(b.old !== null && b.ref !== null);
        // the first batch: policy == reference, so the KL is exactly zero
        if (Number.isNaN(klMetric)) klMetric = b.metrics.kl;
      },
      onMicroBatch: (b, _rows, out) => {
        const mb = out.micro as MicroBatch;
        const a = out.advantages!.hostData();
        const tc = mb.packed.completionWidth;
        let want = 0;
        mb.rows.forEach((_, j) => {
          let lr = 0;
          for (let t = 0; t < tc; t++)
            lr += mb.mask.hostData()[j * tc + t] * (mb.logps.hostData()[j * tc + t] - mb.old!.hostData()[j * tc + t]);
          const rho = Math.exp(lr);
          want += -Math.min(rho * a[j], Math.min(Math.max(rho, 0.95), 1.05) * a[j]);
        });
        const numMicroBatches = Math.ceil(b.rollout.completionIds.length / base.perDeviceTrainBatchSize);
        seen.push({ loss: out.loss.item(), want: want / mb.rows.length / numMicroBatches });
      },
    });
    assert.equal(klMetric, 0);
    assert.equal(seen.length, 2);
    for (const s of seen) assert.ok(Math.abs(s.loss - s.want) < 1e-5, `${s.loss} vs ${s.want}`);
    assert.ok(seen.some((s) => s.loss !== 0));
    const m = res.run.history[1] as Record<string, number>;
    for (const k of ["loss", "reward", "reward_std", "rewards/ones/mean", "entropy", "clip_ratio/region_mean", "kl", "rlhf_reward"]) {
      assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
    }
  });

  test("equal rewards and beta 0: zero gradient; LoRA: only adapters move", async () => {
    const model = tinyModel(2);
    const before = snapshot(model);
    const lora = applyLora(model, { r: 4, targetModules: ["q_proj", "v_proj"] }, { seed: 1 });
    const adaptersBefore = lora.trainableParameters().map((t) => Float32Array.from(t.hostData()));
    await trainRloo({
      model: lora,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [namedReward("c", (a) => a.completions.map(() => 2))],
      config: { ...base, beta: 0 },
      quiet: true,
      onMicroBatch: () => {
        for (const t of lora.trainableParameters()) assert.ok((t.grad?.hostData() ?? []).every((x: number) => x === 0));
      },
    });
    for (const [i, t] of lora.trainableParameters().entries()) assert.deepEqual(t.hostData(), adaptersBefore[i]);
    // with a signal and beta > 0 (reference = base with adapters off), adapters move and the base does not
    await trainRloo({ model: lora, tokenizer: TOK, data: PROMPTS, rewardFuncs: [ones], config: { ...base, beta: 0.1 }, quiet: true });
    assert.ok(lora.trainableParameters().some((t, i) => t.hostData().some((x, k) => x !== adaptersBefore[i][k])));
    for (const [name, t] of model.namedParameters()) assert.deepEqual(t.hostData(), before.get(name), `base ${name} moved`);
  });
});
