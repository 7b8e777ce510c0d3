// SPIN on a tiny Llama with a char tokenizer: the chosen completion is the data's, the rejected one is the policy's
// own sample (reproduced with the same seed), the reference is refreshed to the policy at the start of every
// iteration (bitwise equal there), the first loss of each iteration is ln 2, and self-play moves the policy
// toward the data (the data completion's log-prob rises).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodePromptCompletion } from "../src/io/chat_encoding.js";
import { Rng } from "../src/nn/rng.js";
import { noGrad } from "../src/tensor/index.js";
import { frozenCopy } from "../src/train/dpo.js";
import { samplePolicy } from "../src/train/online_policy.js";
import type { PreferencePair } from "../src/train/preference_data.js";
import { scoreSequences } from "../src/train/preference_data.js";
import { trainSpin } from "../src/train/spin.js";
import { assertClose } from "./helpers/check.js";
import { snapshot, TOK, tinyModel } from "./helpers/tiny_preference.js";

// the data completion copies the prompt: "=" + prompt
const ROWS = ["abcd", "bcda", "cdab", "dabc", "acbd", "bdac"].map((p) => ({ prompt: p, completion: `=${p}` }));

describe("SPIN", () => {
  test("rejected = policy sample, chosen = data; the reference is refreshed each iteration", async () => {
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
    const pairsOf: PreferencePair[][] = [];
    const starts: { policy: Map<string, Float32Array>; ref: Map<string, Float32Array> }[] = [];
    const res = await trainSpin({
      model,
      tokenizer: TOK,
      rows: ROWS,
      config: {
        numIterations: 2,
        learningRate: 5e-3,
        beta: 0.1,
        perDeviceTrainBatchSize: 3,
        numTrainEpochs: 3,
        maxNewTokens: 6,
        loggingSteps: 1,
        seed: 2,
      },
      quiet: true,
      onIterationStart: (_it, { policy, reference }) => {
        assert.ok(reference.model !== null);
        starts.push({ policy: snapshot(policy), ref: snapshot(reference.model) });
      },
      onPairs: (_it, pairs) => pairsOf.push(pairs),
    });
    // iteration 0: chosen is the data, rejected is exactly what the initial policy samples with the same seed
    // (sampling runs in chunks of perDeviceTrainBatchSize × gradientAccumulationSteps prompts, one rng stream)
    const rng = new Rng(2);
    const replay = [0, 3].flatMap((k) =>
      samplePolicy(
        initial,
        data.slice(k, k + 3).map((d) => d.promptIds),
        { maxNewTokens: 6, temperature: 1, topP: 1, eosIds: [TOK.eosTokenId], rng, tokenizer: TOK },
      ),
    );
    pairsOf[0].forEach((p, i) => {
      assert.deepEqual(p.chosen, data[i]);
      assert.deepEqual(p.rejected.promptIds, data[i].promptIds);
      assert.deepEqual(p.rejected.completionIds, replay[i].completionIds);
    });
    assert.ok(pairsOf[1].some((p, i) => p.rejected.completionIds.join() !== pairsOf[0][i].rejected.completionIds.join()));
    // reference == policy at the start of both iterations, and the policy moved in between
    for (const s of starts) for (const [n, v] of s.policy) assert.deepEqual(s.ref.get(n), v, `reference ${n} != policy`);
    const moved = [...starts[1].policy].filter(([n, v]) => v.some((x, i) => x !== starts[0].policy.get(n)?.[i])).length;
    assert.ok(moved > 0, "iteration 1 trained the policy");
    // each iteration starts at policy == reference: loss ln 2
    assert.equal(res.iterations.length, 2);
    for (const it of res.iterations) assertClose(it.first_loss, Math.LN2, { atol: 1e-6, what: `iteration ${it.iteration} first loss` });
    const before = dataLogp(initial);
    const after = dataLogp(model);
    console.log(
      `SPIN: data log-prob ${before.toFixed(3)} -> ${after.toFixed(3)}; losses ${res.iterations.map((i) => `${i.first_loss.toFixed(4)}->${i.last_loss.toFixed(4)}`).join(", ")}`,
    );
    assert.ok(after > before + 1, `the data completion should become likelier: ${before} -> ${after}`);
  });

  test("refreshReference false keeps the initial policy as the reference", async () => {
    const model = tinyModel(7);
    const initial = snapshot(model);
    let refAt1: Map<string, Float32Array> | null = null;
    await trainSpin({
      model,
      tokenizer: TOK,
      rows: ROWS.slice(0, 3),
      config: { numIterations: 2, refreshReference: false, learningRate: 5e-3, perDeviceTrainBatchSize: 3, maxNewTokens: 4 },
      quiet: true,
      onIterationStart: (it, { reference }) => {
        if (it === 1 && reference.model) refAt1 = snapshot(reference.model);
      },
    });
    assert.ok(refAt1 !== null);
    for (const [n, v] of initial) assert.deepEqual((refAt1 as Map<string, Float32Array>).get(n), v);
  });
});
