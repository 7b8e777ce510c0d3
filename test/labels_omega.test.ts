// OmegaPRM-style binary search: with a deterministic completer (p = 1) the search finds every planted first
// error exactly, and spends exactly k·log2(M) rollouts when M is a power of two (M = 16: 4 checks, 4k rollouts,
// for every error position), k·{2,2,2,3,3} for M = 5 by the hand-traced bisection, and none on a correct answer.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  arithmeticPrompt,
  arithmeticSolution,
  corruptSolution,
  generateArithmetic,
  Mulberry32,
  resolveArithmeticConfig,
  splitSteps,
} from "../src/data/index.js";
import { ARITHMETIC_ANSWER, ArithmeticChainGenerator, mcLabels, omegaCheckCount, omegaFirstError } from "../src/rewards/labels/index.js";

function planted(numOps: number, seed: number) {
  const cfg = resolveArithmeticConfig({ minSteps: numOps, maxSteps: numOps, ops: ["+", "-"] });
  const [pr] = generateArithmetic(cfg, "train", 1, seed);
  const rng = new Mulberry32(seed);
  // an error at every step: slips at 0..numOps-1, a wrong answer line at numOps
  const sols = Array.from({ length: numOps + 1 }, (_, e) => corruptSolution(pr!, e < numOps ? "slip" : "answer", rng, e));
  return { prompt: arithmeticPrompt(pr!), sols, gold: splitSteps(arithmeticSolution(pr!)) };
}

describe("OmegaPRM binary search", () => {
  test("M = 16: every planted error found with exactly 4 checks = 4k rollouts", async () => {
    const k = 3;
    const { prompt, sols } = planted(15, 21);
    for (const [e, s] of sols.entries()) {
      assert.equal(s.firstErrorIndex, e);
      const steps = splitSteps(s.text);
      assert.equal(steps.length, 16);
      const gen = new ArithmeticChainGenerator({ p: 1, seed: e });
      const r = await omegaFirstError(gen, ARITHMETIC_ANSWER, prompt, steps, { rollouts: k });
      assert.equal(r.firstError, e);
      assert.equal(r.checks.length, 4);
      assert.equal(r.rollouts, 4 * k);
      assert.equal(omegaCheckCount(16, e), 4);
      // bisection path: first check always at prefix length 8; MC is 1 on good prefixes, 0 on bad ones
      assert.equal(r.checks[0]!.prefixLength, 8);
      for (const c of r.checks) assert.equal(c.mc, c.prefixLength <= e ? 1 : 0);
      // versus Math-Shepherd: k·(M-1) = 45 rollouts for the same answer
      const mc = await mcLabels(new ArithmeticChainGenerator({ p: 1 }), ARITHMETIC_ANSWER, prompt, steps, { rollouts: k });
      assert.equal(mc.firstError, e);
      assert.equal(mc.rollouts, 45);
    }
  });

  test("M = 5: checks are 2, 2, 2, 3, 3 for errors at 0..4; correct answers cost nothing", async () => {
    const k = 8;
    const { prompt, sols, gold } = planted(4, 4);
    const expected = [2, 2, 2, 3, 3];
    for (const [e, s] of sols.entries()) {
      const gen = new ArithmeticChainGenerator({ p: 1 });
      const r = await omegaFirstError(gen, ARITHMETIC_ANSWER, prompt, splitSteps(s.text), { rollouts: k });
      assert.equal(r.firstError, e);
      assert.equal(r.rollouts, k * expected[e]!);
      assert.equal(omegaCheckCount(5, e), expected[e]);
    }
    const ok = await omegaFirstError(new ArithmeticChainGenerator({ p: 1 }), ARITHMETIC_ANSWER, prompt, gold, { rollouts: k });
    assert.deepEqual(ok, { firstError: -1, rollouts: 0, checks: [], stepsGenerated: 0 });
  });
});
