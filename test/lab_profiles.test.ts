// Every lab profile can run as written: each split draws the number of distinct problems the profile asks for,
// the splits are disjoint, and every stage's slice of a split fits in it (a profile asking for more train
// problems than the task has distinct ones only failed at the start of a run). Fast: problems only, no model.

import assert from "node:assert/strict";
import { test } from "node:test";
import { problemsOf } from "../src/lab/common.js";
import { LAB_PROFILES } from "../src/lab/profiles.js";

for (const p of Object.values(LAB_PROFILES)) {
  test(`profile ${p.name}: splits draw, are disjoint, and hold every stage's slice`, () => {
    const key = (x: unknown) => JSON.stringify(x);
    const train = problemsOf(p, "train", 0);
    const validation = problemsOf(p, "validation", 0);
    const testSplit = problemsOf(p, "test", 0);
    assert.equal(new Set(train.map(key)).size, p.data.trainProblems);
    assert.equal(new Set(validation.map(key)).size, p.data.evalProblems);
    assert.equal(new Set(testSplit.map(key)).size, p.data.testProblems);
    const seen = new Set(train.map(key));
    for (const x of [...validation, ...testSplit]) assert.ok(!seen.has(key(x)), `${key(x)} is in two splits`);
    assert.ok(p.judge.examples <= p.data.trainProblems, "judge examples come from the train split");
    assert.ok(p.sample.prompts <= p.data.trainProblems, "labelled samples come from train prompts");
    assert.ok(p.eval.problems <= p.data.testProblems, "evaluation uses test problems");
    assert.ok(p.eval.problems / 2 <= p.data.evalProblems, "reward-model held-out solutions use eval.problems / 2 validation problems");
    assert.ok(p.search.problems <= p.data.testProblems, "search uses test problems");
    assert.ok(p.search.maxTreeBudget <= Math.max(...p.search.budgets), "tree budgets are among the budgets");
  });
}
