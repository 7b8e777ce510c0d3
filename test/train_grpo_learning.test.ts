// GRPO learns: on the digit-sum task ("3+5=" → "8"), a tiny Llama (char tokenizer, D 64, 2 layers) SFT'd for 60
// steps to a middling accuracy, then GRPO with the accuracy reward (G 8, 16 prompts per step, 400 steps, lr 3e-4,
// beta 0, TRL's default dapo loss) raises greedy accuracy on the held-out problems (validation + test splits,
// never seen in SFT or RL) by at least 15 points. Seeded and deterministic; about 7 s on an idle 2-core machine.
// Measured at seeds 0-3: held-out 25→45, 20→50, 20→50, 20→55 (train 49→81, 39→80, 35→80, 34→90); this test uses seed 3.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type DigitSumProblem, digitSumKey, digitSumPrompt, digitSumSolution, splitOf } from "../src/data/index.js";
import { generate } from "../src/generate/generate.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { type CausalLM, createCausalLM } from "../src/models/index.js";
import { accuracyReward } from "../src/rewards/index.js";
import { trainGrpo } from "../src/train/grpo.js";
import { trainSft } from "../src/train/sft.js";

const SEED = 3;
const TOK = new CharTokenizer("0123456789+=\n", { bosToken: null });
const ALL: DigitSumProblem[] = Array.from({ length: 100 }, (_, i) => ({ a: Math.floor(i / 10), b: i % 10 }));
const TRAIN = ALL.filter((p) => splitOf(digitSumKey(p)) === "train");
const HELD_OUT = ALL.filter((p) => splitOf(digitSumKey(p)) !== "train");

function model(): CausalLM {
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: TOK.vocabSize,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 16,
    tie_word_embeddings: false,
    eos_token_id: TOK.eosTokenId,
    pad_token_id: TOK.padTokenId,
  });
  return createCausalLM(cfg, { seed: SEED });
}

/** Greedy accuracy: the completion (up to EOS) is exactly the sum. */
function accuracy(m: CausalLM, problems: readonly DigitSumProblem[]): number {
  const gens = generate(
    m,
    problems.map((p) => TOK.encode(digitSumPrompt(p))),
    { maxNewTokens: 4, temperature: 0, tokenizer: TOK, eosTokenId: TOK.eosTokenId },
  );
  return gens.filter((g, i) => g.text!.trim() === String(problems[i].a + problems[i].b)).length / problems.length;
}

test("GRPO with the accuracy reward raises held-out greedy accuracy on digit sums by >= 15 points", async () => {
  assert.equal(HELD_OUT.length, 20);
  const policy = model();
  await trainSft({
    model: policy,
    tokenizer: TOK,
    data: TRAIN.map((p) => ({ prompt: digitSumPrompt(p), completion: digitSumSolution(p) })),
    config: { learningRate: 3e-3, maxSteps: 60, perDeviceTrainBatchSize: 16, lrSchedulerType: "constant", seed: 1 },
    quiet: true,
  });
  const sftHeld = accuracy(policy, HELD_OUT);
  const sftTrain = accuracy(policy, TRAIN);
  assert.ok(sftHeld >= 0.1 && sftHeld <= 0.5, `SFT should leave a middling accuracy, got ${sftHeld}`);

  const res = await trainGrpo({
    model: policy,
    tokenizer: TOK,
    data: TRAIN.map((p) => ({ prompt: digitSumPrompt(p), answer: p.a + p.b })),
    rewardFuncs: [accuracyReward()],
    config: {
      learningRate: 3e-4,
      maxSteps: 400,
      numGenerations: 8,
      perDeviceTrainBatchSize: 128,
      maxCompletionLength: 4,
      lrSchedulerType: "constant",
      loggingSteps: 50,
      seed: 3,
    },
    quiet: true,
  });
  const grpoHeld = accuracy(policy, HELD_OUT);
  const grpoTrain = accuracy(policy, TRAIN);
  const rewards = res.run.history.map((h) => h.reward as number);
  assert.ok(rewards[rewards.length - 1] > rewards[0], `sampled reward should rise: ${rewards.join(", ")}`);
  assert.ok(grpoTrain > sftTrain, `train accuracy ${sftTrain} -> ${grpoTrain}`);
  assert.ok(grpoHeld - sftHeld >= 0.15, `held-out accuracy ${sftHeld} -> ${grpoHeld} (train ${sftTrain} -> ${grpoTrain})`);
});
