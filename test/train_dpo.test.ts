// DPO trainer invariants on a tiny Llama (CharTokenizer vocab, D 32, 2 layers) and a synthetic preference set
// where the chosen completion copies the prompt and the rejected one is random: the first logged loss is ln 2,
// training raises the implicit-reward margin and accuracy, moves every parameter and never the reference,
// precomputed reference log-probs match the live reference, and conversational / implicit-prompt rows work.
// Not here: the loss formulas themselves (losses_fixtures.test.ts checks them against TRL).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadDataset, type PreferenceRow } from "../src/data/index.js";
import type { CausalLM } from "../src/models/index.js";
import { applyLora } from "../src/models/lora.js";
import { noGrad } from "../src/tensor/index.js";
import { createDpoTask, createReference, precomputeReference, resolveDpoTrainConfig, trainDpo } from "../src/train/dpo.js";
import { frozenCopy } from "../src/train/policy.js";
import { tokenizePreference, truncateSequence } from "../src/train/preference_data.js";
import { preferenceRows, snapshot, TOK, tinyModel } from "./helpers/tiny_preference.js";

/** Margin and accuracy of the implicit reward over every pair, without training. */
function evaluate(model: CausalLM, ref: CausalLM, rows: PreferenceRow[]) {
  const config = resolveDpoTrainConfig({ maxLength: null, beta: 0.5 });
  const pairs = tokenizePreference(TOK, rows, config);
  const task = createDpoTask({ policy: model, config, padId: 0, reference: createReference(model, 0, { refModel: ref }) });
  return noGrad(() => task.lossSum(pairs)) as { metrics: Record<string, number> };
}

describe("DPO trainer", () => {
  test("first logged loss is ln 2; training raises margin and accuracy; every param moves, the reference never", async () => {
    const model = tinyModel();
    const ref = frozenCopy(model);
    const refBefore = snapshot(ref);
    const before = snapshot(model);
    const rows = preferenceRows(16);
    const res = await trainDpo({
      model,
      tokenizer: TOK,
      rows,
      refModel: ref,
      quiet: true,
      config: { learningRate: 3e-3, maxSteps: 12, perDeviceTrainBatchSize: 8, loggingSteps: 1, lrSchedulerType: "constant", beta: 0.5 },
    });
    const first = res.history[0];
    assert.ok(Math.abs(first.loss - Math.LN2) < 1e-6, `first loss ${first.loss} vs ln 2 = ${Math.LN2}`);
    assert.equal(first["rewards/margins"], 0);
    assert.equal(first["rewards/accuracies"], 0); // strict >, every reward is 0
    const last = res.history.at(-1) as Record<string, number>;
    assert.ok(last.loss < first.loss - 0.1, `loss ${first.loss} -> ${last.loss}`);

    const ev = evaluate(model, ref, rows).metrics;
    // measured: margin 0 -> ~1.8 (beta 0.5), accuracy 0 -> 1.0 over the 16 pairs
    assert.ok(ev["rewards/margins"] > 1, `margin after training ${ev["rewards/margins"]}`);
    assert.ok(ev["rewards/accuracies"] >= 0.9, `accuracy after training ${ev["rewards/accuracies"]}`);
    assert.ok(ev["rewards/chosen"] > ev["rewards/rejected"]);

    for (const [name, t] of model.namedParameters()) {
      const b = before.get(name) as Float32Array;
      assert.ok(
        t.hostData().some((v, i) => v !== b[i]),
        `parameter ${name} did not change`,
      );
    }
    for (const [name, t] of ref.namedParameters()) {
      assert.deepEqual(t.hostData(), refBefore.get(name), `reference parameter ${name} changed`);
      assert.equal(t.requiresGrad, false);
    }
  });

  test("precomputed reference log-probs give the live reference's loss and gradients", () => {
    const config = resolveDpoTrainConfig({ maxLength: null, perDeviceTrainBatchSize: 3 });
    const rows = preferenceRows(6, 11);
    const lossAndGrads = (precompute: boolean) => {
      const model = tinyModel(3);
      const reference = createReference(model, 0);
      const pairs = tokenizePreference(TOK, rows, config);
      if (precompute) precomputeReference(pairs, reference, config.perDeviceTrainBatchSize);
      const task = createDpoTask({ policy: model, config, padId: 0, reference: precompute ? null : reference });
      const mb = [pairs[4], pairs[0], pairs[2], pairs[5]]; // a different grouping than the precompute's chunks
      const { loss } = task.lossSum(mb) as { loss: import("../src/tensor/index.js").Tensor };
      loss.backward();
      return { loss: loss.item(), grads: model.parameters().map((p) => Float32Array.from(p.grad?.hostData() ?? [])) };
    };
    const live = lossAndGrads(false);
    const pre = lossAndGrads(true);
    assert.ok(Math.abs(live.loss - 4 * Math.LN2) < 1e-5, `summed loss ${live.loss} vs 4 ln 2`);
    assert.ok(Math.abs(live.loss - pre.loss) < 1e-5, `live ${live.loss} vs precomputed ${pre.loss}`);
    let maxDiff = 0;
    let maxAbs = 0;
    live.grads.forEach((g, k) => {
      assert.equal(g.length, pre.grads[k].length);
      g.forEach((v, i) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - pre.grads[k][i]));
        maxAbs = Math.max(maxAbs, Math.abs(v));
      });
    });
    assert.ok(maxAbs > 1e-4, "gradients are not all zero");
    assert.ok(maxDiff < 1e-5 * Math.max(1, maxAbs), `max grad difference ${maxDiff} (max |grad| ${maxAbs})`);
  });

  test("trainer with precomputeRefLogProbs starts at ln 2 and trains", async () => {
    const model = tinyModel(1);
    const res = await trainDpo({
      model,
      tokenizer: TOK,
      rows: preferenceRows(8, 3),
      quiet: true,
      config: { precomputeRefLogProbs: true, learningRate: 3e-3, maxSteps: 4, perDeviceTrainBatchSize: 4, loggingSteps: 1 },
    });
    assert.ok(Math.abs(res.history[0].loss - Math.LN2) < 1e-5, `first loss ${res.history[0].loss}`);
    assert.ok(res.pairs.every((p) => Number.isFinite(p.refChosenLogps) && Number.isFinite(p.refRejectedLogps)));
  });

  test("under LoRA the reference is the base with adapters off: ln 2 first, base weights never move", async () => {
    const base = tinyModel(9);
    const baseBefore = snapshot(base);
    const lora = applyLora(base, { r: 4, loraAlpha: 8 });
    const adaptersBefore = [...snapshot(lora).entries()].filter(([n]) => n.startsWith("adapters."));
    const res = await trainDpo({
      model: lora,
      tokenizer: TOK,
      rows: preferenceRows(8, 2),
      quiet: true,
      config: { maxSteps: 4, perDeviceTrainBatchSize: 4, loggingSteps: 1, learningRate: 1e-2 },
    });
    assert.ok(Math.abs(res.history[0].loss - Math.LN2) < 1e-6, `first loss ${res.history[0].loss}`);
    assert.ok((res.history.at(-1) as { loss: number }).loss < Math.LN2);
    for (const [name, t] of base.namedParameters()) assert.deepEqual(t.hostData(), baseBefore.get(name), `base ${name} changed`);
    const now = snapshot(lora);
    assert.ok(adaptersBefore.length > 0);
    assert.ok(
      adaptersBefore.some(([n, v]) => (now.get(n) as Float32Array).some((x, i) => x !== v[i])),
      "no adapter moved",
    );
  });

  test("list lossType [sigmoid, sft] adds the chosen NLL; ipo uses token-averaged scores", async () => {
    const model = tinyModel(2);
    const rows = preferenceRows(4, 5);
    const run = (config: Record<string, unknown>) =>
      trainDpo({
        model,
        tokenizer: TOK,
        rows,
        quiet: true,
        config: { maxSteps: 1, perDeviceTrainBatchSize: 4, learningRate: 1e-9, ...config },
      });
    const sft = (await run({ lossType: ["sigmoid", "sft"], lossWeights: [1, 0.5] })).history[0].loss;
    const plainSft = (await run({ lossType: "sft" })).history[0].loss;
    assert.ok(Math.abs(sft - (Math.LN2 + 0.5 * plainSft)) < 1e-4, `${sft} vs ln2 + 0.5 * ${plainSft}`);
    assert.ok(plainSft > 1, "sft term is the chosen NLL of an untrained model"); // ~ln(vocab) per token
    const ipo = (await run({ lossType: "ipo", beta: 0.1 })).history[0].loss;
    assert.ok(Math.abs(ipo - 25) < 1e-3, `ipo at policy == ref is (1 / (2 beta))^2 = 25, got ${ipo}`);
  });

  test("conversational and implicit-prompt rows tokenize like TRL and train", async () => {
    const conv: PreferenceRow[] = [
      {
        prompt: [{ role: "user", content: "abcd" }],
        chosen: [{ role: "assistant", content: "=abcd" }],
        rejected: [{ role: "assistant", content: "=dd" }],
      },
      {
        // implicit prompt: the shared first message becomes the prompt
        chosen: [
          { role: "user", content: "ca" },
          { role: "assistant", content: "=ca" },
        ],
        rejected: [
          { role: "user", content: "ca" },
          { role: "assistant", content: "=bb" },
        ],
      },
    ];
    const pairs = tokenizePreference(TOK, conv, resolveDpoTrainConfig());
    assert.equal(TOK.decode(pairs[0].chosen.promptIds), "u:abcd a:");
    assert.equal(TOK.decode(pairs[0].chosen.completionIds), "=abcd ");
    assert.equal(TOK.decode(pairs[1].rejected.promptIds), "u:ca a:");
    assert.equal(TOK.decode(pairs[1].rejected.completionIds), "=bb ");
    const res = await trainDpo({
      model: tinyModel(4),
      tokenizer: TOK,
      rows: conv,
      quiet: true,
      config: { maxSteps: 2, loggingSteps: 1, learningRate: 1e-3 },
    });
    assert.ok(Math.abs(res.history[0].loss - Math.LN2) < 1e-6);
    assert.ok(res.history[1].loss < Math.LN2, `second-step loss ${res.history[1].loss}`);

    const implicitText = tokenizePreference(TOK, [{ chosen: "ab ab", rejected: "ab cd" }], resolveDpoTrainConfig());
    assert.equal(TOK.decode(implicitText[0].chosen.promptIds), "ab");
    assert.equal(TOK.decode(implicitText[0].chosen.completionIds, { skipSpecialTokens: false }), " ab<eos>");
  });

  test("truncation: prompt from the left, completion kept from its start", () => {
    const s = { promptIds: [1, 2, 3, 4, 5], completionIds: [6, 7, 8, 9] };
    const base = { maxLength: null, maxPromptLength: null, maxCompletionLength: null, truncationMode: "keep_start" as const };
    assert.deepEqual(truncateSequence(s, { ...base, maxPromptLength: 2 }), { promptIds: [4, 5], completionIds: [6, 7, 8, 9] });
    assert.deepEqual(truncateSequence(s, { ...base, maxLength: 7 }), { promptIds: [1, 2, 3, 4, 5], completionIds: [6, 7] });
    assert.deepEqual(truncateSequence(s, { ...base, maxPromptLength: 3, maxLength: 5 }), { promptIds: [3, 4, 5], completionIds: [6, 7] });
    assert.deepEqual(truncateSequence(s, { ...base, maxLength: 6, truncationMode: "keep_end" }), {
      promptIds: [4, 5],
      completionIds: [6, 7, 8, 9],
    });
    assert.throws(
      () => tokenizePreference(TOK, [{ prompt: "abcd", chosen: "=a", rejected: "=b" }], resolveDpoTrainConfig({ maxLength: 4 }), "d.jsonl"),
      /d\.jsonl row 1: field "chosen" has no tokens left after truncation/,
    );
  });

  test("a malformed row names the file, the line and the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-dpo-"));
    try {
      const file = join(dir, "prefs.jsonl");
      writeFileSync(
        file,
        `${JSON.stringify({ prompt: "ab", chosen: "=ab", rejected: "=cd" })}\n${JSON.stringify({ prompt: "ab", chosen: "=ab", rejected: 3 })}\n`,
      );
      assert.throws(
        () => loadDataset(file, "preference"),
        (e: Error) => e.message.includes(`${file}:2`) && e.message.includes('"rejected"'),
      );
      // a character the tokenizer does not know is reported with the row and field too
      assert.throws(
        () => tokenizePreference(TOK, [{ prompt: "ab", chosen: "=ab", rejected: "=Q" }], resolveDpoTrainConfig(), file),
        (e: Error) => e.message.startsWith(`${file} row 1: field "rejected"`),
      );
      assert.throws(() => resolveDpoTrainConfig({ lossType: "sigmoidd" as never }), /dpo/);
      assert.throws(() => resolveDpoTrainConfig({ lossType: ["sigmoid", "ipo"], lossWeights: [1] }), /lossWeights has 1 entries/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
