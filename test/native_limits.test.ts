// The native addon's range checks cannot overflow (issue 13's probe: copyStrided with stride 2^52 and matmul
// with batch 2^33 passed the check and segfaulted) and no call loops over a huge dimension while its arrays
// are empty; a worker thread terminated in the middle of native calls (nexus serve's generation worker at exit)
// ends quietly instead of aborting the process. Each case runs in a child process, so a segfault or an abort fails
// the test instead of killing the runner.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { loadCpuAddon } from "../src/backend/cpu.js";

const ADDON = loadCpuAddon() === null ? null : new URL("../build/Release/nexus_cpu.node", import.meta.url).pathname;

/** Run `call` (JS using `a`, the addon, and `f(n)`, a Float32Array) in a child; its outcome as text. */
function inChild(call: string): { out: string; status: number | null; signal: string | null; ms: number } {
  const src = `const a = require(${JSON.stringify(ADDON)}); const f = (n) => new Float32Array(n); const i = (n) => new Int32Array(n);
    const t0 = performance.now();
    try { ${call}; console.log("returned", Math.round(performance.now() - t0)); } catch (e) { console.log("threw", e.message); }`;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["-e", src], { encoding: "utf8", timeout: 20_000 });
  return { out: r.stdout.trim(), status: r.status, signal: r.signal, ms: performance.now() - t0 };
}

const cases: [string, string, RegExp][] = [
  [
    "copyStrided, stride 2^52 over 2049 rows (2^63 wraps)",
    "a.copyStrided(f(4096), f(4), [2049], [2**52], 0)",
    /^threw \[cpu copyStrided\] x is read at elements \[0, above 2\^63\] but has 4$/,
  ],
  [
    "copyStrided, negative stride 2^52",
    "a.copyStrided(f(4096), f(4), [2049], [-(2**52)], 3)",
    /^threw \[cpu copyStrided\] x is read at elements \[-9223372036854775805, 3\] but has 4$/,
  ],
  [
    "matmul, batch 2^33 with strides 2^31",
    "a.matmul(f(4), f(4), f(4), 2**33, 2, 2, 1, false, false, 2**31, 2**31, 2**31, false)",
    /^threw \[cpu matmul\] a has 4 elements, needs more than 2\^63/,
  ],
  [
    "matmul, batch 2^33 with every stride 0",
    "a.matmul(f(4), f(4), f(4), 2**33, 2, 2, 1, false, false, 0, 0, 0, true)",
    /^threw \[cpu matmul\] batch 8589934592 with no operand advancing/,
  ],
  [
    "matmul, m x k past 2^53",
    "a.matmul(f(4), f(4), f(4), 1, 2**40, 1, 2**20, false, false, 0, 0, 0, false)",
    /^threw \[cpu matmul\] a \[m,k\] is 1099511627776 x 1048576: too large/,
  ],
  [
    "binary, outShape [2^32, 2^32] (the product wraps to 0)",
    "a.binary('add', f(0), f(4), f(4), {outShape: [2**32, 2**32], aStrides: [0, 1], bStrides: [1, 0]})",
    /^threw \[cpu binary\] sizes overflow/,
  ],
  [
    "attention, dh 0 with huge b, h, t",
    "a.attention(f(4), f(4), f(4), f(4), f(4), null, 2**20, 2**10, 1, 2**10, 2**10, 0, 0.5, true)",
    /^threw \[cpu attention\] dh must be at least 1/,
  ],
  ["sum over an empty n with 9e15 rows: nothing to do, at once", "a.sum(f(4), f(4), 9e15, 0, 0)", /^returned \d+$/],
  ["gather with inner 0 and 2^40 rows", "a.gather(f(4), f(4), i(4), 2**40, 1, 2**40, 0)", /^returned \d+$/],
  ["softmax with n 0 and 9e15 rows", "a.softmax(f(4), f(4), 9e15, 0)", /^returned \d+$/],
  ["rope with dh 0", "a.rope(f(4), f(4), f(4), f(4), 2**40, 2**10, 8, 0, false)", /^returned \d+$/],
  ["fmaThroughput with 1e12 iterations (hours)", "a.fmaThroughput(1e12)", /^threw \[cpu fmaThroughput\] iters must be in \[1, 1e8\]$/],
];

for (const [name, call, want] of cases) {
  test(`native: ${name}`, { skip: ADDON === null ? "the native addon is not built" : false }, () => {
    const r = inChild(call);
    assert.equal(r.signal, null, `killed by ${r.signal}`);
    assert.equal(r.status, 0);
    assert.match(r.out, want);
    const m = /^returned (\d+)$/.exec(r.out);
    if (m) assert.ok(Number(m[1]) < 100, `took ${m[1]} ms`);
  });
}

test("native: a worker terminated mid-call ends quietly (no abort of the whole process)", {
  skip: ADDON === null ? "the native addon is not built" : false,
}, () => {
  // terminating the worker makes the next N-API call of a kernel fail; the addon's C++ error then cannot be thrown
  // into a JS engine that is stopping, and without NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS node-addon-api threw
  // again out of the callback: std::terminate, the process aborted (every run, and once in a full suite)
  const worker = `const a = require(${JSON.stringify(ADDON)}); const f = () => new Float32Array(64 * 64);
    const [x, y, z] = [f(), f(), f()]; require("node:worker_threads").parentPort.postMessage("go");
    for (;;) a.matmul(z, x, y, 1, 64, 64, 64, false, false, 0, 0, 0, false);`;
  const src = `const { Worker } = require("node:worker_threads"); const w = new Worker(${JSON.stringify(worker)}, { eval: true });
    w.on("message", () => setTimeout(() => w.terminate().then(() => console.log("terminated")), 30));`;
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ["-e", src], { encoding: "utf8", timeout: 20_000 });
    assert.equal(r.signal, null, `run ${i}: killed by ${r.signal}: ${r.stderr.slice(0, 300)}`);
    assert.equal(r.status, 0, r.stderr.slice(0, 300));
    assert.equal(r.stdout.trim(), "terminated");
  }
});
