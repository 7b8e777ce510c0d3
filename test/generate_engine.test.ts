// The rollout engine (src/generate/engine.ts, scheduler.ts, paged_cache.ts, block_allocator.ts) on the HF fixture
// models: block allocator invariants over 10k random requests (no leak, every count back to zero); prefix-shared
// groups give the same tokens and log-probs as unshared runs with the same seeds; continuous batching (requests
// arriving at different steps) gives each request its output alone (greedy); preemption under a tiny KV budget
// still completes every request exactly; chunked prefill equals one-shot prefill; sampled log-probs equal a
// teacher-forced forward; cancellation frees blocks. Fixtures: ../shared/fixtures/hf/README.md.

import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type EngineRequest, type EngineResult, RolloutEngine } from "../src/generate/engine.js";
import { generate } from "../src/generate/generate.js";
import { PagedKVCache } from "../src/generate/paged_cache.js";
import { type SchedSeq, Scheduler } from "../src/generate/scheduler.js";
import { type CausalLM, loadCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { div, fromArray, noGrad, slice, Tensor, tokenLogprobs } from "../src/tensor/index.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const models = new Map<string, Promise<CausalLM>>();
function model(name: "llama-tiny" | "qwen2-tiny"): Promise<CausalLM> {
  if (!models.has(name)) models.set(name, loadCausalLM(path.join(FIXTURES, name)));
  return models.get(name) as Promise<CausalLM>;
}

function prompts(lengths: readonly number[], seed = 1): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => 3 + rng.int(380)));
}

/** Run requests to completion on an engine; `arrivals[i]` is the step before which request i is added. */
function runEngine(engine: RolloutEngine, reqs: Omit<EngineRequest, "onFinish">[], arrivals?: number[]): EngineResult[] {
  const out: EngineResult[] = new Array(reqs.length);
  const at = arrivals ?? reqs.map(() => 0);
  let step = 0;
  let added = 0;
  const order = reqs.map((_, i) => i).sort((a, b) => at[a] - at[b]);
  while (added < reqs.length || engine.hasWork) {
    while (added < reqs.length && at[order[added]] <= step) {
      const i = order[added++];
      engine.add({ ...reqs[i], onFinish: (r) => (out[i] = r) });
    }
    engine.step();
    step++;
  }
  return out;
}

function teacherForced(m: CausalLM, promptIds: number[], completion: number[], temperature: number): number[] {
  const seq = [...promptIds, ...completion];
  return noGrad(() => {
    const logits = m.forward({ inputIds: fromArray(Int32Array.from(seq), [1, seq.length]) }).logits;
    const scaled = div(slice(logits, 1, promptIds.length - 1, seq.length - 1), temperature);
    return Array.from(tokenLogprobs(scaled, fromArray(Int32Array.from(completion), [1, completion.length])).hostData());
  });
}

const maxDiff = (a: readonly number[], b: readonly number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

describe("block allocator and scheduler", () => {
  interface FakeSeq extends SchedSeq {
    target: number;
    left: number;
  }

  test("10k random requests with sharing, forks, preemption and cancels: invariants hold every step, nothing leaks", () => {
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 1, blockSize: 4 }, 48);
    const sched = new Scheduler<FakeSeq>(cache, { maxBatchTokens: 64, maxRunning: 24 });
    const rng = new Rng(7);
    const bases = prompts([3, 4, 5, 8, 9, 12], 3); // few distinct prompts: groups and common prefixes
    const live = new Set<FakeSeq>();
    let id = 0;
    let finished = 0;
    const held = () => {
      const m = new Map<number, number>();
      for (const s of live) for (const b of s.blocks) m.set(b, (m.get(b) ?? 0) + 1);
      return m;
    };
    while (finished < 10_000) {
      for (let k = rng.int(4); k > 0 && id < 10_000; k--) {
        const base = bases[rng.int(bases.length)];
        const tokens = rng.int(3) === 0 ? [...base, rng.int(50)] : [...base];
        const left = 1 + rng.int(12);
        const s: FakeSeq = {
          id: id++,
          ns: rng.int(5) === 0 ? "adapter" : "",
          tokens,
          maxLen: tokens.length + left,
          sharePrefix: rng.int(8) !== 0,
          numComputed: 0,
          blocks: [],
          registered: 0,
          state: "waiting",
          followers: [],
          target: left,
          left,
        };
        sched.add(s);
        live.add(s);
      }
      const items = sched.schedule();
      sched.computed(items);
      for (const it of items) {
        if (!it.sample || it.seq.state !== "running") continue;
        for (const s of [it.seq, ...(sched.fork(it.seq) as FakeSeq[])]) {
          s.tokens.push(rng.int(50));
          if (--s.left === 0 || rng.int(40) === 0) {
            sched.finish(s);
            live.delete(s);
            finished++;
          }
        }
      }
      if (rng.int(10) === 0 && live.size > 0) {
        const victim = [...live][rng.int(live.size)];
        sched.finish(victim); // cancelled while waiting, running or forked
        live.delete(victim);
        finished++;
      }
      cache.allocator.checkInvariants(held());
      for (const s of live) {
        if (s.state === "running") assert.ok(s.blocks.length * 4 >= s.numComputed, `seq ${s.id} holds too few blocks`);
      }
    }
    for (const s of [...live]) sched.finish(s);
    assert.equal(cache.allocator.numFree, 48, "every block is free at the end");
    cache.allocator.checkInvariants(new Map());
    assert.equal(cache.indexedBlocks, 0, "no freed block stays findable by content");
    assert.ok(sched.counts.preemptions > 0, "the tiny cache forced preemptions");
    assert.ok(sched.counts.forked > 0 && sched.counts.prefixBlocks > 0, "groups forked and prefixes were reused");
  });

  test("a request larger than the whole cache is refused with the sizes; allocator misuse throws", () => {
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 1, blockSize: 4 }, 2);
    const sched = new Scheduler<SchedSeq>(cache, { maxBatchTokens: 8, maxRunning: 4 });
    const seq: SchedSeq = {
      id: 0,
      ns: "",
      tokens: [1, 2, 3],
      maxLen: 9,
      sharePrefix: true,
      numComputed: 0,
      blocks: [],
      registered: 0,
      state: "waiting",
      followers: [],
    };
    assert.throws(() => sched.add(seq), /needs 3 KV blocks of 4; the cache holds 2/);
    assert.throws(() => cache.allocator.release(1), /not allocated/);
    assert.throws(() => PagedKVCache.fromBudget({ layers: 2, kvHeads: 2, headDim: 16, blockSize: 16 }, 1000), /holds no block/);
  });
});

describe("rollout engine on the fixtures", () => {
  const sampled = { temperature: 0.9, topK: 50, topP: 0.95 };

  for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
    test(`${name}: a prefix-shared GRPO group gives the same tokens and log-probs as unshared rows with the same seeds`, async () => {
      const m = await model(name);
      const ps = prompts([21, 9, 16], 4); // a partial last block, one short, one exactly a block
      const G = 4;
      const reqs = () =>
        ps.flatMap((p, i) =>
          Array.from({ length: G }, (_, g) => ({ prompt: p, maxNewTokens: 12, sampling: sampled, rng: new Rng(100 * i + g) })),
        );
      const shared = new RolloutEngine(m, { kvCacheBlocks: 64, prefixSharing: true });
      const plain = new RolloutEngine(m, { kvCacheBlocks: 64, prefixSharing: false });
      const a = runEngine(shared, reqs());
      const b = runEngine(plain, reqs());
      a.forEach((r, i) => {
        assert.deepEqual(r.completionIds, b[i].completionIds, `row ${i}`);
        assert.ok(maxDiff(r.logprobs, b[i].logprobs) < 1e-5, `row ${i} log-probs`);
      });
      assert.equal(shared.counts.forked, ps.length * (G - 1), "G - 1 followers forked per group");
      assert.equal(plain.counts.forked, 0);
      assert.ok(shared.stats.computed < plain.stats.computed, "the shared prompts were computed once per group");
      assert.ok(shared.counts.peakBlocks < plain.counts.peakBlocks, "sharing used fewer KV blocks");
      // the rows of a group sampled different completions (else sharing would be untested)
      assert.notDeepEqual(a[0].completionIds, a[1].completionIds);
      assert.equal(shared.cache.allocator.numFree, 64);
    });
  }

  test("continuous batching: requests joining at different steps each get their greedy output alone", async () => {
    const m = await model("qwen2-tiny");
    const ps = prompts([5, 17, 3, 33, 8, 12, 2], 6);
    const lens = [9, 4, 14, 6, 11, 3, 8];
    const alone = ps.map((p, i) => generate(m, [p], { maxNewTokens: lens[i], temperature: 0, eosTokenId: null })[0]);
    const engine = new RolloutEngine(m, { kvCacheBlocks: 64, maxBatchTokens: 24 }); // 33-token prompt in two chunks
    const reqs = ps.map((p, i) => ({ prompt: p, maxNewTokens: lens[i], sampling: { temperature: 0 }, rng: new Rng(i) }));
    const out = runEngine(engine, reqs, [0, 0, 2, 3, 3, 7, 10]);
    out.forEach((r, i) => {
      assert.deepEqual(r.completionIds, alone[i].completionIds, `request ${i}`);
      assert.ok(maxDiff(r.logprobs, alone[i].logprobs) < 1e-4);
    });
    assert.ok(engine.stats.maxRunning >= 4, `only ${engine.stats.maxRunning} ran together`);
  });

  test("preemption under a tiny KV budget completes every request with unconstrained results", async () => {
    const m = await model("llama-tiny");
    const ps = prompts([7, 19, 4, 11, 26, 9, 15, 6], 8);
    const mk = () => [
      ...ps.map((p, i) => ({ prompt: p, maxNewTokens: 20, sampling: { temperature: 0 }, rng: new Rng(i) })),
      ...ps.map((p, i) => ({ prompt: p, maxNewTokens: 16, sampling: sampled, rng: new Rng(50 + i) })),
    ];
    const roomy = runEngine(new RolloutEngine(m, { kvCacheBlocks: 64 }), mk());
    const tiny = new RolloutEngine(m, { kvCacheBlocks: 8, blockSize: 8 }); // 64 token slots for 16 requests
    const squeezed = runEngine(tiny, mk());
    assert.ok(tiny.counts.preemptions > 0, "the budget forced preemptions");
    squeezed.forEach((r, i) => {
      assert.deepEqual(r.completionIds, roomy[i].completionIds, `request ${i}`);
      assert.ok(maxDiff(r.logprobs, roomy[i].logprobs) < 1e-4, `request ${i} log-probs`);
    });
    assert.equal(tiny.cache.allocator.numFree, 8);
    // sampled log-probs are the teacher-forced ones of the same weights, through recomputation too
    let worst = 0;
    squeezed.slice(ps.length).forEach((r) => {
      worst = Math.max(worst, maxDiff(teacherForced(m, r.promptIds, r.completionIds, sampled.temperature), r.logprobs));
    });
    assert.ok(worst < 1e-4, `max |engine - teacher-forced| = ${worst}`);
  });

  test("packed (grouped q/k/v, gate/up) and unpacked weights give the same greedy ids and log-probs", async () => {
    const m = await model("qwen2-tiny");
    const reqs = prompts([9, 30, 4, 17, 12, 6], 13).map((p, i) => ({
      prompt: p,
      maxNewTokens: 10,
      sampling: { temperature: 0 },
      rng: new Rng(i),
    }));
    const packed = runEngine(new RolloutEngine(m, { kvCacheBlocks: 32, packWeights: true }), reqs);
    const plain = runEngine(new RolloutEngine(m, { kvCacheBlocks: 32, packWeights: false }), reqs);
    packed.forEach((r, i) => {
      assert.deepEqual(r.completionIds, plain[i].completionIds);
      assert.ok(maxDiff(r.logprobs, plain[i].logprobs) < 1e-5);
    });
  });

  test("cancel frees a request's blocks at once; bad requests are refused", async () => {
    const m = await model("llama-tiny");
    const engine = new RolloutEngine(m, { kvCacheBlocks: 16 });
    let done = 0;
    const h = engine.add({
      prompt: prompts([30])[0],
      maxNewTokens: 50,
      sampling: { temperature: 0 },
      rng: new Rng(0),
      onFinish: () => done++,
    });
    engine.step();
    engine.step();
    assert.ok(engine.cache.allocator.numFree < 16);
    engine.cancel(h);
    assert.equal(engine.cache.allocator.numFree, 16);
    assert.equal(engine.hasWork, false);
    assert.equal(done, 0);
    assert.throws(() => engine.add({ prompt: [], maxNewTokens: 2, sampling: {}, rng: new Rng(0) }), /empty/);
    assert.throws(() => engine.add({ prompt: [1], maxNewTokens: 2, sampling: { topP: 2 }, rng: new Rng(0) }), /topP/);
    assert.throws(() => engine.add({ prompt: [1], maxNewTokens: 300, sampling: {}, rng: new Rng(0) }), /needs 19 KV blocks/);
    assert.throws(() => engine.add({ prompt: [1], maxNewTokens: 2, sampling: {}, rng: new Rng(0), adapter: "x" }), /adapter hook/);
  });

  test("generate() with a small kvCacheMemory waits and preempts but returns what a roomy run returns", async () => {
    const m = await model("qwen2-tiny");
    const ps = prompts([6, 6, 6, 6, 13, 2], 12);
    const o = { maxNewTokens: 18, temperature: 1, eosTokenId: null, seed: 9 };
    const roomy = generate(m, ps, o);
    const perBlock = 2 * 2 * 2 * 16 * 16 * 4; // layers * (k, v) * Hkv * blockSize * Dh * 4 bytes
    const small = generate(m, ps, { ...o, kvCacheMemory: 6 * perBlock, maxBatchTokens: 8 });
    assert.deepEqual(
      small.map((g) => g.completionIds),
      roomy.map((g) => g.completionIds),
    );
    // a row's tokens depend only on its own stream: dropping other rows does not change it
    const [alone] = generate(m, [ps[4]], { ...o, rng: streamAt(9, 4) });
    assert.deepEqual(alone.completionIds, roomy[4].completionIds);
  });
});

/** An Rng whose first fork is row `i`'s stream of generate(..., {seed}). */
function streamAt(seed: number, i: number): Rng {
  const rng = new Rng(seed);
  for (let k = 0; k < i; k++) rng.fork();
  return rng;
}
