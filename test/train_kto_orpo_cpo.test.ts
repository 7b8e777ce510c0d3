// KTO, ORPO and CPO/SimPO trainers on the tiny Llama and synthetic preference set of helpers/tiny_preference.ts:
// each runs a few steps, lowers its loss and moves every parameter; KTO's first loss matches its closed form
// at policy == reference (z0 = 0, every example's loss 1 - sigmoid(0) = 0.5) and its KL pairs rotate by +1.
// Not here: the loss formulas (checked against TRL in losses_fixtures.test.ts).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CausalLM } from "../src/models/index.js";
import { trainCpo } from "../src/train/cpo.js";
import { klSequences, resolveKtoTrainConfig, trainKto } from "../src/train/kto.js";
import type { RunResult } from "../src/train/loop.js";
import { trainOrpo } from "../src/train/orpo.js";
import { tokenizeUnpaired } from "../src/train/preference_data.js";
import { preferenceRows, snapshot, TOK, tinyModel, unpairedRows } from "./helpers/tiny_preference.js";

const LOOP = { maxSteps: 10, perDeviceTrainBatchSize: 8, loggingSteps: 1, lrSchedulerType: "constant" as const, learningRate: 3e-3 };

function checkTrained(name: string, model: CausalLM, before: Map<string, Float32Array>, res: RunResult, drop = 0.05): void {
  const first = res.history[0].loss;
  const last = (res.history.at(-1) as { loss: number }).loss;
  assert.ok(Number.isFinite(first) && last < first - drop, `${name}: loss ${first} -> ${last}`);
  for (const [p, t] of model.namedParameters()) {
    const b = before.get(p) as Float32Array;
    assert.ok(
      t.hostData().some((v, i) => v !== b[i]),
      `${name}: parameter ${p} did not change`,
    );
  }
}

describe("KTO / ORPO / CPO trainers", () => {
  test("KTO: first loss 0.5 at policy == reference, then it falls and every parameter moves", async () => {
    const model = tinyModel(5);
    const before = snapshot(model);
    const res = await trainKto({ model, tokenizer: TOK, rows: unpairedRows(8), quiet: true, config: { ...LOOP, beta: 0.5 } });
    assert.ok(Math.abs(res.history[0].loss - 0.5) < 1e-6, `first loss ${res.history[0].loss}`);
    assert.equal(res.history[0].kl, 0);
    checkTrained("kto", model, before, res);
    // desirable examples gain reward relative to undesirable ones
    const last = res.history.at(-1) as Record<string, number>;
    assert.ok(last["rewards/chosen"] > last["rewards/rejected"], JSON.stringify(last));
  });

  test("KTO: KL pairs are prompt i with completion i-1; batch size 1 is rejected", () => {
    const cfg = resolveKtoTrainConfig({ maxLength: null });
    const rows = tokenizeUnpaired(TOK, unpairedRows(2).slice(0, 3), cfg);
    const kl = klSequences(rows, cfg);
    assert.deepEqual(kl[0], { promptIds: rows[0].seq.promptIds, completionIds: rows[2].seq.completionIds });
    assert.deepEqual(kl[1], { promptIds: rows[1].seq.promptIds, completionIds: rows[0].seq.completionIds });
    assert.deepEqual(kl[2], { promptIds: rows[2].seq.promptIds, completionIds: rows[1].seq.completionIds });
    assert.throws(() => resolveKtoTrainConfig({ perDeviceTrainBatchSize: 1 }), /perDeviceTrainBatchSize must be >= 2/);
    assert.doesNotThrow(() => resolveKtoTrainConfig({ perDeviceTrainBatchSize: 1, lossType: "apo_zero_unpaired" }));
  });

  test("ORPO: loss falls, chosen NLL falls, every parameter moves", async () => {
    const model = tinyModel(6);
    const before = snapshot(model);
    const res = await trainOrpo({ model, tokenizer: TOK, rows: preferenceRows(16), quiet: true, config: LOOP });
    checkTrained("orpo", model, before, res, 0.3);
    const [h0, hN] = [res.history[0], res.history.at(-1) as Record<string, number>];
    // at init the odds-ratio term is beta * ln 2-ish and the NLL ~ ln(vocab); the sum is the loss
    assert.ok(Math.abs(h0.loss - (h0.nll_loss + 0.1 * -Math.log(1 / (1 + Math.exp(-h0.log_odds_ratio))))) < 0.05);
    assert.ok(hN.nll_loss < h0.nll_loss, `nll ${h0.nll_loss} -> ${hN.nll_loss}`);
  });

  test("CPO (sigmoid) and SimPO: loss falls, every parameter moves; SimPO starts at -log sigmoid(-gamma) per pair", async () => {
    const cpoModel = tinyModel(7);
    const cpoBefore = snapshot(cpoModel);
    const cpo = await trainCpo({ model: cpoModel, tokenizer: TOK, rows: preferenceRows(16), quiet: true, config: LOOP });
    checkTrained("cpo", cpoModel, cpoBefore, cpo, 0.3);

    const model = tinyModel(8);
    const before = snapshot(model);
    const simpo = await trainCpo({
      model,
      tokenizer: TOK,
      rows: preferenceRows(16),
      quiet: true,
      config: { ...LOOP, lossType: "simpo", cpoAlpha: 0, beta: 2, simpoGamma: 1 },
    });
    checkTrained("simpo", model, before, simpo);
    // untrained: averaged log-probs of chosen and rejected are close, so the loss is near -log sigmoid(-1) = 1.313
    assert.ok(Math.abs(simpo.history[0].loss - 1.3133) < 0.1, `simpo first loss ${simpo.history[0].loss}`);
    const last = simpo.history.at(-1) as Record<string, number>;
    assert.ok(last["rewards/margins"] > 0, `simpo margin ${last["rewards/margins"]}`);
  });
});
