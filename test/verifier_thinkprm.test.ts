// Generative verifier (ThinkPRM, src/rewards/verifier.ts) and its trainer (src/train/verifier_trainer.ts): chain
// format round trip, the gold-label filter keeps exactly the matching chains, the yes/no score equals a manual
// softmax over a full forward pass, K-sample averaging, and a tiny verifier fine-tune that lowers the loss.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  arithmeticSolution,
  checkArithmetic,
  corruptSolution,
  generateArithmetic,
  NOISE_KINDS,
  resolveArithmeticConfig,
} from "../src/data/tasks/arithmetic.js";
import { Mulberry32 } from "../src/data/tasks/rng.js";
import { splitSteps } from "../src/data/tasks/task.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import {
  buildVerificationChain,
  GenerativeVerifier,
  parseVerification,
  VERIFIER_CHARSET,
  VERIFIER_QUESTION,
  verifierPrompt,
} from "../src/rewards/verifier.js";
import { noGrad, tensor } from "../src/tensor/index.js";
import { buildVerifierData, chainMatchesGold, localCheckTeacher, trainVerifier } from "../src/train/verifier_trainer.js";

const TOK = new CharTokenizer(VERIFIER_CHARSET);
const CFG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 512,
  tie_word_embeddings: true,
  eos_token_id: TOK.eosTokenId,
  pad_token_id: TOK.padTokenId,
});

function solutions(n: number, seed: number) {
  const problems = generateArithmetic(resolveArithmeticConfig(), "train", n, seed);
  const rng = new Mulberry32(seed);
  return problems.map((p, i) => ({
    problem: p,
    text: i % 2 === 0 ? arithmeticSolution(p) : corruptSolution(p, NOISE_KINDS[i % 4]!, rng).text,
  }));
}

describe("verification chains", () => {
  test("format: stops at the first incorrect verdict; parse round-trips; filter compares with gold", () => {
    const steps = ["1 + 2 = 3", "3 * 2 = 7", "7 - 1 = 6", "The answer is 6."];
    const chain = buildVerificationChain(steps, [true, false, true, true]);
    assert.equal(chain, `Step 1: 1 + 2 = 3 correct\nStep 2: 3 * 2 = 7 incorrect\n${VERIFIER_QUESTION}no\n`);
    assert.deepEqual(parseVerification(chain), { verdicts: [true, false], decision: false, wellFormed: true });
    const ok = buildVerificationChain(steps, [true, true, true, true]);
    assert.ok(ok.endsWith(`${VERIFIER_QUESTION}yes\n`));
    assert.ok(chainMatchesGold(chain, [true, false, false, false]));
    assert.ok(!chainMatchesGold(chain, [true, true, false, false]), "wrong verdict on step 2's predecessor");
    assert.ok(!chainMatchesGold(ok, [true, false, false, false]));
    assert.ok(chainMatchesGold(ok, [true, true, true, true]));
    assert.ok(!chainMatchesGold(chain.replace("Step 2", "Step 3"), [true, false, false, false]), "misnumbered");
    assert.ok(!chainMatchesGold(chain.replace("no\n", "yes\n"), [true, false, false, false]), "decision disagrees");
  });

  test("filtering keeps exactly the chains whose verdicts match the checker's gold labels", () => {
    const sols = solutions(24, 5);
    const teacher = localCheckTeacher(0.15, 9);
    // replay the teacher with the same seed to know every proposal
    const replay = localCheckTeacher(0.15, 9);
    const data = buildVerifierData({ solutions: sols, teacher, samplesPerSolution: 4, keepPerSolution: 99, balance: false });
    const expected: string[] = [];
    let proposed = 0;
    let passed = 0;
    for (const s of sols) {
      const steps = splitSteps(s.text);
      const gold = checkArithmetic(s.problem, s.text).steps.map((x) => x.correct);
      const target = buildVerificationChain(steps, gold);
      const chains = replay(s.problem, steps, 4);
      proposed += chains.length;
      passed += chains.filter((c) => c === target).length;
      if (chains.includes(target)) expected.push(target);
    }
    assert.equal(data.proposed, proposed);
    assert.equal(data.passed, passed);
    assert.deepEqual(
      data.rows.map((r) => r.completion),
      expected,
    );
    assert.ok(passed > 0 && passed < proposed, `${passed}/${proposed} passed: the filter must remove some and keep some`);
    console.log(`# verifier chains: ${passed}/${proposed} passed the gold filter (${data.rows.length} unique kept)`);
    const balanced = buildVerifierData({ solutions: sols, teacher: localCheckTeacher(0.15, 9), balance: true });
    const pos = balanced.rows.filter((r) => r.solutionCorrect).length;
    assert.equal(pos, balanced.rows.length - pos);
  });
});

describe("generative verifier scores", () => {
  const model = createCausalLM(CFG, { seed: 3 });
  const verifier = new GenerativeVerifier(model, TOK, { numSamples: 3, maxNewTokens: 24, temperature: 1 });

  test("P(yes)/(P(yes)+P(no)) equals a manual softmax over the full forward's last logits", () => {
    const text = `${verifierPrompt("Start at 3. Add 4.\n", ["3 + 4 = 7", "The answer is 7."])}Step 1: 3 + 4 = 7 correct\n${VERIFIER_QUESTION}`;
    const ids = TOK.encode(text, { addSpecialTokens: false });
    const logits = noGrad(() => model.forward({ inputIds: tensor(ids, { dtype: "i32", shape: [1, ids.length] }) }).logits);
    const v = TOK.vocabSize;
    const row = Array.from(logits.hostData().subarray((ids.length - 1) * v, ids.length * v));
    const mx = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - mx), 0);
    const p = (id: number) => Math.exp(row[id]! - mx) / z;
    const y = p(TOK.encode("yes", { addSpecialTokens: false })[0]!);
    const n = p(TOK.encode("no", { addSpecialTokens: false })[0]!);
    const got = verifier.yesProbability(text);
    assert.ok(Math.abs(got - y / (y + n)) < 1e-6, `${got} vs ${y / (y + n)}`);
  });

  test("verify samples K chains and averages their yes-probabilities; step scores lie in [0, 1]", async () => {
    const steps = ["3 + 4 = 7", "The answer is 7."];
    const v = verifier.verify("Start at 3. Add 4.\n", steps);
    assert.equal(v.chains.length, 3);
    assert.equal(v.yesProbs.length, 3);
    const prompt = verifierPrompt("Start at 3. Add 4.\n", steps);
    v.chains.forEach((c, i) => {
      assert.ok(Math.abs(v.yesProbs[i]! - verifier.yesProbability(prompt + c + VERIFIER_QUESTION)) < 1e-12);
    });
    assert.ok(Math.abs(v.score - v.yesProbs.reduce((a, b) => a + b, 0) / 3) < 1e-12);
    const s = await verifier.scoreSteps("Start at 3. Add 4.\n", steps);
    assert.equal(s.length, 2);
    for (const x of s) assert.ok(x >= 0 && x <= 1);
  });
});

describe("verifier fine-tune", () => {
  test("SFT on filtered chains lowers the loss", async () => {
    const data = buildVerifierData({ solutions: solutions(24, 7), teacher: localCheckTeacher(0.1, 1), samplesPerSolution: 4 });
    assert.ok(data.rows.length >= 8, `${data.rows.length} rows`);
    const model = createCausalLM(CFG, { seed: 5 });
    const res = await trainVerifier({
      model,
      tokenizer: TOK,
      data,
      quiet: true,
      config: { learningRate: 1e-2, maxSteps: 25, perDeviceTrainBatchSize: 4, loggingSteps: 1, lrSchedulerType: "constant" },
    });
    const losses = res.run.history.filter((h) => h.loss !== undefined).map((h) => h.loss as number);
    const head = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const tail = losses.slice(-3).reduce((a, b) => a + b) / 3;
    console.log(`# verifier SFT on ${data.rows.length} chains: loss ${head.toFixed(3)} -> ${tail.toFixed(3)}`);
    assert.ok(tail < 0.6 * head, `loss ${head} -> ${tail}`);
  });
});
