// GRPO with rollouts from an OpenAI-compatible server (`generatorUrl`): `nexus serve` runs in-process on
// loopback with a copy of the policy; every rollout comes back through HTTP with its token ids and sampling
// log-probs, which equal the policy's own log-probs recomputed locally (same weights), and training proceeds.

import assert from "node:assert/strict";
import { test } from "node:test";
import { startServer } from "../src/serve/server.js";
import { trainGrpo } from "../src/train/grpo.js";
import { completionLogprobsNoGrad, type Rollout } from "../src/train/rollout.js";
import { arithModel, onesReward as ones, ARITH_TOK as TOK } from "./helpers/tiny_model.js";

const tinyModel = () => arithModel(4);

test("GRPO samples its rollouts from a generator URL", async (t) => {
  const policy = tinyModel();
  const served = tinyModel(); // the same weights, held by the server
  const server = await startServer({ model: served, tokenizer: TOK, port: 0, host: "127.0.0.1" });
  t.after(() => server.close());
  const rollouts: Rollout[] = [];
  await trainGrpo({
    model: policy,
    tokenizer: TOK,
    data: [{ prompt: "0+1=" }, { prompt: "1+1=" }],
    rewardFuncs: [ones],
    config: {
      maxSteps: 1,
      numGenerations: 4,
      perDeviceTrainBatchSize: 8,
      maxCompletionLength: 6,
      learningRate: 1e-2,
      seed: 1,
      generatorUrl: server.url,
    },
    quiet: true,
    onBatch: (b) => {
      rollouts.push(b.rollout);
      // before the update, the local policy equals the served one: the server's sampling log-probs must match
      const local = completionLogprobsNoGrad(policy, b.rollout, TOK.padTokenId ?? 0, 8);
      for (const [i, lp] of b.rollout.samplingLogprobs.entries()) {
        assert.equal(lp.length, b.rollout.completionIds[i].length);
        for (const [j, v] of lp.entries())
          assert.ok(Math.abs(v - local[i][j]) < 1e-4, `completion ${i} token ${j}: server ${v}, local ${local[i][j]}`);
      }
    },
  });
  assert.equal(rollouts.length, 1);
  assert.equal(rollouts[0].completionIds.length, 8);
  assert.ok(rollouts[0].completionIds.some((c) => c.length > 0));
  // the policy trained (it is not the server's copy)
  const changed = [...policy.namedParameters()].some(([n, p]) => {
    const q = [...served.namedParameters()].find(([m]) => m === n)![1];
    return p.hostData().some((x, i) => x !== q.hostData()[i]);
  });
  assert.ok(changed);
});
