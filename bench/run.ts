// `npm run bench [-- --only a,b] [--quick] [--json] [--list] [--contention]`: runs the registered benches in order, prints a
// table (or, with --json, one JSON object per row on stdout and notes on stderr) and writes
// bench/results/<date>-<bench>.json per bench. Benches live in their own files; this file only registers
// and runs them. A bench whose file is absent is skipped with a notice, never an error.

import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { BENCH_DIR, type BenchFn, type BenchRow, formatTable, jsonLine, writeResults } from "./common.js";

type Loader = () => Promise<BenchFn | string>;

/** name → (file in bench/, exported function). Adding a bench is one line here. */
const BENCHES: Record<string, Loader> = {
  sgemm: lazy("sgemm.ts", "benchSgemm"),
  kernels: lazy("kernels.ts", "benchKernels"),
  w1: lazy("w1.ts", "benchW1"),
  dpo: lazy("dpo.ts", "benchDpo"),
  generation: lazy("generation.ts", "benchGeneration"),
  grpo: lazy("grpo.ts", "benchGrpo"),
  gpu: lazy("gpu.ts", "benchGpu"),
  cpu_threads: lazy("cpu_threads.ts", "benchCpuThreads"),
  rollouts: lazy("rollouts.ts", "benchRollouts"),
};

/** Import bench/<file> on demand; a string return is the reason it cannot run. */
function lazy(file: string, exportName: string): Loader {
  return async () => {
    if (!existsSync(join(BENCH_DIR, file))) return `bench/${file} does not exist yet`;
    const mod = (await import(`./${file}`)) as Record<string, unknown>;
    const fn = mod[exportName];
    if (typeof fn !== "function") return `bench/${file} does not export ${exportName}()`;
    return fn as BenchFn;
  };
}

interface Args {
  only: string[] | null;
  quick: boolean;
  contention: boolean;
  json: boolean;
  list: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { only: null, quick: false, contention: false, json: false, list: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") a.quick = true;
    else if (arg === "--contention") a.contention = true;
    else if (arg === "--json") a.json = true;
    else if (arg === "--list") a.list = true;
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const v = arg === "--only" ? argv[++i] : arg.slice("--only=".length);
      if (!v) throw new Error("--only needs a comma-separated list of bench names");
      a.only = v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        `usage: npm run bench -- [--only a,b] [--quick] [--json] [--list] [--contention]\nbenches: ${Object.keys(BENCHES).join(", ")}\n`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}' (try --help)`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    process.stdout.write(`${Object.keys(BENCHES).join("\n")}\n`);
    return;
  }
  // Nexus runs on 2 threads like the peers (OpenMP reads this when the addon first loads, after this line)
  process.env.OMP_NUM_THREADS ??= "2";
  const names = args.only ?? Object.keys(BENCHES);
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}`);
  // human notes go to stdout with the table, or to stderr when stdout carries JSON lines
  const say = (msg: string) => (args.json ? process.stderr : process.stdout).write(`${msg}\n`);
  const all: BenchRow[] = [];
  let failed = false;
  for (const name of names) {
    const fn = await BENCHES[name]();
    if (typeof fn === "string") {
      say(`[bench] skipping ${name}: ${fn}`);
      continue;
    }
    const notes: string[] = [];
    const details: Record<string, unknown> = {};
    const load = loadavg()[0];
    say(`[bench] ${name}${args.quick ? " (quick)" : ""}; load average ${load.toFixed(2)} on ${cpus().length} CPUs`);
    if (load > 0.5) say(`  WARNING: the machine is busy (load ${load.toFixed(2)}); timings will be noisy`);
    const t0 = performance.now();
    let rows: BenchRow[];
    try {
      rows = await fn({
        quick: args.quick,
        contention: args.contention,
        note: (msg) => {
          notes.push(msg);
          say(`  ${msg}`);
        },
        detail: (key, value) => {
          details[key] = value;
        },
      });
    } catch (e) {
      failed = true;
      say(`[bench] ${name} failed: ${(e as Error).stack ?? e}`);
      continue;
    }
    const seconds = (performance.now() - t0) / 1000;
    const path = writeResults(name, { quick: args.quick, seconds, rows, notes, details });
    if (args.json) for (const r of rows) process.stdout.write(`${jsonLine(r)}\n`);
    else say(`${formatTable(rows)}\n`);
    say(`[bench] ${name} done in ${seconds.toFixed(1)} s (load average now ${loadavg()[0].toFixed(2)}); results in ${path}`);
    all.push(...rows);
  }
  if (!args.json && all.length > 0 && names.length > 1) say(`\n${formatTable(all)}`);
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`[bench] ${(e as Error).message}\n`);
  process.exitCode = 2;
});
