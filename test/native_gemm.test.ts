// Conformance of the native sgemm (`matmul` of build/Release/nexus_cpu.node) against a float64 triple loop:
// awkward shapes, all transpose combinations, broadcast batches, accumulate, k = 0, GEMV and threaded paths.
// The suite reruns itself in child processes with NEXUS_SIMD=avx2 and NEXUS_SIMD=scalar so every microkernel
// is checked on an AVX-512 machine. It tests the raw addon only; the Kernels wrapper is tested elsewhere.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

interface GemmAddon {
  simdLevel: string;
  matmul(
    c: Float32Array,
    a: Float32Array,
    b: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    accumulate: boolean,
  ): undefined;
  matmulInfo(): { mr: number; nr: number; mc: number; kc: number; nc: number; simd: string; threads: number };
}

const here = dirname(fileURLToPath(import.meta.url));
const addonPath = join(here, "..", "build", "Release", "nexus_cpu.node");
const addon: GemmAddon | null = existsSync(addonPath) ? (createRequire(import.meta.url)(addonPath) as GemmAddon) : null;
const skip = addon === null ? `native addon missing at ${addonPath} (run \`npm run build:native\`)` : false;
const isChild = process.env.NEXUS_GEMM_TEST_CHILD === "1";

function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1; // uniform in [-1, 1)
  }
  return out;
}

interface Case {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  strideA: number;
  strideB: number;
  strideC: number;
  accumulate: boolean;
}

// Float64 oracle on the same float32 inputs; returns the expected full C buffer.
function reference(cs: Case, a: Float32Array, b: Float32Array, c0: Float32Array): Float64Array {
  const { batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate } = cs;
  const out = Float64Array.from(c0);
  for (let bi = 0; bi < batch; bi++) {
    const oa = bi * strideA;
    const ob = bi * strideB;
    const oc = bi * strideC;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = accumulate ? out[oc + i * n + j] : 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[oa + p * m + i] : a[oa + i * k + p];
          const bv = transB ? b[ob + j * k + p] : b[ob + p * n + j];
          s += av * bv;
        }
        out[oc + i * n + j] = s;
      }
    }
  }
  return out;
}

function check(cs: Case, seed: number): void {
  const { batch, m, n, k, strideA, strideB, strideC } = cs;
  const lenA = Math.max(0, (batch - 1) * strideA + m * k);
  const lenB = Math.max(0, (batch - 1) * strideB + k * n);
  const lenC = Math.max(0, (batch - 1) * strideC + m * n) + 5; // a tail the kernel must not touch
  const a = rand(lenA, seed);
  const b = rand(lenB, seed + 1);
  const c = rand(lenC, seed + 2); // garbage start: accumulate=false must overwrite, true must add
  const want = reference(cs, a, b, c);
  addon!.matmul(c, a, b, batch, m, n, k, cs.transA, cs.transB, strideA, strideB, strideC, cs.accumulate);
  let maxRef = 0;
  for (const v of want) maxRef = Math.max(maxRef, Math.abs(v));
  const tol = 1e-5 * Math.sqrt(Math.max(k, 1)) * Math.max(1, maxRef);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < lenC; i++) {
    const d = Math.abs(c[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${JSON.stringify(cs)}: max |diff| ${worst} at ${at} (got ${c[at]}, want ${want[at]}), tol ${tol}`);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 1, 33],
  [33, 1000, 7],
  [1000, 33, 65],
  [64, 64, 64],
  [257, 129, 513],
  [1, 3000, 100], // threaded GEMV over n
  [3000, 1, 100], // threaded GEMV over m
  [5, 6, 7], // small direct path with every transpose
  [300, 32, 70], // narrow (n <= 32) microkernel
  [500, 32, 100], // narrow, threaded
  [3, 200, 100], // few-row path
  [4, 3000, 100], // few-row path, threaded over n
];

function plain(m: number, n: number, k: number, transA: boolean, transB: boolean, accumulate: boolean): Case {
  return { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: m * n, accumulate };
}

describe(`native sgemm (${addon?.matmulInfo().simd ?? "unavailable"})`, { skip }, () => {
  if (process.env.NEXUS_SIMD && addon) {
    test("NEXUS_SIMD selects the requested microkernel", () => {
      assert.equal(addon!.matmulInfo().simd, process.env.NEXUS_SIMD);
    });
  }

  let seed = 1;
  for (const [m, n, k] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        test(`${m}x${n}x${k} transA=${transA} transB=${transB}`, () => {
          check(plain(m, n, k, transA, transB, false), seed++);
          check(plain(m, n, k, transA, transB, true), seed++);
        });
      }
    }
  }

  test("k = 0 writes zeros, or leaves C when accumulating", () => {
    const c = new Float32Array([1, 2, 3, 4, 5, 6]);
    addon!.matmul(c, new Float32Array(0), new Float32Array(0), 1, 2, 3, 0, false, false, 0, 0, 6, true);
    assert.deepEqual([...c], [1, 2, 3, 4, 5, 6]);
    addon!.matmul(c, new Float32Array(0), new Float32Array(0), 1, 2, 3, 0, false, false, 0, 0, 6, false);
    assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
    check({ ...plain(40, 50, 0, true, false, false), batch: 2, strideC: 2000 }, 99);
  });

  test("batch 3 with strideA = 0 broadcasts A", () => {
    for (const [m, n, k] of [
      [17, 70, 33],
      [150, 140, 130],
    ]) {
      for (const accumulate of [false, true]) {
        check({ batch: 3, m, n, k, transA: false, transB: true, strideA: 0, strideB: k * n, strideC: m * n, accumulate }, seed++);
        check({ batch: 3, m, n, k, transA: true, transB: false, strideA: m * k, strideB: 0, strideC: m * n, accumulate }, seed++);
      }
    }
  });

  test("batched small matrices run per item and leave gaps between C items alone", () => {
    // batch 16 >= 4 x threads: the per-item parallel path; strideC > m*n leaves 7 untouched floats per item
    check(
      {
        batch: 16,
        m: 40,
        n: 48,
        k: 32,
        transA: false,
        transB: true,
        strideA: 40 * 32,
        strideB: 48 * 32,
        strideC: 40 * 48 + 7,
        accumulate: false,
      },
      7,
    );
    check(
      {
        batch: 16,
        m: 40,
        n: 48,
        k: 32,
        transA: true,
        transB: false,
        strideA: 40 * 32,
        strideB: 48 * 32,
        strideC: 40 * 48 + 7,
        accumulate: true,
      },
      8,
    );
  });

  test("strideC = 0 with accumulate sums the batch into one C", () => {
    check({ batch: 4, m: 30, n: 20, k: 10, transA: false, transB: false, strideA: 300, strideB: 200, strideC: 0, accumulate: true }, 11);
  });

  test("short arrays throw a tagged RangeError", () => {
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    assert.throws(() => addon!.matmul(new Float32Array(3), a, b, 1, 2, 2, 3, false, false, 0, 0, 0, false), {
      name: "RangeError",
      message: /^\[cpu matmul\] c has 3 elements, needs 4/,
    });
    assert.throws(() => addon!.matmul(new Float32Array(8), a, b, 2, 2, 2, 3, false, false, 6, 6, 4, false), {
      name: "RangeError",
      message: /^\[cpu matmul\] a has 6 elements, needs 12/,
    });
    assert.throws(() => addon!.matmul(new Float32Array(4), a, b, 1, 2, 2, -1, false, false, 0, 0, 0, false), RangeError);
    assert.throws(
      () => addon!.matmul(new Float32Array(4), a, new Float64Array(6) as unknown as Float32Array, 1, 2, 2, 3, false, false, 0, 0, 0, false),
      TypeError,
    );
  });
});

// The parent run re-executes this file once per lower SIMD level the CPU has.
if (!isChild && addon !== null) {
  const levels = addon.simdLevel === "avx512" ? ["avx2", "scalar"] : addon.simdLevel === "avx2" ? ["scalar"] : [];
  // Tiny cache blocks force several MC, KC and NC blocks (K-block accumulation, partial blocks) on small shapes.
  const runs = [...levels.map((level) => ({ NEXUS_SIMD: level })), { NEXUS_GEMM_BLOCKS: "12,7,128" }];
  describe("native sgemm on lower SIMD levels and tiny cache blocks", () => {
    for (const extra of runs) {
      const name = Object.entries(extra)
        .map(([key, v]) => `${key}=${v}`)
        .join(" ");
      test(name, () => {
        // Run as a plain script (not --test) and without NODE_TEST_CONTEXT: under a parent runner, a child's
        // --test runs nothing and the context variable switches its report to the runner's binary protocol.
        const { NODE_TEST_CONTEXT: _, ...env } = process.env;
        const file = fileURLToPath(import.meta.url);
        const r = spawnSync(process.execPath, ["--enable-source-maps", "--import", "tsx", "--test-reporter=tap", file], {
          env: { ...env, ...extra, NEXUS_GEMM_TEST_CHILD: "1" },
          encoding: "utf8",
          timeout: 300_000,
        });
        const tail = `${r.stdout}\n${r.stderr}`.split("\n").slice(-40).join("\n");
        assert.equal(r.status, 0, `child with ${name} failed:\n${tail}`);
        assert.match(r.stdout, /# pass [1-9]\d*\n# fail 0/, `child with ${name} ran no test:\n${tail}`);
      });
    }
  });
}
