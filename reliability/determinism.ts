// Part determinism (issue 13 item 6): same seed, same machine, same thread count: two runs of every trainer give
// bit-identical weights, optimizer state, trainer state and metrics (CPU backend, through the CLI). One attempt per
// trainer; in the full run a third run with OMP_NUM_THREADS=1 must match too (the native thread pool splits work so
// that no result depends on the thread count; test/native_pool.test.ts checks the threaded kernels at 1, 2 and 3).

import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { PartOptions, PartResult } from "./common.js";
import { compareRuns, runNexus, type TrainerName, trainerArgs, writeFixtures } from "./lifecycle_runs.js";

const ALL: TrainerName[] = ["sft", "rm", "prm", "dpo", "kto", "orpo", "cpo", "grpo", "rloo", "ppo", "online-dpo", "spin"];

export async function determinism(o: PartOptions): Promise<PartResult> {
  const f = writeFixtures(join(o.workDir, "fixtures"), o.seed);
  const trainers: TrainerName[] = o.quick ? ["sft", "grpo"] : ALL;
  let tried = 0;
  let held = 0;
  const failures: string[] = [];
  const acrossThreads: Record<string, string> = {};
  for (const t of trainers) {
    const run = async (name: string, env: Record<string, string> = {}) => {
      const out = join(o.workDir, t, name);
      const r = await runNexus(trainerArgs(t, f, out, 6), env);
      if (r.code !== 0) throw new Error(`[determinism] ${t} (${name}) failed: ${r.stderr.slice(-400)}`);
      return out;
    };
    const a = await run("a");
    const b = await run("b");
    const diff = compareRuns(a, b);
    tried++;
    if (diff === null) held++;
    else failures.push(`${t}: ${diff}`);
    if (!o.quick) {
      const one = await run("threads1", { OMP_NUM_THREADS: "1" });
      const d1 = compareRuns(a, one);
      acrossThreads[t] = d1 ?? "identical";
      tried++;
      if (d1 === null) held++;
      else failures.push(`${t} with 1 thread: ${d1}`);
    }
    o.note(
      `${t}: ${diff === null ? "bit-identical" : `DIFFERS: ${diff}`}${acrossThreads[t] ? `; 1 thread vs default: ${acrossThreads[t]}` : ""}`,
    );
  }
  return {
    part: "determinism",
    tried,
    held,
    failed: tried - held,
    detail: { cores: availableParallelism(), acrossThreads, failures: failures.slice(0, 10) },
  };
}
