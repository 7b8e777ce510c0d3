// The serve engine (src/serve/engine.ts + engine_worker.ts) without HTTP: generation runs in a worker thread, so the
// HTTP thread's event loop stays free while long prefill steps run (its timer lag is measured against the time the
// worker spends stepping); streamed tokens are the final ones, in order; cancelling a request frees its KV blocks;
// a request larger than the KV cache is refused with a 400. Random W1-sized weights; the fixture tokenizer.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseHfConfig } from "../src/io/hf_config.js";
import { type HfTokenizer, loadTokenizer } from "../src/io/tokenizer.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { Engine, type GenJob } from "../src/serve/engine.js";

const TOKENIZER = fileURLToPath(new URL("../../shared/fixtures/hf/tokenizer", import.meta.url));

const sampling: GenJob["sampling"] = {
  maxTokens: 8,
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  stop: [],
  stopTokenIds: [],
  ignoreEos: true,
  includeStopStrInOutput: false,
  skipSpecialTokens: true,
};

function prompts(n: number, len: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: len }, () => 3 + rng.int(380)));
}

describe("serve engine (worker thread)", () => {
  let engine: Engine;
  let tok: HfTokenizer;

  before(() => {
    tok = loadTokenizer(TOKENIZER);
    const config = parseHfConfig({
      model_type: "llama",
      vocab_size: 2048,
      hidden_size: 256,
      intermediate_size: 768,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 32,
      max_position_embeddings: 1024,
      eos_token_id: null,
    });
    engine = new Engine(createCausalLM(config, { seed: 1 }), tok, { maxBatch: 32, kvCacheMemory: 64 * 2 ** 20, maxBatchTokens: 256 });
  });
  after(() => engine.close());

  test("the HTTP thread's event loop stays free while the worker runs long prefill steps", async () => {
    await engine.submit({ rows: prompts(1, 4, 0), sampling, adapter: null, seed: null, topLogprobs: 0, promptLogprobs: null }); // worker up
    // 8 prompts of 256 tokens: 2048 prefill tokens in steps of 256, each a W1 forward of 256 tokens
    const lags: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      lags.push(now - last - 5);
      last = now;
    }, 5);
    const t0 = performance.now();
    const stepsBefore = engine.stats.steps;
    await engine.submit({ rows: prompts(8, 256, 1), sampling, adapter: null, seed: null, topLogprobs: 0, promptLogprobs: null });
    const took = performance.now() - t0;
    clearInterval(timer);
    const steps = engine.stats.steps - stepsBefore;
    lags.sort((a, b) => a - b);
    const p50 = lags[lags.length >> 1];
    // with steps on the event loop each tick would wait for a whole step (took / steps on average)
    assert.ok(steps >= 8, `${steps} steps`);
    assert.ok(lags.length >= 10, `only ${lags.length} timer ticks in ${took.toFixed(0)} ms`);
    assert.ok(
      p50 < Math.max(20, took / steps / 2),
      `median event-loop lag ${p50.toFixed(1)} ms; a step took ${(took / steps).toFixed(1)} ms`,
    );
  });

  test("streamed tokens are the final ones, in order; cancelling frees the request's KV blocks", async () => {
    const streamed: number[][] = [[], []];
    const rows = prompts(2, 12, 3);
    const res = await engine.submit(
      { rows, sampling: { ...sampling, temperature: 0.8 }, adapter: null, seed: 5, topLogprobs: 0, promptLogprobs: null },
      { onToken: (r, e) => streamed[r].push(e.id) },
    );
    res.forEach((r, i) => {
      assert.deepEqual(streamed[i], r.gen.completionIds);
    });
    const ctrl = new AbortController();
    let seen = 0;
    const long = engine.submit(
      {
        rows: prompts(4, 40, 4),
        sampling: { ...sampling, maxTokens: 500 },
        adapter: null,
        seed: null,
        topLogprobs: 0,
        promptLogprobs: null,
      },
      {
        signal: ctrl.signal,
        onToken: () => {
          if (++seen === 3) ctrl.abort();
        },
      },
    );
    await assert.rejects(long, { name: "AbortError" });
    assert.equal(engine.load.rows, 0);
    // the next request's step reports the cache: every block is free again after it finishes
    await engine.submit({ rows: prompts(1, 5, 6), sampling, adapter: null, seed: null, topLogprobs: 0, promptLogprobs: null });
    await new Promise((r) => setTimeout(r, 50)); // the worker's last step message
    assert.equal(engine.load.kvBlocksFree, engine.load.kvBlocks);
  });

  test("a request larger than the whole KV cache is refused with a 400 naming the sizes", async () => {
    const big = engine.submit({
      rows: prompts(1, 10, 7),
      sampling: { ...sampling, maxTokens: 100_000 },
      adapter: null,
      seed: null,
      topLogprobs: 0,
      promptLogprobs: null,
    });
    await assert.rejects(big, (e: Error & { status?: number }) => e.status === 400 && /needs \d+ KV blocks/.test(e.message));
  });
});
