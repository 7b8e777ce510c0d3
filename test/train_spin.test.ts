// SPIN on a tiny Llama with a char tokenizer: the chosen completion is the data's, the rejected one is the policy's
// own sample (reproduced with the same seed), the reference is refreshed to the policy at the start of every
// iteration (bitwise equal there), the first loss of each iteration is ln 2, and self-play moves the policy
// toward the data (the data completion's log-prob rises).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { generate } from "../src/generate/generate.js";
import { encodePromptCompletion } from "../src/io/chat_encoding.js";
import { Rng } from "../src/nn/rng.js";
import { noGrad } from "../src/tensor/index.js";
import { epochOrder } from "../src/train/loop.js";
import { frozenCopy } from "../src/train/policy.js";
import { scoreSequences } from "../src/train/preference_data.js";
import type { Rollout } from "../src/train/rollout.js";
import { trainSpin } from "../src/train/spin.js";
import { assertClose } from "./helpers/check.js";
import { snapshot, TOK, tinyModel } from "./helpers/tiny_preference.js";

// the data completion copies the prompt: "=" + prompt
const ROWS = ["abcd", "bcda", "cdab", "dabc", "acbd", "bdac"].map((p) => ({ prompt: p, completion: `=${p}` }));

describe("SPIN", () => {
  test("chosen = data, rejected = the policy's sample; every iteration starts against a refreshed reference (loss ln 2)", async () => {
    const model = tinyModel(6);
    const initial = frozenCopy(model);
    const data = ROWS.map((r) => {
      const e = encodePromptCompletion(TOK, r.prompt, r.completion);
      return { promptIds: e.ids.slice(0, e.promptLength), completionIds: e.ids.slice(e.promptLength) };
    });
    const dataLogp = (m: typeof model) =>
      noGrad(
        () =>
          scoreSequences(m, data, 0)
            .logps.hostData()
            .reduce((a, b) => a + b, 0) / data.length,
      );
    const batches: Rollout[] = [];
    const res = await trainSpin({
      model,
      tokenizer: TOK,
      data: ROWS,
      config: {
        learningRate: 5e-3,
        beta: 0.1,
        perDeviceTrainBatchSize: 3,
        numTrainEpochs: 3,
        maxCompletionLength: 6,
        loggingSteps: 1,
        seed: 2,
      },
      quiet: true,
      onPairs: (r) => batches.push(r),
    });
    // step 1: rows 2k are the data completions, rows 2k + 1 exactly what the initial policy samples from the same seed
    const order = epochOrder(ROWS.length, 2, 0).slice(0, 3);
    const replay = generate(
      initial,
      order.map((i) => data[i].promptIds),
      { maxNewTokens: 6, temperature: 1, topP: 1, topK: 0, minP: 0, eosTokenId: TOK.eosTokenId, rng: new Rng(2), tokenizer: TOK },
    );
    order.forEach((i, k) => {
      assert.deepEqual(batches[0].completionIds[2 * k], data[i].completionIds);
      assert.deepEqual(batches[0].promptIds[2 * k + 1], data[i].promptIds);
      assert.deepEqual(batches[0].completionIds[2 * k + 1], replay[k].completionIds);
    });
    // 2 batches per iteration: the first step of each iteration compares the policy with itself
    const losses = res.run.history.filter((h) => typeof h.loss === "number").map((h) => h.loss as number);
    assert.equal(losses.length, 6);
    for (const k of [0, 2, 4]) assertClose(losses[k], Math.LN2, { atol: 1e-6, what: `first loss of iteration ${k / 2}` });
    assert.ok(losses[1] !== Math.LN2 && losses[3] !== Math.LN2);
    const before = dataLogp(initial);
    const after = dataLogp(model);
    console.log(`SPIN: data log-prob ${before.toFixed(3)} -> ${after.toFixed(3)}; losses ${losses.map((l) => l.toFixed(4)).join(", ")}`);
    assert.ok(after > before + 1, `the data completion should become likelier: ${before} -> ${after}`);
  });

  test("refreshReference false keeps the given reference bitwise; later iterations start away from ln 2", async () => {
    const model = tinyModel(7);
    const ref = frozenCopy(model);
    const ref0 = snapshot(ref);
    const res = await trainSpin({
      model,
      tokenizer: TOK,
      data: ROWS.slice(0, 3),
      refModel: ref,
      config: {
        numTrainEpochs: 2,
        refreshReference: false,
        learningRate: 5e-3,
        perDeviceTrainBatchSize: 3,
        maxCompletionLength: 4,
        loggingSteps: 1,
      },
      quiet: true,
    });
    for (const [n, v] of ref0) assert.deepEqual([...ref.namedParameters()].find(([m]) => m === n)?.[1].hostData(), v);
    assert.ok(Math.abs((res.run.history[1].loss as number) - Math.LN2) > 1e-4);
  });
});
