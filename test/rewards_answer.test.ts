// The one answer extractor (rewards/answer.ts) and its users: the default forms and the last-number fallback, a
// custom --answer-pattern (named group, first group, whole match, /flags/), voting keys, gold parsing, and the
// same reading in the accuracy reward, the labellers' gold checker, search (finished test and the vote), and
// `nexus label mc` refusing rows without an answer column before generating anything.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AnswerExtractor, answerExtractor, DEFAULT_ANSWER } from "../src/rewards/answer.js";
import type { StepGenerator } from "../src/rewards/interfaces.js";
import { goldAnswerChecker } from "../src/rewards/labels/steps.js";
import { accuracyReward } from "../src/rewards/rule.js";
import { bestOfN, statesAnswer } from "../src/search/index.js";
import { runNexus } from "./helpers/cli.js";

describe("AnswerExtractor", () => {
  test("default: stated forms first, else the last number; stated() never falls back", () => {
    assert.equal(DEFAULT_ANSWER.answer("so 3 + 4 = 7. The answer is 7."), "7");
    assert.equal(DEFAULT_ANSWER.answer("x = 1, \\boxed{\\frac{3}{4}} then 9"), "\\frac{3}{4}");
    assert.equal(DEFAULT_ANSWER.answer("12 apples\n#### 1,234"), "1,234");
    assert.equal(DEFAULT_ANSWER.answer("first 3 then 42"), "42");
    assert.equal(DEFAULT_ANSWER.stated("first 3 then 42"), null);
    assert.equal(new AnswerExtractor({ fallbackLastNumber: false }).answer("first 3 then 42"), null);
    assert.equal(DEFAULT_ANSWER.key("The answer is 0.5"), "1/2");
    assert.equal(DEFAULT_ANSWER.key("\\boxed{\\frac{2}{4}}"), "1/2");
    assert.equal(DEFAULT_ANSWER.correct("The answer is 0.75.", "3/4"), true);
    assert.equal(DEFAULT_ANSWER.correct("The answer is 0.7.", 0.75), false);
    assert.equal(DEFAULT_ANSWER.correct("The answer is 7.", "seven"), null);
  });

  test("a custom pattern replaces the stated forms: named group, first group, whole match, /flags/", () => {
    const named = answerExtractor("Final: (?<answer>-?\\d+)");
    assert.equal(named.stated("Final: 3 ... Final: -12 and 99"), "-12");
    assert.equal(named.stated("The answer is 5"), null); // the default forms no longer count
    assert.equal(named.answer("The answer is 5 then 6"), "6"); // ... but the last-number fallback does
    assert.equal(answerExtractor("=> (\\S+)").stated("a => 4/8"), "4/8");
    assert.equal(answerExtractor("\\d+!").stated("7! and 8!"), "8!");
    assert.equal(answerExtractor("/RESULT (\\d+)/i").stated("result 41"), "41");
    assert.equal(answerExtractor("RESULT (\\d+)").stated("result 41"), null);
    assert.equal(answerExtractor(null), DEFAULT_ANSWER);
    assert.throws(() => answerExtractor("(unclosed"), /answer pattern "\(unclosed" is not a valid regex/);
  });

  test("gold values: numbers, numeric strings, and solution texts read with the same pattern", () => {
    const ex = answerExtractor("Final: (\\d+)");
    assert.deepEqual(ex.gold("Work... Final: 12"), { num: 12n, den: 1n });
    assert.deepEqual(ex.gold(" 3/6 "), { num: 1n, den: 2n });
    assert.equal(ex.gold("#### 12"), null);
    assert.deepEqual(DEFAULT_ANSWER.gold("#### 12"), { num: 12n, den: 1n });
  });
});

describe("one extractor in rewards, labels and search", () => {
  const ex = answerExtractor("ANS\\[(\\d+)\\]");

  test("accuracy reward: the pattern decides which number counts", async () => {
    const args = { prompts: ["p", "p", "p"], completions: ["3 ANS[7] 9", "ANS[3] 7", "The answer is 7 of 8"], answer: [7, 7, 7] };
    assert.deepEqual(await accuracyReward({ answer: ex })(args), [1, 0, 0]);
    assert.deepEqual(await accuracyReward()(args), [0, 1, 1]); // default: last numbers 9, 7, then "answer is 7"
    assert.deepEqual(await accuracyReward({ answer: ex })({ ...args, answer: ["x", 7, 7] }), [null, 0, 0]);
  });

  test("gold checker of the labellers reads the joined steps with the same pattern", () => {
    const c = goldAnswerChecker(() => 5, "\n", ex);
    assert.equal(c.answerCorrect("p", ["2 + 3", "ANS[5]", "then 6"]), true);
    assert.equal(c.answerCorrect("p", ["The answer is 5 (not 6)"]), false); // no ANS[]: the last number, 6
    assert.equal(goldAnswerChecker(() => 5).answerCorrect("p", ["The answer is 5 (not 6)"]), true);
  });

  test("search: a step stating an answer ends a solution, and the vote counts the pattern's answers", async () => {
    assert.equal(statesAnswer(ex)(["x", "ANS[2]"]), true);
    assert.equal(statesAnswer(ex)(["The answer is 2"]), false);
    const sols = [["ANS[4]"], ["ANS[9]"], ["so 9", "ANS[4]"], ["The answer is 9"]];
    const gen: StepGenerator = {
      stepsGenerated: 0,
      nextSteps: async () => [],
      complete: async () => sols.map((s) => [...s]),
    };
    const withPattern = await bestOfN(gen, null, "p", { n: 4, selection: "majority", answer: ex });
    assert.equal(withPattern.answer, "4");
    assert.deepEqual(
      withPattern.candidates.map((c) => c.finished),
      [true, true, true, false],
    );
    const byDefault = await bestOfN(gen, null, "p", { n: 4, selection: "majority" });
    // by default only "The answer is 9" states an answer, so it is the only finished candidate and wins
    assert.equal(byDefault.answer, "9");
  });
});

describe("nexus label mc: the answer column", () => {
  test("a row without `answer` (not an arithmetic prompt) is refused before any generation, naming the column", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-answer-"));
    try {
      const data = join(dir, "sols.jsonl");
      writeFileSync(
        data,
        `${JSON.stringify({ prompt: "Start at 2. Add 3.\n", completions: ["2 + 3 = 5", "The answer is 5."] })}\n${JSON.stringify({
          prompt: "What is 6 times 7?",
          completions: ["6 * 7 = 42", "The answer is 42."],
        })}\n`,
      );
      const r = await runNexus(["label", "mc", "--data", data, "--output", join(dir, "out.jsonl"), "--synthetic-p", "1"]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(`${data}:2: no "answer" column`), r.stderr);
      const bad = join(dir, "bad.jsonl");
      writeFileSync(bad, `${JSON.stringify({ prompt: "q", completions: ["a"], answer: "forty-two" })}\n`);
      const r2 = await runNexus(["label", "mc", "--data", bad, "--output", join(dir, "out.jsonl"), "--synthetic-p", "1"]);
      assert.ok(r2.stderr.includes(`${bad}:1: column "answer": "forty-two" is not a number`), r2.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
