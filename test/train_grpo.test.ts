// GRPO trainer invariants on a tiny Llama (CharTokenizer, D 32, 2 layers): equal rewards in every group give an
// exactly zero gradient (beta 0); GSPO equals GRPO when completions are one token; all-truncated completions
// under maskTruncatedCompletions give zero loss and no update; numIterations 2 keeps old log-probs fixed; the
// TRL metrics are present and in range; process supervision feeds step rewards through processAdvantages;
// presets, config rules, the reward CLI loader. Not here: the loss formulas (losses_fixtures.test.ts).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadRewardFunctions } from "../src/cli/reward_loading.js";
import type { CharTokenizer } from "../src/io/char_tokenizer.js";
import type { CausalLM } from "../src/models/index.js";
import { namedReward, type RewardFn } from "../src/rewards/types.js";
import { completionSteps, GRPO_PRESETS, resolveGrpoTrainConfig, type StepRewardFn, trainGrpo } from "../src/train/grpo.js";
import type { MicroBatch, MicroLoss } from "../src/train/online_loop.js";
import { packRollout } from "../src/train/rollout.js";
import {
  constantReward as constant,
  onesReward as ones,
  ARITH_PROMPTS as PROMPTS,
  snapshot,
  ARITH_TOK as TOK,
  arithModel as tinyModel,
} from "./helpers/tiny_model.js";

const base = { maxSteps: 1, numGenerations: 4, perDeviceTrainBatchSize: 8, maxCompletionLength: 5, learningRate: 1e-2, seed: 3 };

function gradsOf(m: CausalLM): Map<string, Float32Array> {
  return new Map([...m.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.grad?.hostData() ?? new Float32Array(t.size))]));
}

describe("GRPO trainer", () => {
  test("beta 0 and equal rewards in every group: every parameter gradient is exactly zero, nothing moves", async () => {
    const model = tinyModel();
    const before = snapshot(model);
    let checked = 0;
    let advAbs = 0;
    await trainGrpo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [constant],
      config: { ...base, maxSteps: 2 },
      quiet: true,
      onMicroBatch: (_b, _mb, out) => {
        for (const [name, g] of gradsOf(model)) {
          assert.ok(
            g.every((x) => x === 0),
            `${name} has a nonzero gradient`,
          );
          checked++;
        }
        advAbs += (out.advantages!.hostData() as Float32Array).reduce((a, x) => a + Math.abs(x), 0);
      },
    });
    assert.equal(advAbs, 0);
    assert.ok(checked > 10);
    for (const [name, t] of model.namedParameters()) assert.deepEqual(t.hostData(), before.get(name), `${name} moved`);
  });

  test("GSPO equals GRPO when every completion is one token (loss and gradients, over two passes)", async () => {
    const run = async (level: "token" | "sequence") => {
      const model = tinyModel(1);
      const losses: number[] = [];
      const grads: Map<string, Float32Array>[] = [];
      await trainGrpo({
        model,
        tokenizer: TOK,
        data: PROMPTS,
        rewardFuncs: [ones],
        config: { ...base, maxSteps: 2, numIterations: 2, maxCompletionLength: 1, importanceSamplingLevel: level, epsilon: 0.01 },
        quiet: true,
        onMicroBatch: (_b, _rows, out) => {
          const mb = out.micro as MicroBatch;
          assert.equal(mb.packed.completionWidth, 1);
          losses.push(out.loss.item());
          grads.push(gradsOf(model));
        },
      });
      return { losses, grads, params: snapshot(model) };
    };
    const grpo = await run("token");
    const gspo = await run("sequence");
    assert.equal(grpo.losses.length, 2);
    assert.ok(
      grpo.losses.some((l) => l !== 0),
      "the loss should not be trivially zero",
    );
    for (let i = 0; i < grpo.losses.length; i++) {
      assert.ok(Math.abs(grpo.losses[i] - gspo.losses[i]) <= 1e-7, `pass ${i}: ${grpo.losses[i]} vs ${gspo.losses[i]}`);
      for (const [name, g] of grpo.grads[i]) {
        const h = gspo.grads[i].get(name)!;
        for (let k = 0; k < g.length; k++) assert.ok(Math.abs(g[k] - h[k]) <= 1e-6, `${name}[${k}] ${g[k]} vs ${h[k]}`);
      }
    }
    for (const [name, p] of grpo.params)
      assert.ok(
        p.every((x, k) => Math.abs(x - gspo.params.get(name)![k]) < 1e-6),
        name,
      );
  });

  test("all-truncated completions with maskTruncatedCompletions: zero loss, zero gradient, no parameter change", async () => {
    const model = tinyModel(2);
    const before = snapshot(model);
    // a tokenizer view without EOS: every completion runs to maxCompletionLength
    const noEos = Object.create(TOK, { eosTokenId: { value: null } }) as CharTokenizer;
    const losses: number[] = [];
    let rows = 0;
    await trainGrpo({
      model,
      tokenizer: noEos,
      data: PROMPTS,
      rewardFuncs: [ones],
      config: { ...base, maxSteps: 2, maskTruncatedCompletions: true, lossType: "grpo" },
      quiet: true,
      onBatch: (b) => {
        assert.ok(b.rollout.finishReasons.every((f) => f === "length"));
        assert.ok(new Set(b.rewards.total).size > 1, "rewards should vary so that advantages are nonzero");
        assert.equal(b.activeTokens, 0);
      },
      onMicroBatch: (_b, _rows, out: MicroLoss) => {
        const mb = out.micro as MicroBatch;
        losses.push(out.loss.item());
        rows += mb.rows.length;
        for (const [name, g] of gradsOf(model))
          assert.ok(
            g.every((x) => x === 0),
            `${name} has a nonzero gradient`,
          );
      },
    });
    assert.equal(rows, 16);
    assert.deepEqual(losses, [0, 0]);
    for (const [name, t] of model.namedParameters()) assert.deepEqual(t.hostData(), before.get(name), `${name} moved`);
  });

  test("numIterations 2: old log-probs stay fixed; the ratio is 1 on the first pass and not on the second", async () => {
    const model = tinyModel(3);
    const ratios: number[][] = [];
    let oldRef: Float32Array[] | null = null;
    let oldCopy: number[][] = [];
    await trainGrpo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [ones],
      config: { ...base, maxSteps: 2, numIterations: 2, learningRate: 3e-2 },
      quiet: true,
      onBatch: (b) => {
        oldRef = b.old;
        oldCopy = b.old!.map((r) => Array.from(r));
      },
      onMicroBatch: (b, _rows, out) => {
        const mb = out.micro as MicroBatch;
        assert.equal(b.old, oldRef);
        for (const [i, r] of b.old!.entries()) assert.deepEqual(Array.from(r), oldCopy[i]);
        const tc = mb.packed.completionWidth;
        const r: number[] = [];
        const [md, ld, od] = [mb.mask.hostData(), mb.logps.hostData(), mb.old!.hostData()];
        for (let k = 0; k < mb.mask.size; k++) if (md[k] === 1) r.push(Math.exp(ld[k] - od[k]));
        assert.ok(tc >= 1);
        ratios.push(r);
      },
    });
    assert.equal(ratios.length, 2);
    assert.ok(
      ratios[0].every((x) => Math.abs(x - 1) < 1e-6),
      `first pass ratios ${ratios[0].slice(0, 5)}`,
    );
    assert.ok(
      ratios[1].some((x) => Math.abs(x - 1) > 1e-3),
      `second pass ratios ${ratios[1].slice(0, 5)}`,
    );
  });

  test("metrics: TRL's names are logged and in range (beta > 0 adds kl)", async () => {
    const model = tinyModel(4);
    const res = await trainGrpo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [ones, constant],
      config: { ...base, maxSteps: 2, loggingSteps: 1, beta: 0.1, numIterations: 2 },
      quiet: true,
    });
    assert.equal(res.run.history.length, 2);
    const m = res.run.history[1] as Record<string, number>;
    const keys = [
      "loss",
      "reward",
      "reward_std",
      "rewards/ones/mean",
      "rewards/ones/std",
      "rewards/constant/mean",
      "rewards/constant/std",
      "frac_reward_zero_std",
      "kl",
      "entropy",
      "clip_ratio/low_mean",
      "clip_ratio/high_mean",
      "clip_ratio/region_mean",
      "completions/mean_length",
      "completions/min_length",
      "completions/max_length",
      "completions/clipped_ratio",
      "completions/mean_terminated_length",
      "grad_norm",
      "learning_rate",
    ];
    for (const k of keys) assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
    assert.equal(m["rewards/constant/mean"], 1);
    assert.equal(m["rewards/constant/std"], 0);
    assert.ok(Math.abs(m.reward - (m["rewards/ones/mean"] + 1)) < 1e-9);
    for (const k of [
      "frac_reward_zero_std",
      "clip_ratio/low_mean",
      "clip_ratio/high_mean",
      "clip_ratio/region_mean",
      "completions/clipped_ratio",
    ]) {
      assert.ok(m[k] >= 0 && m[k] <= 1, `${k} = ${m[k]}`);
    }
    assert.ok(m["completions/min_length"] <= m["completions/mean_length"] && m["completions/mean_length"] <= m["completions/max_length"]);
    assert.ok(m["completions/max_length"] <= 5);
    assert.ok(m.entropy > 0 && m.entropy <= Math.log(TOK.vocabSize) + 1e-6);
    assert.ok(m.kl >= 0, `k3 KL is nonnegative, got ${m.kl}`);
    assert.ok(m.reward_std >= 0);
    // with beta 0 there is no kl metric (and no reference model)
    const res0 = await trainGrpo({ model: tinyModel(4), tokenizer: TOK, data: PROMPTS, rewardFuncs: [ones], config: base, quiet: true });
    assert.equal((res0.run.history[0] as Record<string, number>).kl, undefined);
  });

  test("process supervision: step rewards become reverse-cumulative token advantages normalised over the group", async () => {
    // hand example of the step split: "1\n0\n" then EOS → steps "1", "0"; ends at tokens 1 and 3 (EOS joins the last)
    const ids = [...TOK.encode("1\n0\n"), TOK.eosTokenId];
    assert.deepEqual(completionSteps(TOK, ids, "\n"), { steps: ["1", "0"], ends: [1, 4] });
    assert.deepEqual(completionSteps(TOK, TOK.encode("10"), "\n"), { steps: ["10"], ends: [1] });

    const seen: string[][][] = [];
    const fn: StepRewardFn = (a) => {
      seen.push(a.steps);
      return a.steps.map((s) => s.map((x) => [...x].filter((c) => c === "1").length));
    };
    let compared = 0;
    await trainGrpo({
      model: tinyModel(5),
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [ones],
      stepRewardFn: fn,
      config: { ...base, maxCompletionLength: 8, processSupervision: true },
      quiet: true,
      onMicroBatch: (b, _rows, out) => {
        const mb = out.micro as MicroBatch;
        const g = b.rollout.numGenerations;
        const adv = out.advantages!;
        assert.deepEqual(adv.shape, [mb.rows.length, mb.packed.completionWidth]);
        for (let start = 0; start < mb.rows.length; start += g) {
          // the independent oracle: mean / Bessel std over every step reward of the group, then reverse cumsum
          const split = mb.rows.slice(start, start + g).map((i) => completionSteps(TOK, b.rollout.completionIds[i], "\n"));
          const rewards = split.map((s) => s.steps.map((x) => [...x].filter((c) => c === "1").length));
          const all = rewards.flat();
          const mu = all.reduce((x, y) => x + y, 0) / all.length;
          const sd = all.length > 1 ? Math.sqrt(all.reduce((x, y) => x + (y - mu) ** 2, 0) / (all.length - 1)) : 0;
          split.forEach((s, j) => {
            const row = start + j;
            for (let t = 0; t < mb.packed.completionWidth; t++) {
              let want = 0;
              s.ends.forEach((e, k) => {
                if (e >= t) want += (rewards[j][k] - mu) / (sd + 1e-4);
              });
              const got = adv.hostData()[row * mb.packed.completionWidth + t];
              assert.ok(Math.abs(got - want) < 1e-4, `row ${row} token ${t}: ${got} vs ${want}`);
              compared++;
            }
          });
        }
      },
    });
    assert.ok(compared > 8);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].length, 8);
  });

  test("presets fill fields left at defaults; explicit values win; config rules", () => {
    const dapo = resolveGrpoTrainConfig({ preset: "dapo" });
    assert.equal(dapo.lossType, "dapo");
    assert.equal(dapo.epsilonHigh, 0.28);
    assert.equal(dapo.dynamicSampling, true);
    assert.equal(dapo.overlongPenalty, true);
    const dr = resolveGrpoTrainConfig({ preset: "dr_grpo" });
    assert.deepEqual([dr.lossType, dr.scaleRewards], ["dr_grpo", "none"]);
    const gspo = resolveGrpoTrainConfig({ preset: "gspo", epsilon: 0.1 });
    assert.deepEqual([gspo.importanceSamplingLevel, gspo.epsilon, gspo.epsilonHigh], ["sequence", 0.1, 4e-4]);
    assert.ok(Object.isFrozen(GRPO_PRESETS) && Object.isFrozen(GRPO_PRESETS.dapo));
    const d = resolveGrpoTrainConfig({});
    assert.deepEqual([d.lossType, d.beta, d.numGenerations, d.scaleRewards, d.epsilon, d.learningRate], ["dapo", 0, 8, "group", 0.2, 1e-6]);
    assert.throws(() => resolveGrpoTrainConfig({ perDeviceTrainBatchSize: 6, numGenerations: 4 }), /whole groups/);
    assert.throws(() => resolveGrpoTrainConfig({ lossTyp: "grpo" }), /did you mean 'lossType'/);
    assert.throws(() => resolveGrpoTrainConfig({ delta: 1.1 }), /delta/);
  });

  test("dynamic sampling drops zero-signal groups and reports how many it kept", async () => {
    // reward 1 only for prompts starting with "1": groups of "0+1=" carry no signal... unless completions differ
    const byPrompt: RewardFn = namedReward("by_prompt", (a) =>
      a.prompts.map((p, i) => (p.startsWith("1") ? [...a.completions[i]].length : 0)),
    );
    const seenPrompts: string[] = [];
    const res = await trainGrpo({
      model: tinyModel(6),
      tokenizer: TOK,
      data: [{ prompt: "0+1=" }, { prompt: "0=" }, { prompt: "1+1=" }, { prompt: "10=" }],
      rewardFuncs: [byPrompt],
      config: { ...base, maxSteps: 1, dynamicSampling: true, dynamicSamplingMaxRounds: 2, loggingSteps: 1 },
      quiet: true,
      onBatch: (b) => seenPrompts.push(...b.rollout.prompts.map((p) => p.promptText)),
    });
    assert.ok(
      seenPrompts.every((p) => p.startsWith("1")),
      `kept ${seenPrompts}`,
    );
    const m = res.run.history[0] as Record<string, number>;
    assert.equal(m["dynamic_sampling/kept_groups"], seenPrompts.length);
    assert.ok(m["dynamic_sampling/rounds"] >= 1 && m["dynamic_sampling/rounds"] <= 2);
  });

  test("reward loading: built-ins by name, module exports by name or all, unknown names listed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-rewards-"));
    try {
      const path = join(dir, "my_rewards.ts");
      writeFileSync(
        path,
        "export const short = (a: { completions: string[] }) => a.completions.map((c) => -c.length);\nexport const NOT_A_FN = 3;\n",
      );
      const ctx = { maxCompletionLength: 8 };
      const fns = await loadRewardFunctions(["accuracy", "overlong", "short"], path, ctx);
      assert.deepEqual(
        fns.map((f) => f.name),
        ["accuracy_reward", "soft_overlong_punishment_reward", "short"],
      );
      assert.deepEqual(await fns[2]({ prompts: ["a"], completions: ["abc"] }), [-3]);
      assert.deepEqual(
        (await loadRewardFunctions([], path, ctx)).map((f) => f.name),
        ["short"],
      );
      await assert.rejects(loadRewardFunctions(["nope"], null, ctx), /unknown reward function 'nope'.*accuracy/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("packRollout: prompts left-padded, completions right-padded, masks on real tokens", () => {
    const p = packRollout([[5, 6], [7]], [[1], [2, 3]], 0);
    assert.deepEqual(Array.from(p.inputIds.hostData()), [5, 6, 1, 0, 0, 7, 2, 3]);
    assert.deepEqual(Array.from(p.attentionMask.hostData()), [1, 1, 1, 0, 0, 1, 1, 1]);
    assert.deepEqual(Array.from(p.completionMask.hostData()), [1, 0, 1, 1]);
    assert.deepEqual([p.promptWidth, p.completionWidth], [2, 2]);
  });
});
