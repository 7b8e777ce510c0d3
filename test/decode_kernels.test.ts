// The decode ops (src/tensor/ops/decode.ts) on every backend in availableBackends(), against oracles that do not
// share their code: paged attention against the dense `attention` op on `ref` over the same keys gathered per
// sequence (shuffled block tables, GQA, odd head dims, block sizes 5 and 16, decode rows and prefill chunks past the
// native blocked path's threshold); pagedKvWrite/copyBlocks by reading positions back; linearPacked against `linear`;
// sampleTokens against the row definition (sampling.ts): same ids, log-probs within 1e-5, greedy = argmax, and a
// uniform that rounds to 1 picks the last kept token. Tolerance vs the float64 oracle: 2e-5 absolute (values ~1).
// The native kernels' argument checks; the suite reruns itself with NEXUS_SIMD=avx2 and =scalar.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createCpuKernels, loadCpuAddon } from "../src/backend/cpu.js";
import { availableBackends, withBackend } from "../src/backend/index.js";
import { sampleToken } from "../src/generate/sampling.js";
import { Linear, linearMany } from "../src/nn/layers.js";
import { Rng } from "../src/nn/rng.js";
import {
  attention,
  copyBlocks,
  linear,
  linearPacked,
  noGrad,
  packGroup,
  packWeight,
  pagedAttention,
  pagedKvWrite,
  sampleTokens,
  Tensor,
  withPackedWeights,
  zeros,
} from "../src/tensor/index.js";
import { mulberry32 } from "./helpers/check.js";

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface PagedCase {
  h: number;
  hkv: number;
  dh: number;
  bs: number;
  /** Per sequence: keys cached after this step, query rows this step. */
  seqs: [number, number][];
}

const CASES: PagedCase[] = [
  {
    h: 4,
    hkv: 2,
    dh: 16,
    bs: 16,
    seqs: [
      [1, 1],
      [17, 1],
      [40, 1],
      [16, 1],
    ],
  }, // decode, GQA 2
  {
    h: 9,
    hkv: 3,
    dh: 64,
    bs: 16,
    seqs: [
      [70, 1],
      [5, 5],
      [33, 20],
    ],
  }, // decode + prefill chunks (20 * 3 rows > 16)
  {
    h: 2,
    hkv: 2,
    dh: 7,
    bs: 5,
    seqs: [
      [12, 3],
      [1, 1],
      [9, 9],
      [23, 2],
    ],
  }, // odd dh, odd block size, speculative rows
  {
    h: 8,
    hkv: 1,
    dh: 32,
    bs: 16,
    seqs: [
      [50, 8],
      [3, 1],
    ],
  }, // MQA: 8 heads on one kv head, 64-row chunk
];

describe("decode ops", () => {
  for (const backend of availableBackends()) {
    test(`${backend}: pagedAttention over shuffled blocks equals dense causal attention per sequence`, () => {
      for (const c of CASES) {
        const { h, hkv, dh, bs } = c;
        const maxBlocks = Math.max(...c.seqs.map(([ctx]) => Math.ceil(ctx / bs)));
        const numBlocks = c.seqs.length * maxBlocks + 3;
        // a shuffled assignment of distinct blocks
        const order = Array.from({ length: numBlocks }, (_, i) => i);
        const r = mulberry32(numBlocks);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
        const tables = new Int32Array(c.seqs.length * maxBlocks);
        let next = 0;
        c.seqs.forEach(([ctx], s) => {
          for (let b = 0; b < Math.ceil(ctx / bs); b++) tables[s * maxBlocks + b] = order[next++];
        });
        const n = c.seqs.reduce((a, [, q]) => a + q, 0);
        const queryStarts = new Int32Array(c.seqs.length + 1);
        c.seqs.forEach(([, q], s) => {
          queryStarts[s + 1] = queryStarts[s] + q;
        });
        const contextLens = Int32Array.from(c.seqs, ([ctx]) => ctx);
        const dense = c.seqs.map(([ctx], s) => ({ k: rand(hkv * ctx * dh, 10 + s), v: rand(hkv * ctx * dh, 20 + s) })); // [Hkv, ctx, Dh]
        const q = rand(n * h * dh, 3, 2);
        const got = withBackend(backend, () =>
          noGrad(() => {
            const kc = zeros([numBlocks, hkv, dh, bs]);
            const vc = zeros([numBlocks, hkv, bs, dh]);
            c.seqs.forEach(([ctx], s) => {
              // write every cached key of the sequence, token by token as the engine does (k/v [N, Hkv, Dh])
              const k = new Float32Array(ctx * hkv * dh);
              const v = new Float32Array(ctx * hkv * dh);
              const slots = new Int32Array(ctx);
              for (let j = 0; j < ctx; j++) {
                slots[j] = tables[s * maxBlocks + Math.floor(j / bs)] * bs + (j % bs);
                for (let g = 0; g < hkv; g++) {
                  k.set(dense[s].k.subarray((g * ctx + j) * dh, (g * ctx + j + 1) * dh), (j * hkv + g) * dh);
                  v.set(dense[s].v.subarray((g * ctx + j) * dh, (g * ctx + j + 1) * dh), (j * hkv + g) * dh);
                }
              }
              pagedKvWrite(kc, vc, new Tensor(k, [ctx, hkv, dh]), new Tensor(v, [ctx, hkv, dh]), slots);
            });
            return pagedAttention(new Tensor(q, [n, h, dh]), kc, vc, { blockTables: tables, contextLens, queryStarts, maxBlocks }).data;
          }),
        );
        // oracle: dense attention on ref, one sequence at a time, q [1, H, qn, Dh], causal aligned to the end
        const want = new Float32Array(n * h * dh);
        withBackend("ref", () =>
          c.seqs.forEach(([ctx, qn], s) => {
            const q0 = queryStarts[s];
            const qs = new Float32Array(h * qn * dh);
            for (let i = 0; i < qn; i++)
              for (let hh = 0; hh < h; hh++) qs.set(q.subarray(((q0 + i) * h + hh) * dh, ((q0 + i) * h + hh + 1) * dh), (hh * qn + i) * dh);
            const o = attention(
              new Tensor(qs, [1, h, qn, dh]),
              new Tensor(dense[s].k, [1, hkv, ctx, dh]),
              new Tensor(dense[s].v, [1, hkv, ctx, dh]),
              { causal: true },
            ).data;
            for (let i = 0; i < qn; i++)
              for (let hh = 0; hh < h; hh++) want.set(o.subarray((hh * qn + i) * dh, (hh * qn + i + 1) * dh), ((q0 + i) * h + hh) * dh);
          }),
        );
        const d = maxDiff(got, want);
        assert.ok(d < 2e-5, `${JSON.stringify(c)}: max error ${d}`);
      }
    });

    test(`${backend}: pagedKvWrite skips negative slots; copyBlocks copies whole blocks; bad indices are refused`, () => {
      withBackend(backend, () =>
        noGrad(() => {
          const kc = zeros([4, 2, 3, 2]); // [blocks, Hkv, Dh, bs]
          const vc = zeros([4, 2, 2, 3]);
          const k = new Tensor(rand(2 * 2 * 3, 1), [2, 2, 3]);
          const v = new Tensor(rand(2 * 2 * 3, 2), [2, 2, 3]);
          pagedKvWrite(kc, vc, k, v, Int32Array.of(5, -1)); // token 0 -> block 2, position 1; token 1 skipped
          for (let g = 0; g < 2; g++)
            for (let d = 0; d < 3; d++) {
              assert.equal(kc.data[((2 * 2 + g) * 3 + d) * 2 + 1], k.data[g * 3 + d]);
              assert.equal(vc.data[((2 * 2 + g) * 2 + 1) * 3 + d], v.data[g * 3 + d]);
            }
          assert.equal(
            kc.data.reduce((a, x) => a + (x !== 0 ? 1 : 0), 0),
            6,
            "only token 0 was written",
          );
          copyBlocks(vc, Int32Array.of(2), Int32Array.of(0));
          assert.deepEqual(Array.from(vc.data.subarray(0, 12)), Array.from(vc.data.subarray(24, 36)));
          assert.throws(() => pagedKvWrite(kc, vc, k, v, Int32Array.of(8, 0)), /slot 8 \(token 0\) is past the cache's 8 rows/);
          assert.throws(() => copyBlocks(vc, Int32Array.of(4), Int32Array.of(0)), /outside \[0, 4\)/);
          assert.throws(() => pagedKvWrite(vc, vc, k, v, Int32Array.of(0, 1)), /keys \[numBlocks, Hkv, Dh, blockSize\]/);
        }),
      );
    });

    test(`${backend}: linearPacked with a packed weight equals linear (odd sizes, bias, one row)`, () => {
      for (const [m, n, k] of [
        [1, 7, 5],
        [7, 130, 64],
        [33, 64, 300],
        [32, 768, 256],
        [70, 3, 17],
      ]) {
        const x = new Tensor(rand(m * k, m), [m, k]);
        const w = new Tensor(rand(n * k, n), [n, k]);
        const b = new Tensor(rand(n, 5), [n]);
        const got = withBackend(backend, () => noGrad(() => linearPacked(x, packWeight(w), b).data));
        const want = withBackend("ref", () => linear(x, w, b).data);
        const d = maxDiff(got, want);
        assert.ok(d < 2e-5 * Math.sqrt(k), `${[m, n, k]}: max error ${d}`);
      }
    });

    test(`${backend}: linearMany runs a packed group as one GEMM with the separate layers' values; adapters opt out`, () => {
      withBackend(backend, () =>
        noGrad(() => {
          const rng = new Rng(3);
          const layers = [new Linear(40, 24, { rng, bias: true }), new Linear(40, 8, { rng }), new Linear(40, 70, { rng })];
          layers[0].bias?.data.set(rand(24, 9)); // a nonzero bias on the first part
          const x = new Tensor(rand(5 * 40, 4), [5, 40]);
          const want = layers.map((l) => l.forward(x).data);
          const group = packGroup(layers.map((l) => l.weight));
          let calls = 0;
          const fake = (y: Tensor) => {
            calls++;
            return y;
          };
          const got = withPackedWeights({ weights: new Map(), groups: new Map([[layers[0].weight, group]]) }, () => {
            const ys = linearMany(x, layers);
            // an adapter on one layer (its forward replaced) makes the group run layer by layer
            layers[1].forward = (y: Tensor) => fake(linear(y, layers[1].weight));
            linearMany(x, layers);
            Reflect.deleteProperty(layers[1], "forward");
            return ys.map((y) => y.data);
          });
          assert.equal(calls, 1, "the adapted layer ran its own forward");
          got.forEach((g, i) => {
            assert.ok(maxDiff(g, want[i]) < 1e-5, `layer ${i}: ${maxDiff(g, want[i])}`);
          });
        }),
      );
    });

    test(`${backend}: sampleTokens picks what the row definition picks, with its log-prob`, () => {
      const rows = 96;
      for (const v of [5, 1000, 4099]) {
        const logits = rand(rows * v, v, 6);
        const temperature = Float32Array.from({ length: rows }, (_, i) => [0, 1, 0.7, 1.6][i % 4]);
        const topK = Int32Array.from({ length: rows }, (_, i) => [0, 20, 0, 3, v + 2][(i >> 2) % 5]);
        const topP = Float32Array.from({ length: rows }, (_, i) => [1, 0.9, 0.3, 1][(i >> 3) % 4]);
        const minP = Float32Array.from({ length: rows }, (_, i) => [0, 0.05, 0, 0.5][(i >> 4) % 4]);
        const u = Float32Array.from(rand(rows, 77), (x) => (x + 1) / 2);
        u[1] = 1; // rounds past every cumulative mass: the last kept token
        const got = withBackend(backend, () =>
          noGrad(() => sampleTokens(new Tensor(logits, [rows, v]), { temperature, topK, topP, minP, uniform: u })),
        );
        for (let r = 0; r < rows; r++) {
          const row = logits.subarray(r * v, (r + 1) * v);
          const want = sampleToken(row, { temperature: temperature[r], topK: topK[r], topP: topP[r], minP: minP[r] }, () => u[r]);
          assert.equal(got.ids[r], want.id, `V ${v} row ${r}`);
          assert.ok(Math.abs(got.logprobs[r] - want.logprob) < 1e-5, `V ${v} row ${r}: ${got.logprobs[r]} vs ${want.logprob}`);
          if (temperature[r] === 0) assert.equal(want.id, row.indexOf(Math.max(...row)), "greedy is the first argmax");
        }
      }
    });
  }
});

const addon = loadCpuAddon();
const isChild = process.env.NEXUS_DECODE_TEST_CHILD === "1";

describe("native decode kernels: argument checks and lower SIMD levels", {
  skip: addon === null ? "native addon unavailable" : false,
}, () => {
  test("bad block tables, slots and lengths throw tagged RangeErrors before any memory is read", () => {
    const cpu = createCpuKernels(addon as NonNullable<typeof addon>);
    const z = new Float32Array(2 * 2 * 4 * 4); // 2 blocks of Hkv 2, Dh 4, bs 4
    const out = new Float32Array(2 * 2 * 4);
    const q = new Float32Array(2 * 2 * 4);
    const run = (tables: number[], ctx: number[], starts: number[]) =>
      cpu.pagedAttention(
        out,
        q,
        z,
        z,
        Int32Array.from(tables),
        Int32Array.from(ctx),
        Int32Array.from(starts),
        ctx.length,
        2,
        2,
        4,
        4,
        2,
        0.5,
      );
    assert.throws(() => run([0, 5], [6], [0, 1]), {
      name: "RangeError",
      message: /^\[cpu pagedAttention\] blockTables\[1\] = 5 is outside \[0, 2\)/,
    });
    assert.throws(() => run([0, 1], [9], [0, 1]), { message: /^\[cpu pagedAttention\] sequence 0 needs 3 blocks, maxBlocks is 2/ });
    assert.throws(() => run([0, 1], [1], [0, 2]), { message: /^\[cpu pagedAttention\] contextLens\[0\] = 1 is below its 2 query rows/ });
    assert.throws(() => cpu.pagedKvWrite(z, z, q, q, Int32Array.of(8), 1, 2, 4, 4), {
      message: /^\[cpu pagedKvWrite\] slots\[0\] = 8 is past/,
    });
    assert.throws(() => cpu.copyBlocks(z, Int32Array.of(0), Int32Array.of(2), 1, 32), { message: /^\[cpu copyBlocks\] dst\[0\] = 2/ });
    assert.throws(() => cpu.linearPacked(out, q, new Float32Array(3), 1, 4, 4), { message: /^\[cpu linearPacked\] packed has 3 elements/ });
  });

  if (!isChild && addon !== null) {
    const levels = addon.fusedSimd === "avx512" ? ["avx2", "scalar"] : addon.fusedSimd === "avx2" ? ["scalar"] : [];
    for (const level of levels) {
      test(`the decode ops again with NEXUS_SIMD=${level}`, () => {
        const { NODE_TEST_CONTEXT: _, ...env } = process.env;
        const r = spawnSync(
          process.execPath,
          ["--enable-source-maps", "--import", "tsx", "--test-reporter=tap", fileURLToPath(import.meta.url)],
          {
            env: { ...env, NEXUS_SIMD: level, NEXUS_DECODE_TEST_CHILD: "1" },
            encoding: "utf8",
            timeout: 300_000,
          },
        );
        const tail = `${r.stdout}\n${r.stderr}`.split("\n").slice(-40).join("\n");
        assert.equal(r.status, 0, `child with NEXUS_SIMD=${level} failed:\n${tail}`);
        assert.match(r.stdout, /# pass [1-9]\d*\n# fail 0/, `child with NEXUS_SIMD=${level} ran no test:\n${tail}`);
      });
    }
  }
});
