// Shared benchmark plumbing: the BenchRow type every bench returns, a timer (warmup + median of reps),
// running a Python peer script as a subprocess (JSON on its last stdout line), table printing and the
// results file bench/results/<date>-<bench>.json. No bench logic lives here, and nothing here installs
// anything: a missing peer is reported with its reason, never fetched.

import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const PEERS_DIR = join(BENCH_DIR, "peers");
export const RESULTS_DIR = join(BENCH_DIR, "results");

/**
 * One measured number. `ratio` is always "how many times faster Nexus is" (> 1: Nexus wins):
 * value / peer for throughputs, peer / value for times; null when there is no peer or the peer is
 * shown for information only.
 */
export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  peer: number | null;
  ratio: number | null;
}

export interface BenchOptions {
  /** A fast smoke run: fewer steps, fewer peer configurations. */
  quick: boolean;
  /** Also measure with another process keeping one core busy (benches that support it: w1). */
  contention?: boolean;
  /** A human-readable line (configuration, progress); printed and saved with the results. */
  note: (msg: string) => void;
  /** Structured details saved in the results file (peer configs, raw samples, profiles). */
  detail: (key: string, value: unknown) => void;
}

export type BenchFn = (opts: BenchOptions) => Promise<BenchRow[]>;

export type RowKind = "throughput" | "time" | "info";

/** Build a row; the ratio follows `kind` (see BenchRow). */
export function row(
  bench: string,
  metric: string,
  value: number,
  unit: string,
  peer: number | null = null,
  kind: RowKind = "throughput",
): BenchRow {
  let ratio: number | null = null;
  if (peer !== null && peer > 0 && value > 0) {
    if (kind === "throughput") ratio = value / peer;
    else if (kind === "time") ratio = peer / value;
  }
  return { bench, metric, value, unit, peer, ratio };
}

export interface Timing {
  /** Seconds. */
  median: number;
  min: number;
  samples: number[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Time fn (sync or async): `warmup` untimed calls, then `reps` timed ones; seconds. */
export async function timeit(fn: () => unknown, opts: { warmup?: number; reps?: number } = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 1;
  const reps = Math.max(1, opts.reps ?? 5);
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    samples.push((performance.now() - t0) / 1000);
  }
  return { median: median(samples), min: Math.min(...samples), samples };
}

// ---- Python peers ----

let pythonCache: { python: string; torch: string } | { reason: string } | undefined;

/**
 * A python3 that can import torch: $NEXUS_PEER_PYTHON, then `python3` on PATH, then /usr/bin/python3
 * (Debian's python3-torch installs into the system python, which a pyenv shim on PATH may hide).
 */
export function findTorchPython(): { python: string; torch: string } | { reason: string } {
  if (pythonCache !== undefined) return pythonCache;
  const candidates = [process.env.NEXUS_PEER_PYTHON, "python3", "/usr/bin/python3"].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const py of [...new Set(candidates)]) {
    try {
      const v = execFileSync(py, ["-c", "import torch; print(torch.__version__)"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 60_000,
      }).trim();
      pythonCache = { python: py, torch: v };
      return pythonCache;
    } catch (e) {
      const msg = ((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split("\n").pop() ?? "";
      tried.push(`${py}: ${msg}`);
    }
  }
  pythonCache = {
    reason: `no python3 can import torch (${tried.join("; ")}); install Debian's python3-torch to compare against PyTorch`,
  };
  return pythonCache;
}

export type PeerResult<T> = { ok: true; data: T; python: string } | { ok: false; reason: string };

/**
 * Run bench/peers/<script> with args under process.env overlaid with `env` (a key set to undefined is
 * removed); parse the last stdout line as JSON.
 */
export async function runPeer<T = Record<string, unknown>>(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string | undefined> = {},
  timeoutMs = 15 * 60_000,
): Promise<PeerResult<T>> {
  const py = findTorchPython();
  if ("reason" in py) return { ok: false, reason: py.reason };
  const fullEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) fullEnv[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete fullEnv[k];
    else fullEnv[k] = v;
  }
  const path = script.includes("/") ? script : join(PEERS_DIR, script);
  return new Promise((resolve) => {
    execFile(
      py.python,
      [path, ...args],
      { env: fullEnv, timeout: timeoutMs, maxBuffer: 64 << 20, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) {
          const tail = (stderr || err.message).trim().split("\n").slice(-3).join(" | ");
          resolve({ ok: false, reason: `${script} failed: ${tail}` });
          return;
        }
        const last = stdout.trim().split("\n").pop() ?? "";
        try {
          resolve({ ok: true, data: JSON.parse(last) as T, python: py.python });
        } catch {
          resolve({ ok: false, reason: `${script} printed no JSON line (last line: ${last.slice(0, 200)})` });
        }
      },
    );
  });
}

// ---- output ----

function fmt(x: number | null): string {
  if (x === null || Number.isNaN(x)) return "-";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return x.toExponential(3);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(3);
}

/** A plain-text table (no colours; safe in pipes and CI logs). */
export function formatTable(rows: readonly BenchRow[]): string {
  const head = ["bench", "metric", "value", "unit", "peer", "ratio"];
  const body = rows.map((r) => [r.bench, r.metric, fmt(r.value), r.unit, fmt(r.peer), r.ratio === null ? "-" : `${r.ratio.toFixed(2)}x`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const numeric = [false, false, true, false, true, true];
  const line = (cells: string[]) => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** The six fields of the --json protocol, in order. */
export function jsonLine(r: BenchRow): string {
  return JSON.stringify({ bench: r.bench, metric: r.metric, value: r.value, unit: r.unit, peer: r.peer, ratio: r.ratio });
}

export function hostInfo(): Record<string, unknown> {
  const c = cpus();
  return { cpu: c[0]?.model ?? "unknown", cpus: c.length, node: process.version, platform: `${process.platform}-${process.arch}` };
}

/** Write bench/results/<date>-<bench>.json (date with time, so runs on one day do not overwrite); returns the path. */
export function writeResults(bench: string, payload: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/:/g, "-")
    .replace(/\.\d+Z$/, "Z");
  const path = join(RESULTS_DIR, `${stamp}-${bench}.json`);
  writeFileSync(path, `${JSON.stringify({ bench, date: new Date().toISOString(), host: hostInfo(), ...payload }, null, 2)}\n`);
  return path;
}

// ---- PyTorch peer configurations ----

const OPENMP_BLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
/** OPENBLAS_CORETYPE values tried for the tuned peer (undefined = OpenBLAS's own detection). */
const CORETYPES: (string | undefined)[] = [undefined, "SkylakeX", "Cooperlake", "Zen", "Haswell"];

export interface PeerConfig {
  label: string;
  /** Overlay for runPeer (undefined removes a variable). */
  env: Record<string, string | undefined>;
  /** One line saying what the configuration is. */
  describe: string;
}

export interface TorchPeerConfigs {
  /** The peer at its best: fastest correct OPENBLAS_CORETYPE, OpenMP OpenBLAS, 2 threads. Ratios use this. */
  tuned: PeerConfig;
  /** No environment tweaks at all (torch.set_num_threads(2) only, done by the peer script). */
  asInstalled: PeerConfig;
  probes: Record<string, unknown>[];
}

/** Every BLAS/OpenMP variable removed: what a user gets after `apt-get install python3-torch`. */
function plainEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { LD_LIBRARY_PATH: undefined, LD_PRELOAD: undefined };
  for (const k of Object.keys(process.env)) {
    if (/^(OPENBLAS_|GOTO|OMP_|KMP_|MKL_)/.test(k)) env[k] = undefined;
  }
  return env;
}

let peerConfigCache: Promise<TorchPeerConfigs | { reason: string }> | undefined;

/**
 * Probe torch.mm under each candidate OPENBLAS_CORETYPE (bench/peers/blas_probe.py; correct = within 1e-5 of a
 * float64 product) and keep the fastest at 1024^3. $NEXUS_PEER_CORETYPE skips the probe. Cached per process.
 */
export function torchPeerConfigs(quick = false): Promise<TorchPeerConfigs | { reason: string }> {
  peerConfigCache ??= (async () => {
    const py = findTorchPython();
    if ("reason" in py) return { reason: py.reason };
    const base = { ...plainEnv(), OMP_NUM_THREADS: "2", ...(existsSync(OPENMP_BLAS_DIR) ? { LD_LIBRARY_PATH: OPENMP_BLAS_DIR } : {}) };
    const forced = process.env.NEXUS_PEER_CORETYPE;
    const candidates = forced !== undefined ? [forced === "" ? undefined : forced] : CORETYPES;
    const probes: Record<string, unknown>[] = [];
    type Probe = { mm1024: { gflops: number; rel_err: number }; mm_w1: { gflops: number; rel_err: number }; corename: string | null };
    // the machine may be shared: probe every candidate `rounds` times, interleaved, and keep each one's best
    const rounds = quick || candidates.length === 1 ? 1 : 2;
    const best = new Map<string | undefined, { gflops: number; ok: boolean; corename: string | null }>();
    for (let round = 0; round < rounds; round++) {
      for (const ct of candidates) {
        const r = await runPeer<Probe>("blas_probe.py", ["--reps", quick ? "5" : "20"], { ...base, OPENBLAS_CORETYPE: ct }, 120_000);
        if (!r.ok) {
          probes.push({ round, coretype: ct ?? "(auto)", error: r.reason });
          continue;
        }
        const ok = r.data.mm1024.rel_err < 1e-5 && r.data.mm_w1.rel_err < 1e-5;
        probes.push({ ...r.data, round, coretype: ct ?? "(auto)", correct: ok });
        const prev = best.get(ct);
        if (prev === undefined || r.data.mm1024.gflops > prev.gflops) {
          best.set(ct, {
            gflops: Math.max(prev?.gflops ?? 0, r.data.mm1024.gflops),
            ok: ok && (prev?.ok ?? true),
            corename: r.data.corename,
          });
        } else if (!ok) prev.ok = false;
      }
    }
    let chosen: string | undefined;
    let chosenGflops = -1;
    for (const [ct, b] of best) {
      if (b.ok && b.gflops > chosenGflops) {
        chosen = ct;
        chosenGflops = b.gflops;
      }
    }
    const probeLine = candidates
      .map((ct) => {
        const b = best.get(ct);
        const name = ct ?? `(auto=${b?.corename ?? "?"})`;
        return b === undefined ? `${name}: failed` : `${name}: ${b.gflops.toFixed(0)} GFLOP/s${b.ok ? "" : " WRONG"}`;
      })
      .join(", ");
    const tunedEnv = { ...base, OPENBLAS_CORETYPE: chosen };
    return {
      tuned: {
        label: "torch tuned",
        env: tunedEnv,
        describe:
          `torch ${py.torch} (${py.python}), OPENBLAS_CORETYPE=${chosen ?? "(unset)"} [best of ${rounds} torch.mm 1024^3 probes, 2 threads: ${probeLine}], ` +
          `LD_LIBRARY_PATH=${tunedEnv.LD_LIBRARY_PATH ?? "(unset)"}, OMP_NUM_THREADS=2, torch.set_num_threads(2)`,
      },
      asInstalled: {
        label: "torch as installed",
        env: plainEnv(),
        describe: `torch ${py.torch} (${py.python}), no OPENBLAS_*/OMP_*/LD_LIBRARY_PATH variables, torch.set_num_threads(2)`,
      },
      probes,
    };
  })();
  return peerConfigCache;
}
