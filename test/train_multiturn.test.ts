// Multi-turn rollouts with an Environment: GRPO learns to use the calculator. Two-digit products ("37*48=") are out
// of reach of a tiny char-level Llama, but copying the expression into a tool call "[37*48]" gets the exact value
// appended by the calculator environment. SFT on 30% tool-call and 70% direct answers leaves the tool rarely used;
// GRPO with the accuracy reward (the last number of the completion, tool output included) raises the tool-call rate
// and the held-out accuracy. The environment's tokens carry mask 0 (no loss, no gradient) and reach the rewards as
// columns. Seeded; a few seconds on an idle 2-core machine.

import assert from "node:assert/strict";
import { test } from "node:test";
import { calculatorEnvironment } from "../src/agent/calculator.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { type CausalLM, createCausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import { accuracyReward } from "../src/rewards/rule.js";
import { namedReward } from "../src/rewards/types.js";
import { trainGrpo } from "../src/train/grpo.js";
import type { MicroBatch } from "../src/train/online_loop.js";
import { sampleCompletions } from "../src/train/sampling.js";
import { trainSft } from "../src/train/sft.js";

const TOK = new CharTokenizer("0123456789*[]=", { bosToken: null });
const ENV = calculatorEnvironment({ open: "[", close: "]", resultTemplate: "{value}", errorText: "=", maxCalls: 1 });

interface Problem {
  a: number;
  b: number;
}
const rng = new Rng(11);
const all: Problem[] = [];
const seen = new Set<string>();
while (all.length < 1160) {
  const p = { a: 10 + rng.int(90), b: 10 + rng.int(90) };
  if (!seen.has(`${p.a}*${p.b}`)) {
    seen.add(`${p.a}*${p.b}`);
    all.push(p);
  }
}
const TRAIN = all.slice(0, 1128);
const HELD_OUT = all.slice(1128);
const prompt = (p: Problem) => `${p.a}*${p.b}=`;

function model(): CausalLM {
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: TOK.vocabSize,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 32,
    tie_word_embeddings: false,
    eos_token_id: TOK.eosTokenId,
    pad_token_id: TOK.padTokenId,
  });
  return createCausalLM(cfg, { seed: 5 });
}

/** Sampled held-out accuracy and tool-call rate (4 samples per problem at temperature 1, with the calculator). */
async function heldOut(m: CausalLM): Promise<{ accuracy: number; toolRate: number }> {
  const rows = HELD_OUT.flatMap((p) => Array.from({ length: 4 }, () => p));
  const out = await sampleCompletions(
    { kind: "local", model: m },
    rows.map((p) => TOK.encode(prompt(p))),
    { maxCompletionLength: 14, temperature: 1, topP: 1, topK: 0, minP: 0, rng: new Rng(99), tokenizer: TOK, environment: ENV },
    rows.map((p) => ({ prompt: prompt(p), columns: {} })),
  );
  const right = out.filter((c, i) => (c.text.match(/\d+/g) ?? []).at(-1) === String(rows[i].a * rows[i].b)).length;
  return { accuracy: right / out.length, toolRate: out.filter((c) => c.text.startsWith("[")).length / out.length };
}

test("GRPO with a calculator environment learns to call it: tool use and held-out accuracy rise", async () => {
  const policy = model();
  const sftRng = new Rng(3);
  await trainSft({
    model: policy,
    tokenizer: TOK,
    data: TRAIN.map((p) => ({ prompt: prompt(p), completion: sftRng.next() < 0.3 ? `[${p.a}*${p.b}]${p.a * p.b}` : `${p.a * p.b}` })),
    config: { learningRate: 3e-3, maxSteps: 300, perDeviceTrainBatchSize: 32, lrSchedulerType: "constant", seed: 1 },
    quiet: true,
  });
  const before = await heldOut(policy);
  let envTokens = 0;
  const res = await trainGrpo({
    model: policy,
    tokenizer: TOK,
    data: TRAIN.map((p) => ({ prompt: prompt(p), answer: p.a * p.b })),
    rewardFuncs: [
      accuracyReward(),
      namedReward("tool_calls", (a) => (a.env_info ?? []).map((i) => Number((i as { tool_calls?: number })?.tool_calls ?? 0))),
    ],
    environment: ENV,
    config: {
      learningRate: 2e-3,
      maxSteps: 20,
      numGenerations: 4,
      perDeviceTrainBatchSize: 32,
      maxCompletionLength: 14,
      rewardWeights: [1, 0],
      lrSchedulerType: "constant",
      loggingSteps: 5,
      seed: 2,
    },
    quiet: true,
    onMicroBatch: (b, rows, out) => {
      // environment tokens are context: their mask is 0 in the loss and in the batch's token masks
      const mb = out.micro as MicroBatch;
      const tc = mb.packed.completionWidth;
      for (const [j, i] of rows.entries()) {
        const tm = b.rollout.tokenMasks?.[i];
        if (tm == null) continue;
        for (const [t, m] of tm.entries()) {
          if (m === 0) {
            envTokens++;
            assert.equal(mb.mask.hostData()[j * tc + t], 0);
            assert.equal(b.rollout.samplingLogprobs[i][t], 0);
          }
        }
      }
    },
  });
  const after = await heldOut(policy);
  const tools = res.run.history.map((h) => h["rewards/tool_calls/mean"] as number);
  console.log(
    `calculator GRPO: held-out accuracy ${before.accuracy.toFixed(3)} -> ${after.accuracy.toFixed(3)}, tool rate ${before.toolRate.toFixed(3)} -> ${after.toolRate.toFixed(3)}; train tool calls ${tools.map((x) => x.toFixed(2)).join(", ")}`,
  );
  assert.ok(envTokens > 0, "some rollouts called the tool");
  assert.ok(after.toolRate - before.toolRate >= 0.3, `tool rate ${before.toolRate} -> ${after.toolRate}`);
  assert.ok(after.accuracy - before.accuracy >= 0.25, `held-out accuracy ${before.accuracy} -> ${after.accuracy}`);
});
