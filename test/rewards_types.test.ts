// Calling and combining reward functions: TRL's weighted nansum (null/NaN ignored, all-null totals 0), sync and
// async functions together, names, and errors for malformed outputs.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { combineRewards, computeRewards, namedReward, type RewardArgs, RewardError, type RewardFn } from "../src/rewards/index.js";

const batch: RewardArgs = { prompts: ["p", "p", "p", "p"], completions: ["a", "b", "c", "d"], answer: [1, 2, 3, 4] };

describe("reward combination", () => {
  test("weighted nansum across sync and async functions", async () => {
    const f1 = namedReward("f1", () => [1, null, 0.5, null]);
    const f2: RewardFn = async function f2(args) {
      await new Promise((r) => setTimeout(r, 1));
      return args.completions.map((_, i) => [0, 2, Number.NaN, null][i]!);
    };
    const r = await computeRewards([f1, f2], batch, [1, 0.5]);
    assert.deepEqual(r.names, ["f1", "f2"]);
    assert.deepEqual(r.perFunction, [
      [1, null, 0.5, null],
      [0, 2, null, null],
    ]);
    assert.deepEqual(r.total, [1, 1, 0.5, 0]);
    assert.deepEqual(r.allNull, [3]);
    const combined = combineRewards([f1, f2], [1, 0.5]);
    assert.equal(combined.name, "combined");
    assert.deepEqual(await combined(batch), [1, 1, 0.5, 0]);
    assert.deepEqual((await computeRewards([f1, f2], batch)).total, [1, 2, 0.5, 0]); // default weights 1
  });

  test("extra columns reach the function", async () => {
    const col = namedReward("col", (args) => (args.answer as number[]).map((a) => a * 10));
    assert.deepEqual((await computeRewards([col], batch)).total, [10, 20, 30, 40]);
  });

  test("malformed outputs and weights are errors naming the function", async () => {
    const short = namedReward("short", () => [1]);
    await assert.rejects(computeRewards([short], batch), {
      name: "RewardError",
      message: "[reward short] expected 4 rewards (one per completion), got 1",
    });
    const inf = namedReward("inf", () => [1, 1, Number.POSITIVE_INFINITY, 1]);
    await assert.rejects(computeRewards([inf], batch), /\[reward inf\] completion 2: expected a finite number or null, got Infinity/);
    const str = namedReward("str", () => ["1", 1, 1, 1] as never);
    await assert.rejects(computeRewards([str], batch), RewardError);
    await assert.rejects(computeRewards([short], batch, [1, 2]), /got 2 weights for 1 reward functions/);
    assert.throws(() => combineRewards([short], [1, 2]), RewardError);
    await assert.rejects(computeRewards([], batch), RewardError);
  });
});
