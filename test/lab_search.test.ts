// The lab search stage's shared sample sets: best-of-N rules replay one problem's N samples, so every rule chooses
// among the very same solutions, and a replay refuses any other request (a rule that would sample more).

import assert from "node:assert/strict";
import { test } from "node:test";
import { FIRST_SAMPLE, replaySamples } from "../src/lab/stages/search.js";
import { bestOfN } from "../src/search/best_of_n.js";

const SOLS = [
  ["2 * 3 = 6", "The answer is 6."],
  ["2 * 3 = 5", "The answer is 5."],
  ["2 * 3 = 5", "The answer is 5."],
];
const score = (steps: readonly string[]) => (steps[0] === "2 * 3 = 6" ? 1 : 0);

test("replayed samples: random, majority and a verifier choose among the same N solutions", async () => {
  const gen = replaySamples(SOLS);
  assert.equal((await bestOfN(gen, FIRST_SAMPLE, "Start at 2.\\n", { n: 3 })).answer, "6");
  assert.equal((await bestOfN(gen, null, "Start at 2.\\n", { n: 3, selection: "majority" })).answer, "5");
  const verifier = { scoreSolution: async (_p: string, s: readonly string[]) => score(s) };
  assert.equal((await bestOfN(gen, verifier, "Start at 2.\\n", { n: 3 })).answer, "6");
  // the replay hands out copies: a rule cannot change what the next rule sees
  (await gen.complete("p", [], 3))[0]!.push("extra");
  assert.deepEqual(await gen.complete("p", [], 3), SOLS);
});

test("a replay refuses another N, a prefix or single steps", async () => {
  const gen = replaySamples(SOLS);
  await assert.rejects(() => gen.complete("p", [], 4), /holds 3 whole solutions, asked for 4/);
  await assert.rejects(() => gen.complete("p", ["2 * 3 = 6"], 3), /after 1 steps/);
  await assert.rejects(() => gen.nextSteps("p", [], 2), /tree search samples its own steps/);
});
