// Monte Carlo labels (Math-Shepherd) against closed forms: the synthetic arithmetic completer writes each step
// correctly with probability p, so from a correct prefix with j of M steps written a rollout reaches the answer
// with probability q = p^(M-j). Over many draws the soft label's mean matches q and the hard label's frequency
// matches 1-(1-q)^N. Also: planted errors with a deterministic completer, truncation and rollout counts, and the
// model-backed generator (real CausalLM, char tokenizer) against generate() directly.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ARITHMETIC_CHARSET,
  arithmeticPrompt,
  checkArithmetic,
  corruptSolution,
  generateArithmetic,
  goldLines,
  Mulberry32,
  resolveArithmeticConfig,
} from "../src/data/index.js";
import { generate } from "../src/generate/generate.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import {
  ARITHMETIC_ANSWER,
  ArithmeticChainGenerator,
  goldAnswerChecker,
  joinSteps,
  ModelStepGenerator,
  mcLabels,
  parseArithmeticPrompt,
  splitSteps,
} from "../src/rewards/labels/index.js";

const CFG3 = resolveArithmeticConfig({ minSteps: 3, maxSteps: 3 });
const [PROBLEM] = generateArithmetic(CFG3, "train", 1, 7);
const PROMPT = arithmeticPrompt(PROBLEM!);
const GOLD = goldLines(PROBLEM!); // 3 ops + answer line: M = 4

describe("steps and checkers", () => {
  test("split/join with a custom separator, prompt parsing and both checkers", () => {
    assert.deepEqual(splitSteps("a\n\nb\n\n", "\n\n"), ["a", "b"]);
    assert.equal(joinSteps(["a", "b"], "\n\n"), "a\n\nb\n\n");
    assert.deepEqual(parseArithmeticPrompt(PROMPT), PROBLEM);
    assert.equal(parseArithmeticPrompt("What is 2+2?"), null);
    assert.equal(ARITHMETIC_ANSWER.answerCorrect(PROMPT, GOLD), true);
    const wrong = [...GOLD.slice(0, -1), "The answer is 100000."];
    assert.equal(ARITHMETIC_ANSWER.answerCorrect(PROMPT, wrong), false);
    const gold = goldAnswerChecker(() => "#### 3/4", "\n\n");
    assert.equal(gold.answerCorrect("q", ["x = 1/2 + 1/4", "so the answer is 0.75"]), true);
    assert.equal(gold.answerCorrect("q", ["the answer is 0.7"]), false);
  });
});

describe("synthetic completer", () => {
  test("p = 1 completes the gold solution from every correct prefix and counts its steps", async () => {
    const g = new ArithmeticChainGenerator({ p: 1, seed: 1 });
    for (let j = 0; j < GOLD.length; j++) {
      const [c] = await g.complete(PROMPT, GOLD.slice(0, j), 1);
      assert.deepEqual([...GOLD.slice(0, j), ...c!], GOLD);
    }
    assert.equal(g.stepsGenerated, 4 + 3 + 2 + 1);
    assert.deepEqual(await g.nextSteps(PROMPT, GOLD.slice(0, 1), 2), [GOLD[1], GOLD[1]]);
    assert.deepEqual(await g.complete(PROMPT, GOLD, 2), [[], []]); // after the answer line: nothing
    assert.equal(g.stepsGenerated, 12);
  });
});

describe("Math-Shepherd MC labels", () => {
  test("soft mean → p^(M-i-1) and hard frequency → 1-(1-q)^N over 3000 labelings (tolerances ≈ 4σ)", async () => {
    const p = 0.8;
    const N = 4;
    const reps = 3000;
    const M = GOLD.length;
    const g = new ArithmeticChainGenerator({ p, seed: 123 });
    const softSum = new Array<number>(M).fill(0);
    const hardSum = new Array<number>(M).fill(0);
    for (let r = 0; r < reps; r++) {
      const l = await mcLabels(g, ARITHMETIC_ANSWER, PROMPT, GOLD, { rollouts: N });
      assert.equal(l.rollouts, N * (M - 1)); // the last step is checked, not rolled out
      l.soft.forEach((s, i) => {
        softSum[i]! += s;
        hardSum[i]! += l.hard[i] ? 1 : 0;
      });
    }
    for (let i = 0; i < M; i++) {
      const q = p ** (M - i - 1); // 0.512, 0.64, 0.8, 1
      const softMean = softSum[i]! / reps;
      const hardFreq = hardSum[i]! / reps;
      const hardP = 1 - (1 - q) ** N;
      // σ(soft mean) = sqrt(q(1-q)/(N·reps)) ≤ 0.0046; σ(hard freq) = sqrt(h(1-h)/reps) ≤ 0.0091
      assert.ok(Math.abs(softMean - q) < 0.02, `step ${i}: soft mean ${softMean} vs ${q}`);
      assert.ok(Math.abs(hardFreq - hardP) < 0.035, `step ${i}: hard freq ${hardFreq} vs ${hardP}`);
    }
  });

  test("planted error with a deterministic completer: labels flip exactly at the error; truncation saves rollouts", async () => {
    const cfg = resolveArithmeticConfig({ minSteps: 6, maxSteps: 6, ops: ["+", "-"] });
    const [pr] = generateArithmetic(cfg, "train", 1, 3);
    const prompt = arithmeticPrompt(pr!);
    const rng = new Mulberry32(5);
    for (let e = 0; e < 6; e++) {
      const flawed = corruptSolution(pr!, "slip", rng, e);
      assert.equal(flawed.firstErrorIndex, e);
      const steps = splitSteps(flawed.text);
      const M = steps.length; // 7
      const g = new ArithmeticChainGenerator({ p: 1, seed: 0 });
      const full = await mcLabels(g, ARITHMETIC_ANSWER, prompt, steps, { rollouts: 3 });
      assert.deepEqual(
        full.hard,
        steps.map((_, i) => i < e),
      );
      assert.deepEqual(
        full.soft,
        steps.map((_, i) => (i < e ? 1 : 0)),
      );
      assert.equal(full.firstError, e);
      assert.equal(full.rollouts, 3 * (M - 1));
      // rollout from prefix length j (j = 1..M-1) writes M - j steps, 3 times each
      assert.equal(full.stepsGenerated, (3 * ((M - 1) * M)) / 2);
      const cut = await mcLabels(g, ARITHMETIC_ANSWER, prompt, steps, { rollouts: 3, truncateAfterFirstNegative: true });
      assert.deepEqual(cut.hard, full.hard);
      assert.equal(cut.rollouts, 3 * (e + 1));
      assert.equal(checkArithmetic(pr!, flawed.text).firstErrorIndex, cut.firstError);
    }
  });
});

describe("model-backed step generator", () => {
  const tok = new CharTokenizer(ARITHMETIC_CHARSET);
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 256,
    tie_word_embeddings: false,
    pad_token_id: 0,
    eos_token_id: 1,
  });
  const model = createCausalLM(cfg, { seed: 3 });
  const prefix = GOLD.slice(0, 1);

  test("complete() equals generate() on the same stream, split into steps; stepsGenerated counts them", async () => {
    const gen = new ModelStepGenerator(model, tok, { seed: 11, maxCompletionTokens: 30, temperature: 1 });
    const got = await gen.complete(PROMPT, prefix, 3);
    const ids = tok.encode(PROMPT + joinSteps(prefix));
    const ref = generate(model, [ids, ids, ids], { maxNewTokens: 30, temperature: 1, tokenizer: tok, rng: new Rng(11) });
    assert.deepEqual(
      got,
      ref.map((r) => splitSteps(r.text!)),
    );
    const total = got.reduce((s, c) => s + c.length, 0);
    assert.ok(total > 0);
    assert.equal(gen.stepsGenerated, total);
  });

  test("nextSteps() stops at the separator: n single steps, each counted", async () => {
    const gen = new ModelStepGenerator(model, tok, { seed: 2, maxStepTokens: 12 });
    const steps = await gen.nextSteps(PROMPT, prefix, 4);
    assert.equal(steps.length, 4);
    for (const s of steps) assert.ok(!s.includes("\n") && s.length <= 12);
    assert.equal(gen.stepsGenerated, 4);
    const fin = new ModelStepGenerator(model, tok, { isFinal: (s) => s.startsWith("The answer") });
    assert.deepEqual(await fin.nextSteps(PROMPT, GOLD, 2), []);
    assert.deepEqual(await fin.complete(PROMPT, GOLD, 2), [[], []]);
    assert.equal(fin.stepsGenerated, 0);
  });
});
