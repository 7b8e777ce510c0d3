// CPU thread scaling: the W1 training step (bench/w1.ts) with Nexus at N OpenMP threads against PyTorch at N threads
// (bench/peers/w1_torch.py --threads N), for N = 2, 8, 16 where the machine has that many cores (rows w1_2, w1_8,
// w1_16; ratio = Nexus / PyTorch). Each Nexus run is a child process, since OMP_NUM_THREADS is read when the addon loads.
import { execFile } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { BENCH_DIR, type BenchOptions, type BenchRow, row, runPeer, torchPeerConfigs } from "./common.js";

const THREADS = [2, 8, 16];

function nexusAt(threads: number, steps: number, warmup: number): Promise<{ tokens_per_s: number; threads: number } | { error: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(BENCH_DIR, "w1_child.ts"), "--steps", String(steps), "--warmup", String(warmup)],
      {
        env: { ...process.env, OMP_NUM_THREADS: String(threads), NEXUS_BACKEND: "cpu", NEXUS_QUIET: "1" },
        maxBuffer: 16 << 20,
        timeout: 30 * 60_000,
      },
      (err, stdout, stderr) => {
        if (err) return resolve({ error: (stderr || err.message).trim().split("\n").slice(-2).join(" | ") });
        try {
          resolve(JSON.parse(stdout.trim().split("\n").pop() ?? ""));
        } catch {
          resolve({ error: `no JSON from w1_child.ts: ${stdout.slice(-200)}` });
        }
      },
    );
  });
}

export async function benchCpuThreads(opts: BenchOptions): Promise<BenchRow[]> {
  const cores = cpus().length;
  const steps = opts.quick ? 3 : 10;
  const warmup = opts.quick ? 1 : 2;
  const cfgs = await torchPeerConfigs(opts.quick);
  if ("reason" in cfgs) opts.note(`peer: skipped (${cfgs.reason})`);
  const rows: BenchRow[] = [];
  for (const n of THREADS) {
    if (n > cores) {
      opts.note(`w1_${n}: skipped, this machine has ${cores} cores`);
      continue;
    }
    const nx = await nexusAt(n, steps, warmup);
    if ("error" in nx) {
      opts.note(`w1_${n}: nexus failed (${nx.error})`);
      continue;
    }
    let peer: number | null = null;
    if (!("reason" in cfgs)) {
      const env = { ...cfgs.tuned.env, OMP_NUM_THREADS: String(n), MKL_NUM_THREADS: String(n) };
      const r = await runPeer<{ tokens_per_s: number }>(
        "w1_torch.py",
        ["--steps", String(steps), "--warmup", "2", "--threads", String(n)],
        env,
      );
      if (r.ok) peer = r.data.tokens_per_s;
      else opts.note(`w1_${n}: peer failed (${r.reason})`);
    }
    opts.note(`w1_${n}: nexus ${nx.tokens_per_s.toFixed(0)} tokens/s at ${nx.threads} threads; torch ${peer?.toFixed(0) ?? "-"} tokens/s`);
    opts.detail(`w1_${n}`, { nexus: nx, peer });
    rows.push(row("cpu_threads", `w1_${n}`, nx.tokens_per_s, "tokens/s", peer));
  }
  return rows;
}
