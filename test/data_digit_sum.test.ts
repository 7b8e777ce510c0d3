// The tiny digit-sum task: exact formats, checker verdicts, and disjoint deterministic splits of its
// 100-problem space (running out is an error, not an endless loop).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkDigitSum, DIGIT_SUM_TASK, digitSumKey, generateDigitSum, SPLITS, splitOf } from "../src/data/index.js";

describe("digit_sum task", () => {
  test("formats and checker", () => {
    const p = { a: 3, b: 5 };
    assert.equal(DIGIT_SUM_TASK.prompt(p), "3+5=");
    assert.equal(DIGIT_SUM_TASK.solution(p), "8\n");
    assert.equal(DIGIT_SUM_TASK.answer(p), 8);
    assert.deepEqual(checkDigitSum(p, "8\n"), {
      steps: [{ text: "8", correct: true, expected: "8" }],
      firstErrorIndex: -1,
      finalAnswer: 8,
      answerCorrect: true,
      formatOk: true,
    });
    const wrong = checkDigitSum(p, "9");
    assert.equal(wrong.firstErrorIndex, 0);
    assert.equal(wrong.finalAnswer, 9);
    assert.equal(wrong.answerCorrect, false);
    assert.equal(wrong.formatOk, true);
    const junk = checkDigitSum(p, "eight\n");
    assert.equal(junk.finalAnswer, null);
    assert.equal(junk.formatOk, false);
    const extra = checkDigitSum({ a: 9, b: 9 }, "18\n18\n");
    assert.equal(extra.firstErrorIndex, 1);
    assert.equal(extra.answerCorrect, true);
    assert.equal(extra.formatOk, false);
  });

  test("splits: deterministic, disjoint, and the space runs out cleanly", () => {
    const counts = { train: 0, validation: 0, test: 0 };
    for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) counts[splitOf(digitSumKey({ a, b }))]++;
    assert.equal(counts.train + counts.validation + counts.test, 100);
    const seen = new Map<string, string>();
    for (const split of SPLITS) {
      const ps = generateDigitSum(split, counts[split], 3);
      assert.deepEqual(generateDigitSum(split, counts[split], 3), ps);
      for (const p of ps) {
        assert.equal(seen.get(digitSumKey(p)), undefined, `${digitSumKey(p)} in ${split} and ${seen.get(digitSumKey(p))}`);
        seen.set(digitSumKey(p), split);
      }
    }
    assert.equal(seen.size, 100);
    assert.throws(() => generateDigitSum("test", counts.test + 1, 3), /found only \d+ of \d+ distinct test problems/);
  });
});
