// LLM-as-judge parsing (verdict lines, "none", out-of-range and missing verdicts → null), the judge prompt, judge
// labelling with a scripted judge (order kept under concurrency, unparseable counted), consensus filtering
// (Qwen 2501.07301) and the TRL stepwise output with and without truncation.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { StepwiseSupervisionSchema } from "../src/data/formats.js";
import {
  consensusFilter,
  firstErrorsAgree,
  judgeLabels,
  judgePrompt,
  labelsFromFirstError,
  parseJudgeReply,
  stepwiseFromFirstError,
  stepwiseFromLabels,
} from "../src/rewards/labels/index.js";

describe("judge replies", () => {
  const cases: [string, number | null][] = [
    ["Step 3 adds wrongly.\nfirst wrong step: 3", 2],
    ["All fine.\nFirst Wrong Step: none", -1],
    ["first wrong step: -1", -1],
    ["The instruction says 'first wrong step: K'. Checking... first wrong step: 2", 1],
    ["first wrong step is step 4", 3],
    ["first incorrect step = 1.", 0],
    ["first wrong step: 0", null], // steps are numbered from 1
    ["first wrong step: 6", null], // only 5 steps
    ["I think step 2 is wrong", null],
    ["", null],
  ];
  for (const [reply, want] of cases) {
    test(JSON.stringify(reply), () => assert.equal(parseJudgeReply(reply, 5), want));
  }

  test("the prompt numbers steps from 1", () => {
    const p = judgePrompt(" What is 1+2? ", ["1 + 2 = 3", "The answer is 3."]);
    assert.ok(p.includes("Problem:\nWhat is 1+2?\n\nSolution:\nStep 1: 1 + 2 = 3\nStep 2: The answer is 3.\n"));
  });

  test("judgeLabels keeps input order under concurrency and counts unparseable replies", async () => {
    const replies = ["first wrong step: 2", "garbage", "first wrong step: none", "first wrong step: 9"];
    const items = replies.map((_, i) => ({ prompt: `problem ${i}`, steps: ["a", "b", "c"] }));
    const judge = async (prompt: string) => {
      const i = Number(/problem (\d+)/.exec(prompt)![1]);
      await new Promise((r) => setTimeout(r, (4 - i) * 3)); // later items finish first
      return replies[i]!;
    };
    const { labels, stats } = await judgeLabels(judge, items, { concurrency: 3 });
    assert.deepEqual(
      labels.map((l) => l.firstError),
      [1, null, -1, null],
    );
    assert.deepEqual(
      labels.map((l) => l.reply),
      replies,
    );
    assert.deepEqual(stats, { total: 4, parsed: 2, unparseable: 2 });
  });
});

describe("consensus filter", () => {
  test("keeps agreement on the same step or on no error; counts missing and disagreeing judges", () => {
    const rows = [
      { mc: -1, judge: -1 as number | null },
      { mc: 2, judge: 2 },
      { mc: 1, judge: 3 },
      { mc: 0, judge: null },
      { mc: -1, judge: 0 },
    ];
    const { kept, stats } = consensusFilter(
      rows,
      (r) => r.mc,
      (r) => r.judge,
    );
    assert.deepEqual(
      kept.map((k) => [rows.indexOf(k.row), k.firstError]),
      [
        [0, -1],
        [1, 2],
      ],
    );
    assert.deepEqual(stats, { total: 5, kept: 2, judgeMissing: 1, disagreed: 2, keepRate: 0.4 });
    assert.equal(firstErrorsAgree(-1, null), false);
  });
});

describe("TRL stepwise output", () => {
  const steps = ["s0", "s1", "s2", "s3"];
  test("labels true before the first error, false at and after; truncation ends at the first false", () => {
    assert.deepEqual(labelsFromFirstError(4, 1), [true, false, false, false]);
    assert.deepEqual(labelsFromFirstError(4, -1), [true, true, true, true]);
    assert.throws(() => labelsFromFirstError(4, 4), /first error must be -1 or in \[0, 3\]/);
    const full = stepwiseFromFirstError("p", steps, 1, {}, { id: "x" });
    assert.deepEqual(full, { id: "x", prompt: "p", completions: steps, labels: [true, false, false, false] });
    assert.deepEqual(stepwiseFromFirstError("p", steps, 1, { truncate: true }), {
      prompt: "p",
      completions: ["s0", "s1"],
      labels: [true, false],
    });
    assert.deepEqual(stepwiseFromFirstError("p", steps, -1, { truncate: true }).labels, [true, true, true, true]);
    // MC hard labels need not be monotone: given labels are kept as they are, truncation cuts at the first false
    assert.deepEqual(stepwiseFromLabels("p", steps, [true, false, true, false]).labels, [true, false, true, false]);
    assert.deepEqual(stepwiseFromLabels("p", steps, [true, false, true, false], { truncate: true }).completions, ["s0", "s1"]);
    assert.ok(StepwiseSupervisionSchema.safeParse(full).success);
  });
});

describe("local judge", () => {
  test("replies with the model's greedy continuation of the judge prompt", async () => {
    const { CharTokenizer } = await import("../src/io/char_tokenizer.js");
    const { parseHfConfig } = await import("../src/io/hf_config.js");
    const { createCausalLM } = await import("../src/models/index.js");
    const { generate } = await import("../src/generate/generate.js");
    const { localJudge } = await import("../src/rewards/labels/index.js");
    const tok = new CharTokenizer(`${Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")}\n`);
    const cfg = parseHfConfig({
      model_type: "qwen2",
      vocab_size: tok.vocabSize,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_position_embeddings: 2048,
      tie_word_embeddings: true,
      pad_token_id: 0,
      eos_token_id: 1,
    });
    const model = createCausalLM(cfg, { seed: 5 });
    const judge = localJudge(model, tok, { maxNewTokens: 8 });
    const prompt = judgePrompt("what is 1+2?", ["1+2=3"]);
    const [ref] = generate(model, [tok.encode(prompt)], { maxNewTokens: 8, temperature: 0, tokenizer: tok });
    assert.equal(await judge(prompt), ref!.text);
    assert.equal((await judge(prompt)).length, 8);

    // concurrent calls share generate calls of at most maxBatch rows, with each row's own greedy reply
    // concurrent calls share generate calls of at most maxBatch rows, each row with its own greedy reply
    let forwards = 0;
    const counting = {
      config: model.config,
      lmHeadWeight: model.lmHeadWeight,
      forwardHidden: (x: Parameters<typeof model.forwardHidden>[0]) => {
        forwards++;
        return model.forwardHidden(x);
      },
    };
    const items = Array.from({ length: 6 }, (_, i) => ({ prompt: `what is ${i}+${i * 7}?`, steps: [`${i}+${i * 7}=${8 * i}`, "done"] }));
    const one = await judgeLabels(localJudge(counting, tok, { maxNewTokens: 8, maxBatch: 1 }), items, { concurrency: 6 });
    const oneForwards = forwards;
    forwards = 0;
    const batched = await judgeLabels(localJudge(counting, tok, { maxNewTokens: 8, maxBatch: 3 }), items, { concurrency: 6 });
    assert.deepEqual(
      batched.labels.map((l) => l.reply),
      one.labels.map((l) => l.reply),
    );
    for (const [i, it] of items.entries()) {
      const [g] = generate(model, [tok.encode(judgePrompt(it.prompt, it.steps))], { maxNewTokens: 8, temperature: 0, tokenizer: tok });
      assert.equal(batched.labels[i]!.reply, g!.text);
    }
    // two generate calls of 3 rows decode together: about a third of the forward passes of six single-row calls
    assert.ok(forwards * 2 < oneForwards, `${forwards} forward passes batched vs ${oneForwards} one by one`);
    assert.throws(() => localJudge(model, tok, { maxBatch: 0 }), /maxBatch must be an integer >= 1/);
  });
});
