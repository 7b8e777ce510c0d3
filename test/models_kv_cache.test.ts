// The preallocated KV cache (createKVCache) against the plain concatenating `{ k, v }` cache, on every backend:
// attention over the first `keyLength` rows of larger storage equals attention over the sliced keys; decoding
// through growth (capacity 16 → 32 → 64) and selectBatch gives the same logits; under grad the cache keeps graph
// tensors, so backward through cached keys still reaches the key projections.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { cacheLength, createCausalLM, createKVCache, type KVCache, selectBatch } from "../src/models/index.js";
import { attention, fromArray, noGrad, slice, sum, type Tensor } from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";

function randn(shape: number[], seed: number): Tensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((a, d) => a * d, 1);
  const data = Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
  return fromArray(data, shape);
}

function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let m = 0;
  const [ad, bd] = [a.hostData(), b.hostData()];
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(ad[i] - bd[i]));
  return m;
}

const config = parseHfConfig({
  model_type: "llama",
  vocab_size: 50,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
});

for (const backend of testBackends()) {
  describe(`KV cache on '${backend}'`, () => {
    test("attention with keyLength reads only the first S rows of the storage", () => {
      setBackend(backend);
      const k = randn([2, 2, 20, 8], 2);
      const v = randn([2, 2, 20, 8], 3);
      const mask = fromArray(
        Float32Array.from({ length: 2 * 11 }, (_, i) => (i === 0 || i === 12 ? 0 : 1)),
        [2, 11],
      );
      for (const t of [3, 1]) {
        // t = 1: the native decode path (few query rows per kv head)
        const q = randn([2, 4, t, 8], t);
        noGrad(() => {
          const want = attention(q, slice(k, 2, 0, 11), slice(v, 2, 0, 11), { keyMask: mask });
          const got = attention(q, k, v, { keyMask: mask, keyLength: 11 });
          assert.ok(maxDiff(got, want) === 0, `${backend} t=${t}: ${maxDiff(got, want)}`);
        });
      }
      const q = randn([2, 4, 3, 8], 1);
      assert.throws(() => attention(q, k, v, { keyLength: 21 }), /keyLength 21/);
    });

    test("decoding through growth and selectBatch matches the concatenating cache", () => {
      setBackend(backend);
      const model = createCausalLM(config, { seed: 3 });
      const b = 3;
      const prompt = fromArray(
        Int32Array.from({ length: b * 5 }, (_, i) => (i * 7) % 50),
        [b, 5],
      );
      noGrad(() => {
        let fast: KVCache = createKVCache();
        let plain: KVCache = { k: [], v: [] };
        let ids = prompt;
        let rows = b;
        for (let step = 0; step < 40; step++) {
          const a = model.forward({ inputIds: ids, kvCache: fast }).logits;
          const c = model.forward({ inputIds: ids, kvCache: plain }).logits;
          assert.ok(maxDiff(a, c) < 1e-5, `step ${step}: ${maxDiff(a, c)}`);
          assert.equal(cacheLength(fast), cacheLength(plain));
          if (step === 20) {
            fast = selectBatch(fast, [2, 0]);
            plain = selectBatch(plain, [2, 0]);
            rows = 2;
          }
          ids = fromArray(
            Int32Array.from({ length: rows }, (_, r) => (step * 3 + r) % 50),
            [rows, 1],
          );
        }
        assert.equal(cacheLength(fast), 5 + 39);
        assert.deepEqual(fast.k[1].shape, [2, 2, 44, 8]);
        assert.ok(maxDiff(fast.v[0], plain.v[0]) < 1e-6);
      });
    });

    test("under grad, backward flows through cached keys", () => {
      setBackend(backend);
      const model = createCausalLM(config, { seed: 4 });
      const ids = fromArray(Int32Array.from([1, 2, 3, 4, 5, 6]), [1, 6]);
      const run = (cache: KVCache) => {
        model.zeroGrad();
        model.forward({ inputIds: slice(ids, 1, 0, 4), kvCache: cache });
        sum(model.forward({ inputIds: slice(ids, 1, 4, 6), kvCache: cache }).logits).backward();
        const g = model.model.layers.items[0].selfAttn.kProj.weight.grad;
        assert.ok(g !== null);
        return fromArray(g.hostData().slice(), g.shape);
      };
      const want = run({ k: [], v: [] });
      const got = run(createKVCache());
      assert.ok(maxDiff(got, want) < 1e-6, `${maxDiff(got, want)}`);
      assert.ok(Math.max(...Array.from(want.hostData() as ArrayLike<number>, Math.abs)) > 0);
    });
  });
}
