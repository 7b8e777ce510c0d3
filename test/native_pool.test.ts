// The native thread pool (native/thread_pool.cc): which thread runs a chunk never changes a result, so threaded
// kernels give bit-identical outputs run after run and with 1, 2 or 3 threads (GEMM through the pool's row
// units, RMSNorm's weight gradient through per-chunk partials, elementwise ops, attention); and calls from
// several JS threads at once (worker_threads share the addon) each get the right answer.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { loadCpuAddon } from "../src/backend/cpu.js";

const ADDON = loadCpuAddon() === null ? null : new URL("../build/Release/nexus_cpu.node", import.meta.url).pathname;
const skip = ADDON === null ? "the native addon is not built" : false;

/** JS that fills inputs from a fixed LCG, runs threaded-size kernels and prints a hash of every output. */
const PROGRAM = `
  const a = require(${JSON.stringify(ADDON)});
  let s = 12345;
  const f = (n) => { const x = new Float32Array(n); for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = s / 2 ** 31 - 1; } return x; };
  const out = [];
  // GEMM 700 x 515 x 390 (both transposes) and a batched one: the packed path, threaded
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const A = f(700 * 390), B = f(390 * 515), C = new Float32Array(700 * 515);
    a.matmul(C, A, B, 1, 700, 515, 390, ta, tb, 0, 0, 0, false); out.push(C);
  }
  const Ab = f(6 * 200 * 300), Bb = f(300 * 170), Cb = new Float32Array(6 * 200 * 170);
  a.matmul(Cb, Ab, Bb, 6, 200, 170, 300, false, false, 200 * 300, 0, 200 * 170, false); out.push(Cb);
  // RMSNorm backward: dw sums 3000 rows
  const rows = 3000, d = 96, x = f(rows * d), w = f(d), dy = f(rows * d), y = new Float32Array(rows * d), rstd = new Float32Array(rows);
  a.rmsNorm(y, rstd, x, w, rows, d, 1e-6);
  const dx = new Float32Array(rows * d), dw = new Float32Array(d);
  a.rmsNormBackward(dx, dw, dy, x, w, rstd, rows, d); out.push(y, dx, dw);
  // elementwise and softmax over 1M elements, attention 2 x 8 heads x 256 tokens
  const big = f(1 << 20), e = new Float32Array(1 << 20), sm = new Float32Array(1 << 20);
  a.unary("exp", e, big, 0, 0); a.softmax(sm, big, 1024, 1024); out.push(e, sm);
  const q = f(2 * 8 * 256 * 32), k = f(2 * 4 * 256 * 32), v = f(2 * 4 * 256 * 32), o = new Float32Array(q.length), lse = new Float32Array(2 * 8 * 256);
  a.attention(o, lse, q, k, v, null, 2, 8, 4, 256, 256, 32, 0.17, true); out.push(o, lse);
  const h = require("node:crypto").createHash("sha256");
  for (const t of out) h.update(Buffer.from(t.buffer));
  console.log(h.digest("hex"));
`;

function run(threads: number): string {
  const r = spawnSync(process.execPath, ["-e", PROGRAM], {
    encoding: "utf8",
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("threaded kernels are bit-identical across runs and thread counts", { skip }, () => {
  const one = run(1);
  assert.match(one, /^[0-9a-f]{64}$/);
  assert.equal(run(2), one, "2 threads differ from 1");
  assert.equal(run(2), one, "a second 2-thread run differs");
  assert.equal(run(3), one, "3 threads differ from 1");
});

test("several JS threads calling the addon at once each get the right product", { skip }, async () => {
  const src = `
    const { parentPort, workerData } = require("node:worker_threads");
    const a = require(${JSON.stringify(ADDON)});
    const { A, B, m, n, k, reps } = workerData;
    const C = new Float32Array(m * n);
    for (let i = 0; i < reps; i++) a.matmul(C, A, B, 1, m, n, k, false, false, 0, 0, 0, false);
    parentPort.postMessage(C);`;
  const [m, n, k] = [300, 260, 280];
  const A = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
  const B = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
  const ref = new Float32Array(m * n);
  (loadCpuAddon() as unknown as { matmul: (...a: unknown[]) => void }).matmul(ref, A, B, 1, m, n, k, false, false, 0, 0, 0, false);
  const results = await Promise.all(
    Array.from(
      { length: 3 },
      () =>
        new Promise<Float32Array>((resolve, reject) => {
          const w = new Worker(src, { eval: true, workerData: { A, B, m, n, k, reps: 20 } });
          w.once("message", resolve);
          w.once("error", reject);
        }),
    ),
  );
  const hash = (x: Float32Array) =>
    createHash("sha256")
      .update(Buffer.from(x.buffer, x.byteOffset, x.byteLength))
      .digest("hex");
  for (const r of results) assert.equal(hash(r), hash(ref));
});
