// Generation against the HF fixtures and against itself: greedy ids equal transformers' generate; a left-padded
// batch gives each row the ids it gets alone; returned log-probs equal a teacher-forced forward (1e-4 abs);
// seeds; eos / stop / length finish reasons; top-k / top-p / min-p masks checked against hand-computed ones.
// Fixtures: ../shared/fixtures/hf/README.md.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { generate, leftPad } from "../src/generate/generate.js";
import { filterMask, sampleToken, tokenLogprob } from "../src/generate/sampling.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { type CausalLM, loadCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { div, fromArray, noGrad, slice, Tensor, tokenLogprobs } from "../src/tensor/index.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const MODELS = ["llama-tiny", "qwen2-tiny"] as const;
/** Log-probs from generation vs a teacher-forced forward of the full sequence (float32, different batch shapes). */
const LOGPROB_TOL = 1e-4;

const models = new Map<string, Promise<CausalLM>>();
function model(name: string): Promise<CausalLM> {
  if (!models.has(name)) models.set(name, loadCausalLM(path.join(FIXTURES, name)));
  return models.get(name) as Promise<CausalLM>;
}

/** A character tokenizer covering all 384 ids of the fixture models (so any sampled id decodes). */
function fixtureTokenizer(): CharTokenizer {
  const chars = Array.from({ length: 381 }, (_, i) => String.fromCodePoint(0x21 + i));
  const tok = new CharTokenizer(chars);
  assert.equal(tok.vocabSize, 384);
  return tok;
}

/** Prompts of different lengths taken from a fixed id stream. */
function prompts(lengths: readonly number[], seed = 1): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => 3 + rng.int(380)));
}

/** Teacher-forced log p(seq[t+1] | seq[..t]) / temperature for the completion part of one row (alone). */
function teacherForced(m: CausalLM, promptIds: number[], completion: number[], temperature: number): number[] {
  const seq = [...promptIds, ...completion];
  const n = seq.length;
  return noGrad(() => {
    const logits = m.forward({ inputIds: fromArray(Int32Array.from(seq), [1, n]) }).logits; // (1, n, V)
    const scaled = div(slice(logits, 1, promptIds.length - 1, n - 1), temperature); // logits predicting the completion
    const lp = tokenLogprobs(scaled, fromArray(Int32Array.from(completion), [1, completion.length]));
    return Array.from(lp.hostData());
  });
}

describe("generate: HF fixtures", () => {
  for (const name of MODELS) {
    test(`${name}: greedy generation reproduces transformers' generate exactly`, async () => {
      const m = await model(name);
      const gen = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, "generate.json"), "utf-8")) as {
        prompt: number[];
        greedy: number[];
      };
      const maxNewTokens = gen.greedy.length - gen.prompt.length;
      const [out] = generate(m, [gen.prompt], { maxNewTokens, temperature: 0 });
      assert.deepEqual([...out.promptIds, ...out.completionIds], gen.greedy);
      assert.equal(out.finishReason, "length");
      assert.equal(out.logprobs.length, maxNewTokens);
      // greedy log-probs are at temperature 1 and are the max of each row: all <= 0
      assert.ok(out.logprobs.every((x) => x <= 0 && Number.isFinite(x)));
    });
  }
});

describe("generate: batching and left padding", () => {
  for (const name of MODELS) {
    test(`${name}: a left-padded batch gives every row the greedy ids it gets alone`, async () => {
      const m = await model(name);
      const ps = prompts([7, 2, 11, 4, 1]);
      const batched = generate(m, ps, { maxNewTokens: 9, temperature: 0, eosTokenId: null });
      ps.forEach((p, i) => {
        const [alone] = generate(m, [p], { maxNewTokens: 9, temperature: 0, eosTokenId: null });
        assert.deepEqual(batched[i].promptIds, p);
        assert.deepEqual(batched[i].completionIds, alone.completionIds, `row ${i} (prompt length ${p.length})`);
        for (let j = 0; j < alone.logprobs.length; j++) assert.ok(Math.abs(batched[i].logprobs[j] - alone.logprobs[j]) < 1e-5);
      });
    });

    test(`${name}: rows that finish early leave the batch without changing the others`, async () => {
      const m = await model(name);
      const ps = prompts([5, 3, 8], 7);
      const free = generate(m, ps, { maxNewTokens: 8, temperature: 0, eosTokenId: null });
      // make row 1's third token its eos: row 1 stops at 3 tokens, the rest run on after it leaves the batch
      const eos = free[1].completionIds[2];
      const stopped = generate(m, ps, { maxNewTokens: 8, temperature: 0, eosTokenId: eos });
      stopped.forEach((g, i) => {
        const first = free[i].completionIds.indexOf(eos);
        const expected = first < 0 ? free[i].completionIds : free[i].completionIds.slice(0, first + 1);
        assert.deepEqual(g.completionIds, expected, `row ${i}`);
        assert.equal(g.finishReason, first < 0 ? "length" : "eos");
        assert.equal(g.logprobs.length, g.completionIds.length);
      });
      assert.equal(stopped[1].finishReason, "eos");
      assert.ok(stopped[1].completionIds.length <= 3);
    });
  }

  test("leftPad puts the padding first and masks it", () => {
    const { ids, mask } = leftPad([[5, 6, 7], [9]], 0);
    assert.deepEqual(Array.from(ids.hostData()), [5, 6, 7, 0, 0, 9]);
    assert.deepEqual(Array.from(mask.hostData()), [1, 1, 1, 0, 0, 1]);
  });
});

describe("generate: log-probs and seeds", () => {
  for (const name of MODELS) {
    test(`${name}: sampled log-probs equal a teacher-forced forward within ${LOGPROB_TOL}`, async () => {
      const m = await model(name);
      const ps = prompts([6, 3, 9], 3);
      for (const sampling of [
        { temperature: 0.7 },
        { temperature: 0.7, topK: 20 },
        { temperature: 0.7, topP: 0.9 },
        { temperature: 1.3, topK: 50, topP: 0.95, minP: 0.05 },
      ]) {
        const out = generate(m, ps, { maxNewTokens: 10, eosTokenId: null, seed: 11, ...sampling });
        let worst = 0;
        out.forEach((g) => {
          const ref = teacherForced(m, g.promptIds, g.completionIds, sampling.temperature);
          for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(ref[j] - g.logprobs[j]));
        });
        assert.ok(worst < LOGPROB_TOL, `${JSON.stringify(sampling)}: max |generated - teacher-forced| = ${worst}`);
      }
    });
  }

  test("same seed gives identical samples; another seed gives different ones; an Rng continues its stream", async () => {
    const m = await model("llama-tiny");
    const ps = prompts([4, 6], 5);
    const opts = { maxNewTokens: 12, temperature: 1, eosTokenId: null };
    const a = generate(m, ps, { ...opts, seed: 42 });
    const b = generate(m, ps, { ...opts, seed: 42 });
    const c = generate(m, ps, { ...opts, seed: 43 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a.map((g) => g.completionIds),
      c.map((g) => g.completionIds),
    );
    const rng = new Rng(42);
    assert.deepEqual(generate(m, ps, { ...opts, rng }), a);
    assert.notDeepEqual(generate(m, ps, { ...opts, rng }), a); // the stream moved on
  });
});

describe("generate: finish reasons", () => {
  test("stop strings truncate the text (vLLM `stop`) and report 'stop'; eos and length otherwise", async () => {
    const m = await model("llama-tiny");
    const tok = fixtureTokenizer();
    const ps = prompts([5, 8], 9);
    const free = generate(m, ps, { maxNewTokens: 10, temperature: 0, eosTokenId: null, tokenizer: tok });
    assert.equal(free[0].text, tok.decode(free[0].completionIds));
    // a stop string made of row 0's 4th and 5th characters: its first occurrence ends the row
    const text0 = free[0].text as string;
    const stopStr = text0.slice(3, 5);
    const at = text0.indexOf(stopStr);
    const out = generate(m, ps, { maxNewTokens: 10, temperature: 0, eosTokenId: null, tokenizer: tok, stop: [stopStr] });
    assert.equal(out[0].finishReason, "stop");
    assert.equal(out[0].text, text0.slice(0, at));
    assert.deepEqual(out[0].completionIds, free[0].completionIds.slice(0, at + stopStr.length)); // one char per id
    const incl = generate(m, ps, {
      maxNewTokens: 10,
      temperature: 0,
      eosTokenId: null,
      tokenizer: tok,
      stop: [stopStr],
      includeStopStrInOutput: true,
    });
    assert.equal(incl[0].text, text0.slice(0, at + stopStr.length));
    // row 1 either hits the same string or runs to the length limit
    const text1 = free[1].text as string;
    assert.equal(out[1].finishReason, text1.includes(stopStr) ? "stop" : "length");
  });

  test("eos ends a row with the eos id kept; several eos ids; maxNewTokens 0", async () => {
    const m = await model("llama-tiny");
    const ps = prompts([5], 9);
    const [free] = generate(m, ps, { maxNewTokens: 8, temperature: 0, eosTokenId: null });
    const [e] = generate(m, ps, { maxNewTokens: 8, temperature: 0, eosTokenId: [999, free.completionIds[4]] });
    const first = free.completionIds.indexOf(free.completionIds[4]);
    assert.equal(e.finishReason, "eos");
    assert.deepEqual(e.completionIds, free.completionIds.slice(0, first + 1));
    const [z] = generate(m, ps, { maxNewTokens: 0 });
    assert.deepEqual(z.completionIds, []);
    assert.equal(z.finishReason, "length");
  });

  test("bad input is rejected with a tagged message", async () => {
    const m = await model("llama-tiny");
    assert.throws(() => generate(m, [[]], { maxNewTokens: 2 }), /\[generate\] prompt 0 is empty/);
    assert.throws(() => generate(m, [[1000]], { maxNewTokens: 2 }), /outside \[0, 384\)/);
    assert.throws(() => generate(m, [[1]], { maxNewTokens: 2, stop: ["x"] }), /need a tokenizer/);
    assert.throws(() => generate(m, [[1]], { maxNewTokens: 2, topP: 0 }), /topP/);
  });
});

describe("sampling filters", () => {
  const probs = Float64Array.from([0.5, 0.2, 0.15, 0.1, 0.05]);
  const mask = (o: Parameters<typeof filterMask>[1]) => Array.from(filterMask(probs, o));

  test("top-k keeps the k most likely", () => {
    assert.deepEqual(mask({ topK: 2 }), [1, 1, 0, 0, 0]);
    assert.deepEqual(mask({ topK: 10 }), [1, 1, 1, 1, 1]);
  });

  test("top-p drops the tail whose cumulative mass is <= 1 - p (HF), keeping the top token", () => {
    // ascending cumulative mass: 0.05, 0.15, 0.30, 0.50, 1.00
    assert.deepEqual(mask({ topP: 0.75 }), [1, 1, 1, 0, 0]); // drop cum <= 0.25
    assert.deepEqual(mask({ topP: 0.4 }), [1, 0, 0, 0, 0]); // drop cum <= 0.6
    assert.deepEqual(mask({ topP: 0.01 }), [1, 0, 0, 0, 0]);
    // after top-k 3 the kept mass renormalises to 0.5/0.85, 0.2/0.85, 0.15/0.85: 1 - 0.85 = 0.15 drops 0.15/0.85 = 0.176
    assert.deepEqual(mask({ topK: 3, topP: 0.85 }), [1, 1, 1, 0, 0]);
    assert.deepEqual(mask({ topK: 3, topP: 0.8 }), [1, 1, 0, 0, 0]);
  });

  test("min-p drops tokens below min_p x the top probability", () => {
    assert.deepEqual(mask({ minP: 0.25 }), [1, 1, 1, 0, 0]); // threshold 0.125
    assert.deepEqual(mask({ minP: 0.5 }), [1, 0, 0, 0, 0]); // threshold 0.25
    assert.deepEqual(mask({ topK: 3, minP: 0.35 }), [1, 1, 0, 0, 0]); // threshold 0.175
  });

  /** The filters written plainly with a full comparator sort: the oracle for filterMask's prefix-length form. */
  function filterOracle(p: Float64Array, o: { topK?: number; topP?: number; minP?: number }): number[] {
    const v = p.length;
    const keep = new Array<number>(v).fill(1);
    const order = Array.from({ length: v }, (_, j) => j).sort((a, b) => p[b] - p[a] || a - b);
    const topK = o.topK ?? 0;
    if (topK > 0) for (let r = topK; r < v; r++) keep[order[r]] = 0;
    if ((o.topP ?? 1) < 1) {
      let kept = 0;
      for (const j of order) if (keep[j]) kept += p[j];
      let cum = 0;
      for (let r = v - 1; r >= 1; r--) {
        if (!keep[order[r]]) continue;
        cum += p[order[r]] / kept;
        if (cum <= 1 - (o.topP as number)) keep[order[r]] = 0;
        else break;
      }
    }
    if ((o.minP ?? 0) > 0) for (let j = 0; j < v; j++) if (p[j] < (o.minP as number) * p[order[0]]) keep[j] = 0;
    return keep;
  }

  test("filterMask equals a plain sort-based oracle on random rows with ties", () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 300; trial++) {
      const v = 1 + rng.int(60);
      const raw = Array.from({ length: v }, () => (trial % 2 === 0 ? rng.int(5) + 1 : rng.next() ** 3)); // even trials: many ties
      const z = raw.reduce((a, b) => a + b, 0);
      const p = Float64Array.from(raw, (x) => x / z);
      const o = {
        topK: rng.int(3) === 0 ? 0 : rng.int(v + 2),
        topP: rng.int(3) === 0 ? 1 : 0.05 + 0.95 * rng.next(),
        minP: rng.int(3) === 0 ? 0 : 0.5 * rng.next(),
      };
      assert.deepEqual(Array.from(filterMask(p, o)), filterOracle(p, o), `trial ${trial}: ${JSON.stringify(o)}`);
    }
  });

  test("sampling draws only kept tokens, in proportion to their renormalised mass", () => {
    const logits = Array.from(probs, Math.log);
    const rng = new Rng(0);
    const counts = [0, 0, 0, 0, 0];
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const c = sampleToken(logits, { temperature: 1, topK: 2 }, () => rng.next());
      counts[c.id]++;
      assert.ok(Math.abs(c.logprob - Math.log(probs[c.id])) < 1e-12, "log-prob is before filtering");
    }
    assert.deepEqual(counts.slice(2), [0, 0, 0]);
    assert.ok(Math.abs(counts[0] / n - 0.5 / 0.7) < 0.03, `top-1 share ${counts[0] / n}`);
  });

  test("temperature scales the log-prob; greedy picks the argmax with its temperature-1 log-prob", () => {
    const row = [1, 3, 2];
    const g = sampleToken(row, { temperature: 0 }, () => 0.5);
    assert.equal(g.id, 1);
    assert.ok(Math.abs(g.logprob - tokenLogprob(row, 1)) < 1e-12);
    const z = Math.log(Math.exp(1 / 0.5) + Math.exp(3 / 0.5) + Math.exp(2 / 0.5));
    assert.ok(Math.abs(tokenLogprob(row, 0, 0.5) - (2 - z)) < 1e-12);
  });
});
