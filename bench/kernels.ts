// Per-kernel times of the native `cpu` backend against the TypeScript `ref` loops on the same float32 inputs:
// attention forward + backward at the training shape (B8 H8 T256 Dh32, causal) and at decode (T=1, S=512,
// H9/Hkv3, Dh64), rmsNorm, tokenLogprobs 2048 x 2048, adamw on 4M parameters, add and bias-add on 1.5M.
// Not a test (test/native_kernels.test.ts checks agreement) and not an end-to-end step time (see w1.ts).
// Run directly: `npx tsx bench/kernels.ts [--quick]` prints a table, then one JSON row per line.

import { cpus, loadavg } from "node:os";
import { pathToFileURL } from "node:url";
import { cpuUnavailableReason, createCpuKernels, loadCpuAddon } from "../src/backend/cpu.js";
import { refKernels } from "../src/backend/ref.js";
import type { Kernels } from "../src/backend/types.js";
import { type BenchOptions, type BenchRow, formatTable, jsonLine, row, timeit } from "./common.js";

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * s) / 2 ** 32;
  }
  return out;
}

interface Case {
  metric: string;
  /** Builds the inputs once and returns the call to time on a given backend. */
  make: () => (k: Kernels) => void;
  /** ref is slow on the big shapes: fewer timed reps there. */
  refReps?: number;
}

function attentionCase(b: number, h: number, hkv: number, t: number, s: number, dh: number, causal: boolean, bwd: boolean): Case {
  return {
    metric: `attention ${bwd ? "fwd+bwd" : "fwd"} B${b} H${h}/${hkv} T${t} S${s} Dh${dh}${causal ? " causal" : ""}`,
    refReps: 1,
    make: () => {
      const q = rand(b * h * t * dh, 1);
      const k = rand(b * hkv * s * dh, 2);
      const v = rand(b * hkv * s * dh, 3);
      const out = new Float32Array(q.length);
      const lse = new Float32Array(b * h * t);
      const dout = rand(q.length, 4);
      const dq = new Float32Array(q.length);
      const dk = new Float32Array(k.length);
      const dv = new Float32Array(v.length);
      const scale = 1 / Math.sqrt(dh);
      return (kk) => {
        kk.attention(out, lse, q, k, v, null, b, h, hkv, t, s, dh, scale, causal, s, "fp32");
        if (bwd) kk.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, null, b, h, hkv, t, s, dh, scale, causal);
      };
    },
  };
}

const CASES: Case[] = [
  attentionCase(8, 8, 8, 256, 256, 32, true, true),
  attentionCase(8, 8, 8, 256, 256, 32, true, false),
  attentionCase(8, 9, 3, 1, 512, 64, true, false),
  {
    metric: "rmsNorm fwd+bwd [2048, 576]",
    make: () => {
      const [rows, d] = [2048, 576];
      const x = rand(rows * d, 1);
      const w = rand(d, 2, 0.5, 1.5);
      const y = new Float32Array(x.length);
      const rstd = new Float32Array(rows);
      const dy = rand(x.length, 3);
      const dx = new Float32Array(x.length);
      const dw = new Float32Array(d);
      return (k) => {
        k.rmsNorm(y, rstd, x, w, rows, d, 1e-5);
        k.rmsNormBackward(dx, dw, dy, x, w, rstd, rows, d);
      };
    },
  },
  {
    metric: "tokenLogprobs fwd+bwd [2048, 2048]",
    make: () => {
      const [rows, v] = [2048, 2048];
      const logits = rand(rows * v, 1, -8, 8);
      const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % v);
      const out = new Float32Array(rows);
      const lse = new Float32Array(rows);
      const dout = rand(rows, 2);
      const dl = new Float32Array(logits.length);
      return (k) => {
        k.tokenLogprobs(out, lse, logits, targets, rows, v);
        k.tokenLogprobsBackward(dl, dout, logits, lse, targets, rows, v);
      };
    },
  },
  {
    metric: "tokenLogprobs fwd [512, 49152]",
    make: () => {
      const [rows, v] = [512, 49152];
      const logits = rand(rows * v, 1, -8, 8);
      const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % v);
      const out = new Float32Array(rows);
      const lse = new Float32Array(rows);
      return (k) => k.tokenLogprobs(out, lse, logits, targets, rows, v);
    },
  },
  {
    metric: "adamw 4M params",
    make: () => {
      const n = 4 << 20;
      const p = rand(n, 1);
      const g = rand(n, 2);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      return (k) => k.adamw(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001);
    },
  },
  {
    metric: "binary add 1.5M (same shape)",
    make: () => {
      const n = 1_500_000;
      const a = rand(n, 1);
      const b = rand(n, 2);
      const o = new Float32Array(n);
      const layout = { outShape: [n], aStrides: [1], bStrides: [1] };
      return (k) => k.binary("add", o, a, b, layout);
    },
  },
  {
    metric: "binary add 1.5M ([2048, 768] + [768])",
    make: () => {
      const [rows, d] = [2048, 768];
      const a = rand(rows * d, 1);
      const b = rand(d, 2);
      const o = new Float32Array(rows * d);
      const layout = { outShape: [rows, d], aStrides: [d, 1], bStrides: [0, 1] };
      return (k) => k.binary("add", o, a, b, layout);
    },
  },
  {
    metric: "swiglu fwd+bwd 1.5M",
    make: () => {
      const n = 1_500_000;
      const g = rand(n, 1, -4, 4);
      const u = rand(n, 2);
      const o = new Float32Array(n);
      const dg = new Float32Array(n);
      const du = new Float32Array(n);
      return (k) => {
        k.swiglu(o, g, u);
        k.swigluBackward(dg, du, u, g, u);
      };
    },
  },
  {
    metric: "copyStrided transpose [1536, 1024]",
    make: () => {
      const x = rand(1536 * 1024, 1);
      const o = new Float32Array(x.length);
      return (k) => k.copyStrided(o, x, [1536, 1024], [1, 1536], 0);
    },
  },
];

export async function benchKernels(opts: BenchOptions): Promise<BenchRow[]> {
  const addon = loadCpuAddon();
  if (addon === null) {
    opts.note(`kernels: skipped, ${cpuUnavailableReason()}`);
    return [];
  }
  const cpu = createCpuKernels(addon);
  opts.note(`kernels: native table ${String(addon.fusedSimd)}, ${addon.numThreads()} OpenMP threads; peer = ref (TypeScript loops)`);
  // Taken before any work: on a 2-core VM another busy process makes every OpenMP join wait a scheduler slice (~8 ms).
  const load = loadavg()[0];
  const rows: BenchRow[] = [];
  for (const c of CASES) {
    const call = c.make();
    const native = await timeit(() => call(cpu), { warmup: 2, reps: opts.quick ? 5 : 20 });
    const ref = await timeit(() => call(refKernels), { warmup: c.refReps === 1 ? 0 : 1, reps: opts.quick ? 1 : (c.refReps ?? 3) });
    rows.push(row("kernels", c.metric, native.median * 1e3, "ms", ref.median * 1e3, "time"));
    opts.detail(c.metric, { nativeSamples: native.samples, refSamples: ref.samples });
  }
  if (load > 0.8) {
    opts.note(
      `kernels: warning, load average ${load.toFixed(1)} on ${cpus().length} cores before the run: multi-threaded times include OpenMP join stalls`,
    );
  }
  return rows;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes("--quick");
  benchKernels({ quick, note: (m) => console.log(m), detail: () => {} })
    .then((rows) => {
      console.log(formatTable(rows));
      for (const r of rows) console.log(jsonLine(r));
    })
    .catch((e: unknown) => {
      console.error((e as Error).message);
      process.exitCode = 1;
    });
}
