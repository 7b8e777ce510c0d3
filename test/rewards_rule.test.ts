// Rule rewards: answer extraction and exact rational comparison on tricky strings, accuracy with gold columns
// (number, string, "####" solutions, missing), format, DAPO overlong penalty at its boundaries, length penalty.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  accuracyReward,
  arithmeticFormatReward,
  extractAnswer,
  extractNumber,
  formatReward,
  lengthPenalty,
  overlongPenalty,
  parseNumber,
  type RewardArgs,
  RewardError,
} from "../src/rewards/index.js";

const args = (completions: string[], extra: Record<string, unknown[]> = {}): RewardArgs => ({
  prompts: completions.map(() => "p"),
  completions,
  ...extra,
});
const q = (num: number, den = 1) => ({ num: BigInt(num), den: BigInt(den) });

describe("answer extraction", () => {
  const cases: [string, ReturnType<typeof q> | null][] = [
    ["The answer is 118.", q(118)],
    ["The answer is -7.", q(-7)],
    ["So the final answer is $\\frac{3}{4}$.", q(3, 4)],
    ["\\boxed{0.75}", q(3, 4)],
    ["Thus $\\boxed{\\frac{3}{4}}$", q(3, 4)],
    ["\\boxed{-\\dfrac{1}{2}}", q(-1, 2)],
    ["\\boxed{{12}}", q(12)],
    ["first \\boxed{3}, on reflection \\boxed{5}", q(5)],
    ["#### 1,234", q(1234)],
    ["Answer: 3/4", q(3, 4)],
    ["the answer is -3/4 of it", q(-3, 4)],
    ["x = 10-5", q(5)],
    ["12 apples cost $3.50", q(7, 2)],
    ["The value is .5", q(1, 2)],
    ["\\boxed{x = 7}", q(7)],
    ["\\boxed{75\\%}", q(75)],
    ["\\boxed{\\text{42}}", q(42)],
    ["The answer is 1e3.", q(1000)],
    ["result: 2/4", q(1, 2)],
    ["The answer is 3.0", q(3)],
    ["it is −5", q(-5)],
    ["The answer is 12. Then 5 more.", q(12)],
    ["\\boxed{3/4}", q(3, 4)],
    ["2 + 3 - 1 = 4", q(4)],
    ["\\boxed{\\left( 6 \\right)}", q(6)],
    ["no numbers here", null],
    ["\\boxed{1/0}", null],
    ["\\boxed{x+1}", null],
  ];
  for (const [text, want] of cases) {
    test(JSON.stringify(text), () => assert.deepEqual(extractNumber(text), want));
  }

  test("priority, raw strings, and the last-number fallback switch", () => {
    assert.equal(extractAnswer("The answer is 4. \\boxed{5}"), "5");
    assert.equal(extractAnswer("#### 72\nThe answer is 70"), "72");
    assert.equal(extractAnswer("x = 5", { fallbackLastNumber: false }), null);
    assert.equal(extractAnswer("x = 5"), "5");
    assert.deepEqual(parseNumber("0.333"), q(333, 1000));
    assert.deepEqual(parseNumber("-0.125"), q(-1, 8));
  });
});

describe("rule rewards", () => {
  test("accuracyReward compares exactly and abstains without gold", async () => {
    const fn = accuracyReward();
    assert.equal(fn.name, "accuracy_reward");
    const out = await fn(
      args(
        [
          "\\boxed{3/4}",
          "The answer is 0.75.",
          "The answer is 0.333",
          "The answer is 1/3",
          "no idea",
          "The answer is 5",
          "The answer is 5",
        ],
        {
          answer: [0.75, "3/4", "1/3", "\\frac{1}{3}", 2, null, "yes"],
        },
      ),
    );
    assert.deepEqual(out, [1, 1, 0, 1, 0, null, null]);
    // `solution` column (GSM8K-style) when there is no `answer` column; none at all gives nulls.
    assert.deepEqual(
      await fn(args(["The answer is 72.", "The answer is 70."], { solution: ["She sells 72.\n#### 72", "#### 72"] })),
      [1, 0],
    );
    // no gold column at all: an error naming the column (GRPO would otherwise train on reward 0)
    await assert.rejects(
      async () => fn(args(["The answer is 72."], { level: [1] })),
      /no gold answer: add an "answer" or "solution" column.*level/,
    );
    await assert.rejects(async () => accuracyReward({ column: "gold" })(args(["7"])), /add a "gold" column/);
    assert.deepEqual(await accuracyReward({ column: "gold" })(args(["7"], { gold: [7], answer: [8] })), [1]);
    assert.deepEqual(await accuracyReward({ fallbackLastNumber: false })(args(["7"], { answer: [7] })), [0]);
    assert.throws(() => fn(args(["a", "b"], { answer: [1] })), RewardError);
  });

  test("formatReward and the arithmetic solution format", async () => {
    const f = arithmeticFormatReward();
    const out = await f(
      args([
        "17 + 25 = 42\n42 * 3 = 126\nThe answer is 126.\n",
        "17 + 25 = 42\n42 * 3 = 126\nThe answer is 126.",
        "17 + 25 = 42\n42 * 3 = 126\n",
        "17+25=42\nThe answer is 42.\n",
        "The answer is 42.\n\n",
      ]),
    );
    assert.deepEqual(out, [1, 1, 0, 0, 0]);
    // A global regex must not carry lastIndex between completions.
    const g = formatReward(/^<think>.*<\/think>/gs, "think");
    assert.deepEqual(await g(args(["<think>a</think>x", "<think>b</think>y", "no"])), [1, 1, 0]);
    assert.equal(g.name, "think");
    assert.deepEqual(await formatReward("^a.b$")(args(["a\nb", "ab"])), [1, 0]);
  });

  test("overlongPenalty: DAPO values at the boundaries", async () => {
    const f = overlongPenalty({ maxCompletionLen: 100, softPunishCache: 20 });
    const lens = [0, 79, 80, 81, 90, 99, 100, 101, 500];
    const ids = lens.map((n) => new Array<number>(n).fill(1));
    const out = await f({ ...args(lens.map(() => "x")), completionIds: ids });
    assert.deepEqual(out, [0, 0, 0, -0.05, -0.5, -0.95, -1, -1, -1]);
    // Without ids, characters are counted.
    assert.deepEqual(await f(args(["a".repeat(90)])), [-0.5]);
    const hard = overlongPenalty({ maxCompletionLen: 10, softPunishCache: 0 });
    assert.deepEqual(await hard(args(["a".repeat(10), "a".repeat(11)])), [0, -1]);
    assert.throws(() => overlongPenalty({ maxCompletionLen: 10, softPunishCache: 11 }), /softPunishCache must be an integer in \[0, 10\]/);
    assert.throws(() => overlongPenalty({ maxCompletionLen: 0, softPunishCache: 0 }), RewardError);
  });

  test("lengthPenalty is linear past the free length", async () => {
    const f = lengthPenalty({ coef: 0.01, freeLength: 10 });
    const out = await f(args(["a".repeat(5), "a".repeat(10), "a".repeat(30)]));
    assert.equal(out[0], 0);
    assert.equal(out[1], 0);
    assert.ok(Math.abs(out[2]! + 0.2) < 1e-12);
    assert.throws(() => lengthPenalty({ coef: -1 }), RewardError);
  });
});
