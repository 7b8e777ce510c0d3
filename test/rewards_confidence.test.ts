// ConfidenceScorer (self-certainty verifier): per-step min token log-prob of the policy, checked against log-softmax
// of the model's own logits computed here on the host in float64, row by row; batching and padding change nothing;
// the solution score is the least certain step; spans cover exactly each step's text + separator.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createCausalLM } from "../src/models/causal_lm.js";
import { ConfidenceScorer } from "../src/rewards/confidence.js";
import { fromArray, noGrad } from "../src/tensor/index.js";
import { CLI_CONFIG, CLI_TOK } from "./helpers/tiny_model.js";

const model = createCausalLM(CLI_CONFIG, { seed: 3 });
const ROWS = [
  { prompt: "Start at 3. Add 4.\n", steps: ["3 + 4 = 7", "The answer is 7."] },
  { prompt: "x", steps: ["1 + 1 = 2"] },
  { prompt: "Start at 9. Multiply by 2. Subtract 8.\n", steps: ["9 * 2 = 18", "18 - 8 = 10", "The answer is 10."] },
  { prompt: "empty", steps: [] },
];

/** The oracle: one row alone, log p(token j) = logit - logsumexp over the vocabulary at position j - 1. */
function oracle(prompt: string, steps: readonly string[]): number[] {
  const ids = CLI_TOK.encode(prompt, { addSpecialTokens: true });
  const spans: [number, number][] = [];
  for (const s of steps) {
    const start = ids.length;
    ids.push(...CLI_TOK.encode(`${s}\n`, { addSpecialTokens: false }));
    spans.push([start, ids.length]);
  }
  const logits = noGrad(() => model.forward({ inputIds: fromArray(Int32Array.from(ids), [1, ids.length]) }).logits).hostData();
  const v = CLI_CONFIG.vocabSize;
  const lp = (j: number) => {
    const row = Array.from(logits.subarray((j - 1) * v, j * v), Number);
    const mx = Math.max(...row);
    return row[ids[j]] - mx - Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
  };
  return spans.map(([s, e]) => Math.min(...Array.from({ length: e - s }, (_, k) => lp(s + k))));
}

test("confidence: per-step min token log-prob equals the host oracle, batched or not", async () => {
  const scorer = new ConfidenceScorer(model, CLI_TOK, { batchSize: 3 });
  const batched = await scorer.scoreBatch(ROWS);
  for (const [i, r] of ROWS.entries()) {
    const want = oracle(r.prompt, r.steps);
    assert.equal(batched[i].length, r.steps.length);
    for (const [k, x] of batched[i].entries()) assert.ok(Math.abs(x - want[k]) < 1e-4, `row ${i} step ${k}: ${x} vs ${want[k]}`);
    assert.ok(batched[i].every((x) => x < 0));
    const alone = await scorer.scoreSteps(r.prompt, r.steps); // alone = in a padded batch
    for (const [k, x] of alone.entries())
      assert.ok(Math.abs(x - batched[i][k]) < 1e-5, `row ${i} step ${k} alone ${x} vs batched ${batched[i][k]}`);
  }
  const outcome = await scorer.outcome().scoreBatch(ROWS);
  assert.deepEqual(
    outcome.slice(0, 3),
    batched.slice(0, 3).map((xs) => Math.min(...xs)),
  );
  assert.equal(outcome[3], Number.NEGATIVE_INFINITY);
  assert.equal(await scorer.outcome().scoreSolution(ROWS[2].prompt, ROWS[2].steps), outcome[2]);
});

test("confidence: spans are each step's text and separator; an empty separator is refused", () => {
  const scorer = new ConfidenceScorer(model, CLI_TOK);
  const { ids, spans } = scorer.encode(ROWS[2]);
  assert.deepEqual(
    spans.map(([s, e]) => CLI_TOK.decode(ids.slice(s, e))),
    ROWS[2].steps.map((s) => `${s}\n`),
  );
  assert.throws(() => new ConfidenceScorer(model, CLI_TOK, { stepSeparator: "" }), /stepSeparator must not be empty/);
});
