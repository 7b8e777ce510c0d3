// Online DPO on a tiny Llama with a char tokenizer: pairs are ordered by reward (chosen = higher, first sample
// on ties), the first step's loss is ln 2 (policy == reference), a LoRA policy keeps its base (the reference)
// untouched, and a few steps raise a trivially learnable rule reward (count of "a" in the completion).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { generate } from "../src/generate/generate.js";
import { applyLora } from "../src/models/lora.js";
import { Rng } from "../src/nn/rng.js";
import { namedReward } from "../src/rewards/types.js";
import { type OnlinePair, orderPairs, trainOnlineDpo } from "../src/train/online_dpo.js";
import { assertClose } from "./helpers/check.js";
import { snapshot, TOK, tinyModel } from "./helpers/tiny_preference.js";

const PROMPTS = ["ab", "cd", "ba", "dc", "bc", "db", "cb", "bd"].map((prompt) => ({ prompt }));
const countA = (s: string) => [...s].filter((ch) => ch === "a").length;
const countAReward = namedReward("count_a", ({ completions }) => completions.map(countA));

/** Mean count of "a" over 4 seeded samples of every prompt (temperature 1, 8 tokens). */
function meanReward(model: ReturnType<typeof tinyModel>): number {
  const ids = PROMPTS.flatMap((r) => Array.from({ length: 4 }, () => TOK.encode(r.prompt)));
  const s = generate(model, ids, { maxNewTokens: 8, temperature: 1, eosTokenId: [1], rng: new Rng(99), tokenizer: TOK });
  return s.reduce((a, x) => a + countA(x.text as string), 0) / s.length;
}

describe("online DPO", () => {
  test("orderPairs: chosen is the higher score of each (first, second) pair; ties keep the first", () => {
    const o = orderPairs([1, 5, 3, 2, 2, 3]); // pairs (1,2) (5,2) (3,3)
    assert.deepEqual(o.firstChosen, [false, true, true]);
    assert.deepEqual(o.chosenScores, [2, 5, 3]);
    assert.deepEqual(o.rejectedScores, [1, 2, 3]);
  });

  test("pairs follow the reward, the first loss is ln 2, and a few steps raise the reward", async () => {
    const model = tinyModel(4);
    const before = meanReward(model);
    const pairs: OnlinePair[] = [];
    const run = await trainOnlineDpo({
      model,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [countAReward],
      config: {
        learningRate: 1e-2,
        beta: 0.1,
        perDeviceTrainBatchSize: 8,
        maxCompletionLength: 8,
        temperature: 1,
        maxSteps: 40,
        loggingSteps: 1,
        maxGradNorm: 1,
        seed: 1,
      },
      quiet: true,
      onPairs: (p) => pairs.push(...p),
    });
    const after = meanReward(model);
    assert.equal(pairs.length, 40 * 8);
    for (const p of pairs) {
      assert.ok(p.chosenScore >= p.rejectedScore);
      assert.equal(p.chosenScore, countA(p.chosen.text));
      assert.equal(p.rejectedScore, countA(p.rejected.text));
    }
    const first = run.run.history[0];
    assertClose(first.loss as number, Math.LN2, { atol: 1e-6, what: "step-1 loss" });
    assertClose(first["rewards/margins"] as number, 0, { atol: 1e-6 });
    assert.ok(typeof first["objective/scores_margin"] === "number" && (first["objective/scores_margin"] as number) >= 0);
    console.log(
      `online DPO count-of-a reward: ${before.toFixed(3)} -> ${after.toFixed(3)}; loss ${first.loss} -> ${run.run.history.at(-1)?.loss}`,
    );
    assert.ok(after > 4 && before < 1, `reward should rise: ${before} -> ${after}`);
  });

  test("a LoRA policy trains its adapters against its base, which stays bitwise unchanged", async () => {
    const model = tinyModel(5);
    const base0 = snapshot(model);
    const lora = applyLora(model, { r: 4, loraAlpha: 8, targetModules: ["q_proj", "v_proj"] });
    const run = await trainOnlineDpo({
      model: lora,
      tokenizer: TOK,
      data: PROMPTS,
      rewardFuncs: [countAReward],
      config: { learningRate: 1e-2, perDeviceTrainBatchSize: 4, maxCompletionLength: 4, maxSteps: 2, loggingSteps: 1, lossType: "ipo" },
      quiet: true,
    });
    // IPO at policy == reference: (0 - 1 / (2 beta))^2 = 25
    assertClose(run.run.history[0].loss as number, 25, { atol: 1e-4 });
    for (const [n, p] of model.namedParameters()) assert.deepEqual(p.hostData(), base0.get(n), `base ${n} changed`);
    assert.ok(
      lora.adapters.items.some((a) => a.loraB.weight.hostData().some((v) => v !== 0)),
      "adapters moved",
    );
  });
});
