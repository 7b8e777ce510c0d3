// One W1 measurement in a process of its own, for benches that vary what must be fixed before the native addon loads
// (OMP_NUM_THREADS): warmup + median of steps of bench/w1.ts's step, printed as one JSON line. Not a bench by itself.
import { loadCpuAddon } from "../src/backend/cpu.js";
import { median } from "./common.js";
import { nexusW1, W1 } from "./w1.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const warmup = arg("--warmup", 1);
const steps = arg("--steps", 3);
const nx = nexusW1();
const times: number[] = [];
let cpu0 = process.cpuUsage();
for (let i = 0; i < warmup + steps; i++) {
  if (i === warmup) cpu0 = process.cpuUsage();
  const s = nx.step();
  if (i >= warmup) times.push(s.forward + s.backward + s.optimizer);
}
const cpu = process.cpuUsage(cpu0);
const step = median(times);
const addon = loadCpuAddon();
process.stdout.write(
  `${JSON.stringify({ tokens_per_s: (W1.batch * W1.seq) / step, step_s: step, threads: addon?.numThreads() ?? 1, simd: addon?.simdLevel ?? "none", cpu_s_per_step: (cpu.user + cpu.system) / 1e6 / steps })}\n`,
);
