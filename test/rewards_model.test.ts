// Model-based rewards as RewardFns (src/rewards/model_rewards.ts): a reward model scores prompt + completion at the
// last real token exactly as a one-row forward does (batched rows with padding change nothing); a StepScorer's
// steps are aggregated (min by default); an LLM judge's verdict becomes 1 / 0 / null; mixing them with a rule
// function under weights is computeRewards' weighted nansum.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { SequenceClassifier } from "../src/models/heads.js";
import { Rng } from "../src/nn/rng.js";
import { judgeReward, rewardModelReward, stepScorerReward } from "../src/rewards/model_rewards.js";
import { computeRewards, namedReward } from "../src/rewards/types.js";
import { tensor } from "../src/tensor/index.js";
import { tinyLlamaConfig } from "./helpers/tiny_model.js";

const TOK = new CharTokenizer("abcd12=\n", { bosToken: null });
const RM = new SequenceClassifier(tinyLlamaConfig(TOK, { shape: "d16", pad: true }), { rng: new Rng(3) });

describe("model rewards", () => {
  test("reward model: each completion's score equals a one-row forward of prompt + completion; batches of 2 change nothing", async () => {
    const prompts = ["ab=", "c=", "abcd="];
    const completions = ["1\n", "22\n", "d"];
    const one = (text: string) => RM.rewards({ inputIds: tensor([TOK.encode(text)], { dtype: "i32" }) }).item();
    const got = await rewardModelReward(RM, TOK, { batchSize: 2 })({ prompts, completions });
    assert.equal(got.length, 3);
    for (const [i, g] of got.entries()) assert.ok(Math.abs((g as number) - one(prompts[i] + completions[i])) < 1e-5, `row ${i}: ${g}`);
    assert.equal(rewardModelReward(RM, TOK).name, "reward_model");
  });

  test("step scorer: steps split at the separator, aggregated by min / mean; no steps is null", async () => {
    const scorer = { scoreSteps: async (_p: string, steps: readonly string[]) => steps.map((s) => s.length / 10) };
    const args = { prompts: ["p", "p", "p"], completions: ["a\nbbb\ncc\n", "dddd", ""] };
    assert.deepEqual(await stepScorerReward(scorer)(args), [0.1, 0.4, null]);
    const mean = await stepScorerReward(scorer, { aggregation: "mean" })(args);
    assert.ok(Math.abs((mean[0] as number) - 0.2) < 1e-12);
    assert.deepEqual(mean.slice(1), [0.4, null]);
  });

  test("judge: none wrong -> 1, a wrong step -> 0, no verdict -> null; weighted with a rule function", async () => {
    const replies = ["looks fine. first wrong step: none", "first wrong step: 2", "hmm"];
    let k = 0;
    const judge = async (prompt: string) => {
      assert.ok(prompt.includes("Step 1:"));
      return replies[k++];
    };
    const j = judgeReward(judge);
    const len = namedReward("len", (a) => a.completions.map((c) => c.length));
    const args = { prompts: ["q", "q", "q"], completions: ["a\nb", "a\nb", "a"] };
    const out = await computeRewards([j, len], args, [2, 0.5]);
    assert.deepEqual(out.perFunction[0], [1, 0, null]);
    assert.deepEqual(out.total, [2 + 1.5, 0 + 1.5, 0.5]);
  });
});
