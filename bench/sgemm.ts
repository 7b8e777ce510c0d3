// Single-precision GEMM throughput of the native `cpu` addon against this machine's measured fp32 FMA peak.
// The peak is measured, not looked up: a dependency-free FMA loop on every OpenMP thread (`fmaThroughput`).
// Not a test (no correctness checks: see test/native_gemm.test.ts) and no external peer such as PyTorch: the
// "peer" column is the machine's peak. Run directly: `npx tsx bench/sgemm.ts [--quick]` prints a table, then one JSON row per line.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  peer: number | null;
  ratio: number | null;
}

interface SgemmAddon {
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
  fmaThroughput(iters: number): { gflops: number; lanes: number; threads: number; seconds: number };
}

function loadAddon(): SgemmAddon {
  const path = join(dirname(fileURLToPath(import.meta.url)), "..", "build", "Release", "nexus_cpu.node");
  if (!existsSync(path)) throw new Error(`[bench sgemm] native addon missing at ${path} (run \`npm run build:native\`)`);
  return createRequire(import.meta.url)(path) as SgemmAddon;
}

/** Both Zen 4/5 and Sapphire Rapids server cores issue two 512-bit FMAs per cycle; used only to derive the clock. */
const FMA_UNITS = 2;

export interface Fp32Peak {
  gflops: number;
  formula: string;
  cores: number;
  fmaUnits: number;
  lanes: number;
  clockGHz: number;
}
let peakCache: Fp32Peak | undefined; // measured once per process, so the printout and the rows agree

/** Measured fp32 peak: best of 5 runs of the FMA loop on all threads; clock derived as gflops / (cores x FMA x lanes x 2). */
export function fp32Peak(): Fp32Peak {
  if (peakCache !== undefined) return peakCache;
  const addon = loadAddon();
  addon.fmaThroughput(2e6); // wake the cores up to their boost clock
  let best = { gflops: 0, lanes: 16, threads: 1, seconds: 0 };
  for (let i = 0; i < 5; i++) {
    const r = addon.fmaThroughput(3e7);
    if (r.gflops > best.gflops) best = r;
  }
  const cores = best.threads;
  const clockGHz = best.gflops / (cores * FMA_UNITS * best.lanes * 2);
  const formula = `${cores} cores x ${FMA_UNITS} FMA/cycle x ${best.lanes} lanes x 2 flop x ${clockGHz.toFixed(2)} GHz (clock derived from the measured FMA loop) = ${best.gflops.toFixed(1)} GFLOP/s`;
  peakCache = { gflops: best.gflops, formula, cores, fmaUnits: FMA_UNITS, lanes: best.lanes, clockGHz };
  return peakCache;
}

function filled(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

interface Shape {
  name: string;
  batch: number;
  m: number;
  n: number;
  k: number;
  transB: boolean;
}

/** Seconds per call: warm-up, then reps until ~`budget` seconds (at least `minReps`); returns [best, median]. */
function timeCalls(fn: () => void, budget: number, minReps: number): [number, number] {
  fn();
  fn();
  const times: number[] = [];
  const start = process.hrtime.bigint();
  while (times.length < minReps || (Number(process.hrtime.bigint() - start) / 1e9 < budget && times.length < 2000)) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((x, y) => x - y);
  return [times[0], times[Math.floor(times.length / 2)]];
}

export async function benchSgemm(opts: { quick?: boolean } = {}): Promise<BenchRow[]> {
  const addon = loadAddon();
  const peak = fp32Peak();
  const shapes: Shape[] = [
    { name: "256", batch: 1, m: 256, n: 256, k: 256, transB: false },
    { name: "1024", batch: 1, m: 1024, n: 1024, k: 1024, transB: false },
    { name: "2048", batch: 1, m: 2048, n: 2048, k: 2048, transB: false },
    // attention scores: 64 heads x (256 x 32) @ (32 x 256)^T, small k, parallel over the batch
    { name: "batch64x256x256x32_bt", batch: 64, m: 256, n: 256, k: 32, transB: true },
  ];
  const rows: BenchRow[] = [];
  for (const s of shapes) {
    const a = filled(s.batch * s.m * s.k, 1);
    const b = filled(s.batch * s.k * s.n, 2);
    const c = new Float32Array(s.batch * s.m * s.n);
    const call = () => addon.matmul(c, a, b, s.batch, s.m, s.n, s.k, false, s.transB, s.m * s.k, s.k * s.n, s.m * s.n, false);
    const [best, median] = timeCalls(call, opts.quick ? 0.15 : 1.0, opts.quick ? 3 : 10);
    const flops = 2 * s.batch * s.m * s.n * s.k;
    // the headline row is the median (metric = the size, as `{"bench":"sgemm","metric":"1024",...}`); best is extra
    for (const [metric, secs] of [
      [s.name, median],
      [`${s.name}_best`, best],
    ] as const) {
      const value = flops / secs / 1e9;
      rows.push({ bench: "sgemm", metric, value, unit: "GFLOP/s", peer: peak.gflops, ratio: value / peak.gflops });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const addon = loadAddon();
  const peak = fp32Peak();
  const info = addon.matmulInfo();
  console.log(`fp32 peak: ${peak.formula}`);
  console.log(`microkernel ${info.simd} ${info.mr}x${info.nr}, blocks mc=${info.mc} kc=${info.kc} nc=${info.nc}, ${info.threads} threads`);
  const rows = await benchSgemm({ quick });
  console.log("");
  console.log(`${"bench".padEnd(34)} ${"metric".padEnd(14)} ${"value".padStart(9)} ${"peak".padStart(9)} ${"of peak".padStart(8)}`);
  for (const r of rows) {
    const pct = r.ratio === null ? "" : `${(100 * r.ratio).toFixed(1)}%`;
    console.log(
      `${r.bench.padEnd(34)} ${r.metric.padEnd(14)} ${r.value.toFixed(1).padStart(9)} ${(r.peer ?? 0).toFixed(1).padStart(9)} ${pct.padStart(8)}`,
    );
  }
  // On this 2-core VM a concurrent job halves the FMA loop and stalls OpenMP joins by a scheduler slice: say so.
  const after = addon.fmaThroughput(3e7).gflops;
  if (after < 0.9 * peak.gflops) {
    console.log(
      `warning: FMA peak fell from ${peak.gflops.toFixed(0)} to ${after.toFixed(0)} GFLOP/s during the run: machine busy, numbers unreliable`,
    );
  }
  console.log("");
  for (const r of rows) console.log(JSON.stringify(r));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exitCode = 1;
  });
}
