// W1: one fp32 training step of a small Llama-style decoder (vocab 2048, d 256, 4 layers, 8 heads / 8 KV heads,
// SwiGLU 768, untied head; batch 8 x 256 tokens): forward, mean token cross-entropy, backward, AdamW.
// Nexus tokens/s against the same step in PyTorch (bench/peers/w1_torch.py), tuned and as installed.
// NEXUS_PROFILE=1 adds a per-kernel time breakdown (wrapping the kernels() table, bench-only). --contention
// adds the same step with another process keeping one core busy, for both sides: the slowdown ratios.
// Not a correctness test: both sides print their losses only as a check that they do the same work.

import { loadCpuAddon, nativeKernelNames } from "../src/backend/cpu.js";
import { kernels } from "../src/backend/index.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { AdamW } from "../src/nn/optim.js";
import { backward, crossEntropy, Tensor } from "../src/tensor/index.js";
import { type BenchOptions, type BenchRow, median, row, runPeer, torchPeerConfigs } from "./common.js";
import { withCoreBusy } from "./contention.js";

export const W1 = { batch: 8, seq: 256, vocab: 2048, hidden: 256, layers: 4, heads: 8, kvHeads: 8, ffn: 768 } as const;
export const W1_OPTIM = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 };

/** The deterministic token stream shared with the peer (xorshift32 from a fixed seed): [b, t + 1]. */
export function w1Tokens(b: number, t: number, v: number): Int32Array {
  const out = new Int32Array(b * (t + 1));
  let x = 2463534242;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % v;
  }
  return out;
}

/** A W1 batch from the token stream: inputs are each row's first t tokens, labels the same row shifted by one ([b, t] each). */
export function w1Batch(b: number, t: number): { inputIds: Tensor; labels: Tensor } {
  const seq = w1Tokens(b, t, W1.vocab);
  const inputs = new Int32Array(b * t);
  const targets = new Int32Array(b * t);
  for (let r = 0; r < b; r++) {
    inputs.set(seq.subarray(r * (t + 1), r * (t + 1) + t), r * t);
    targets.set(seq.subarray(r * (t + 1) + 1, (r + 1) * (t + 1)), r * t);
  }
  return { inputIds: new Tensor(inputs, [b, t]), labels: new Tensor(targets, [b, t]) };
}

/** HF config.json of the W1 model (what a user would write), parsed the way checkpoints are. */
export function w1Config() {
  return parseHfConfig({
    model_type: "llama",
    vocab_size: W1.vocab,
    hidden_size: W1.hidden,
    intermediate_size: W1.ffn,
    num_hidden_layers: W1.layers,
    num_attention_heads: W1.heads,
    num_key_value_heads: W1.kvHeads,
    head_dim: W1.hidden / W1.heads,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: W1.seq,
    tie_word_embeddings: false,
    initializer_range: 0.02,
  });
}

type Phase = "forward" | "backward" | "optimizer";

/** Per-kernel timers around every method of the kernels() table; restore() puts the originals back. */
class KernelProfiler {
  phase: Phase = "forward";
  readonly totals = new Map<string, { s: number; calls: number; flops: number }>();
  private originals: [string, unknown][] = [];

  install(): void {
    const table = kernels() as unknown as Record<string, unknown>;
    for (const [name, fn] of Object.entries(table)) {
      if (typeof fn !== "function") continue;
      this.originals.push([name, fn]);
      const f = fn as (...a: unknown[]) => unknown;
      table[name] = (...args: unknown[]) => {
        const t0 = performance.now();
        const r = f(...args);
        const dt = (performance.now() - t0) / 1000;
        let key = `${this.phase} ${name}`;
        let flops = 0;
        if (name === "matmul") {
          // c, a, b, batch, m, n, k, transA, transB
          const [, , , batch, m, n, k, ta, tb] = args as number[];
          key += ` ${batch > 1 ? `${batch}x ` : ""}${m}x${n}x${k} ${ta ? "T" : "N"}${tb ? "T" : "N"}`;
          flops = 2 * batch * m * n * k;
        } else if (name === "unary" || name === "binary") key += ` ${args[0] as string}`;
        const e = this.totals.get(key) ?? { s: 0, calls: 0, flops: 0 };
        e.s += dt;
        e.calls++;
        e.flops += flops;
        this.totals.set(key, e);
        return r;
      };
    }
  }

  restore(): void {
    const table = kernels() as unknown as Record<string, unknown>;
    for (const [name, fn] of this.originals) table[name] = fn;
    this.originals = [];
  }
}

interface StepTimes {
  forward: number;
  backward: number;
  optimizer: number;
  loss: number;
}

/** The Nexus W1 model, optimizer and data; step() runs one timed training step. */
export function nexusW1() {
  const model = createCausalLM(w1Config(), { seed: 0 });
  const opt = new AdamW(model.parameters(), W1_OPTIM);
  const { batch: b, seq: t } = W1;
  const { inputIds, labels } = w1Batch(b, t);
  const step = (prof?: KernelProfiler): StepTimes => {
    if (prof) prof.phase = "forward";
    const t0 = performance.now();
    const { logits } = model.forward({ inputIds });
    const loss = crossEntropy(logits, labels);
    const t1 = performance.now();
    if (prof) prof.phase = "backward";
    backward(loss);
    const t2 = performance.now();
    if (prof) prof.phase = "optimizer";
    opt.step();
    opt.zeroGrad();
    const t3 = performance.now();
    return { forward: (t1 - t0) / 1000, backward: (t2 - t1) / 1000, optimizer: (t3 - t2) / 1000, loss: loss.item() };
  };
  return { step, params: model.numParameters() };
}

interface PeerOut {
  tokens_per_s: number;
  step_s_median: number;
  forward_s_median: number;
  backward_s_median: number;
  optimizer_s_median: number;
  losses: number[];
  params: number;
  config: Record<string, unknown>;
}

const f3 = (x: number) => x.toFixed(3);
const losses = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(" ");

export async function benchW1(opts: BenchOptions): Promise<BenchRow[]> {
  const envInt = (k: string) => (process.env[k] ? Number.parseInt(process.env[k] as string, 10) : undefined);
  const warmup = envInt("NEXUS_W1_WARMUP") ?? (opts.quick ? 1 : 2);
  const steps = envInt("NEXUS_W1_STEPS") ?? (opts.quick ? 2 : 20);
  const peerSteps = envInt("NEXUS_W1_PEER_STEPS") ?? (opts.quick ? 3 : 20);
  const tokens = W1.batch * W1.seq;
  opts.note(
    `W1: Llama decoder V=${W1.vocab} D=${W1.hidden} L=${W1.layers} H=${W1.heads}/${W1.kvHeads} F=${W1.ffn}, ` +
      `B=${W1.batch} T=${W1.seq} (${tokens} tokens/step), fp32, CE mean + backward + AdamW(lr 1e-3, wd 0.01); ` +
      `warmup ${warmup}, median of ${steps} steps (peer: ${peerSteps})`,
  );

  // ---- Nexus ----
  const k = kernels();
  const native = loadCpuAddon();
  opts.note(
    `nexus: backend ${k.name}` +
      (native ? ` (${native.simdLevel}, ${native.numThreads()} threads; native kernels: ${nativeKernelNames(native).join(", ")})` : ""),
  );
  if (k.name === "ref") opts.note("WARNING: the native backend is not loaded; this measures the TypeScript reference loops");
  const nx = nexusW1();
  const times: StepTimes[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const s = nx.step();
    times.push(s);
    opts.note(
      `nexus step ${i + 1}/${warmup + steps}${i < warmup ? " (warmup)" : ""}: ${f3(s.forward + s.backward + s.optimizer)} s ` +
        `(fwd ${f3(s.forward)}, bwd ${f3(s.backward)}, opt ${f3(s.optimizer)}), loss ${s.loss.toFixed(4)}`,
    );
  }
  const timed = times.slice(warmup);
  const total = timed.map((s) => s.forward + s.backward + s.optimizer);
  const stepS = median(total);
  const nexus = {
    tokensPerS: tokens / stepS,
    stepS,
    forward: median(timed.map((s) => s.forward)),
    backward: median(timed.map((s) => s.backward)),
    optimizer: median(timed.map((s) => s.optimizer)),
    losses: times.map((s) => s.loss),
  };
  opts.detail("nexus", { ...nexus, samples: total, params: nx.params });
  opts.note(`nexus: ${nexus.tokensPerS.toFixed(0)} tokens/s (step ${f3(stepS)} s); losses ${losses(nexus.losses)}`);

  if (process.env.NEXUS_PROFILE === "1") profile(nx.step, opts);

  // ---- PyTorch peer ----
  const peerArgs = ["--steps", String(peerSteps), "--warmup", "2", "--threads", "2"];
  let tuned: PeerOut | null = null;
  let installed: PeerOut | null = null;
  let bf16: PeerOut | null = null;
  const cfgs = await torchPeerConfigs(opts.quick);
  if ("reason" in cfgs) {
    opts.note(`peer: skipped (${cfgs.reason})`);
  } else {
    opts.detail("peer_probes", cfgs.probes);
    const run = async (label: string, env: Record<string, string | undefined>, extra: string[] = []) => {
      const r = await runPeer<PeerOut>("w1_torch.py", [...peerArgs, ...extra], env);
      if (!r.ok) {
        opts.note(`${label}: failed (${r.reason})`);
        return null;
      }
      const c = r.data.config;
      opts.note(
        `${label}: ${r.data.tokens_per_s.toFixed(0)} tokens/s (step ${f3(r.data.step_s_median)} s: fwd ${f3(r.data.forward_s_median)}, ` +
          `bwd ${f3(r.data.backward_s_median)}, opt ${f3(r.data.optimizer_s_median)}); BLAS ${String((c.blas_loaded as string[]).at(-1) ?? "?")} (${c.blas_corename ?? "?"} kernels), ` +
          `threads ${c.threads}; losses ${losses(r.data.losses)}`,
      );
      opts.detail(label, r.data);
      return r.data;
    };
    opts.note(`peer (tuned): ${cfgs.tuned.describe}`);
    tuned = await run("torch tuned fp32", cfgs.tuned.env);
    opts.note(`peer (as installed): ${cfgs.asInstalled.describe}`);
    installed = await run("torch as-installed fp32", cfgs.asInstalled.env);
    bf16 = await run("torch tuned bf16 autocast (information only, not W1's fp32)", cfgs.tuned.env, ["--bf16"]);
    if (tuned && tuned.params !== nx.params) opts.note(`WARNING: parameter counts differ: nexus ${nx.params}, torch ${tuned.params}`);
  }
  // the ratio is against the peer at its best: if the as-installed run beat the tuned one (a probe fooled by a
  // busy machine, or tuning that does not help here), the faster run is the reference
  let best = tuned;
  if (installed && (!tuned || installed.tokens_per_s > tuned.tokens_per_s)) {
    best = installed;
    if (tuned) opts.note("note: the as-installed peer was faster than the tuned one in this run; ratios use the as-installed run");
  }

  const busyRows: BenchRow[] = [];
  if (opts.contention) {
    // one core kept busy by another process: both sides' step time, each against its own quiet figure
    const stepS = (s: StepTimes) => s.forward + s.backward + s.optimizer;
    const busy = await withCoreBusy(() => median(Array.from({ length: steps }, () => stepS(nx.step()))));
    const quietAfter = median(Array.from({ length: steps }, () => stepS(nx.step())));
    const quiet = (nexus.stepS + quietAfter) / 2; // before and after: drift in the machine's own load cancels
    let peerSlow: number | null = null;
    let peerBusy: number | null = null;
    if (!("reason" in cfgs) && tuned) {
      const b = await withCoreBusy(() => runPeer<PeerOut>("w1_torch.py", peerArgs, cfgs.tuned.env));
      const q = await runPeer<PeerOut>("w1_torch.py", peerArgs, cfgs.tuned.env);
      if (b.ok && q.ok) {
        peerBusy = b.data.step_s_median;
        peerSlow = peerBusy / ((tuned.step_s_median + q.data.step_s_median) / 2);
      }
    }
    opts.note(
      `contention: one core busy: nexus step ${f3(busy)} s vs ${f3(quiet)} s quiet (${(busy / quiet).toFixed(2)}x)` +
        (peerSlow === null ? "; peer not measured" : `; torch tuned ${f3(peerBusy as number)} s (${peerSlow.toFixed(2)}x)`),
    );
    opts.detail("contention", { nexus: { busy, quietBefore: nexus.stepS, quietAfter }, torch: { busy: peerBusy, slowdown: peerSlow } });
    busyRows.push(
      row("w1", "step_s_one_core_busy", busy, "s", peerBusy, "time"),
      row("w1", "slowdown_one_core_busy", busy / quiet, "x", peerSlow, "time"),
    );
  }

  return [
    row("w1", "train_step", nexus.tokensPerS, "tokens/s", best?.tokens_per_s ?? null, "throughput"),
    row("w1", "step_s", nexus.stepS, "s", best?.step_s_median ?? null, "time"),
    row("w1", "forward_s", nexus.forward, "s", best?.forward_s_median ?? null, "time"),
    row("w1", "backward_s", nexus.backward, "s", best?.backward_s_median ?? null, "time"),
    row("w1", "optimizer_s", nexus.optimizer, "s", best?.optimizer_s_median ?? null, "time"),
    row("w1", "tokens_per_s_vs_torch_tuned", nexus.tokensPerS, "tokens/s", tuned?.tokens_per_s ?? null, "throughput"),
    row("w1", "tokens_per_s_vs_torch_as_installed", nexus.tokensPerS, "tokens/s", installed?.tokens_per_s ?? null, "throughput"),
    row("w1", "tokens_per_s_vs_torch_bf16_info", nexus.tokensPerS, "tokens/s", bf16?.tokens_per_s ?? null, "info"),
    row("w1", "initial_loss", nexus.losses[0], "nats", best?.losses[0] ?? null, "info"),
    ...busyRows,
  ];
}

/** Two profiled steps after the timed ones: time by phase and kernel, plus the time outside kernels. */
function profile(step: (p?: KernelProfiler) => StepTimes, opts: BenchOptions): void {
  const prof = new KernelProfiler();
  prof.install();
  const reps = 2;
  const phases = { forward: 0, backward: 0, optimizer: 0 };
  try {
    for (let i = 0; i < reps; i++) {
      const s = step(prof);
      phases.forward += s.forward / reps;
      phases.backward += s.backward / reps;
      phases.optimizer += s.optimizer / reps;
    }
  } finally {
    prof.restore();
  }
  const stepS = phases.forward + phases.backward + phases.optimizer;
  const entries = [...prof.totals.entries()].map(([key, e]) => ({ key, s: e.s / reps, calls: e.calls / reps, flops: e.flops / reps }));
  entries.sort((a, b) => b.s - a.s);
  const byKernel = new Map<string, number>();
  const inKernels = { forward: 0, backward: 0, optimizer: 0 };
  for (const e of entries) {
    const [phase, name] = e.key.split(" ");
    inKernels[phase as Phase] += e.s;
    byKernel.set(name, (byKernel.get(name) ?? 0) + e.s);
  }
  const pct = (x: number) => `${((100 * x) / stepS).toFixed(1)}%`;
  opts.note(`profile (NEXUS_PROFILE=1, mean of ${reps} steps, ${f3(stepS)} s/step with timers):`);
  for (const p of ["forward", "backward", "optimizer"] as Phase[]) {
    opts.note(
      `  ${p.padEnd(9)} ${f3(phases[p])} s (${pct(phases[p])}); in kernels ${f3(inKernels[p])} s, outside kernels ${f3(phases[p] - inKernels[p])} s`,
    );
  }
  opts.note("  by kernel (all phases):");
  for (const [name, s] of [...byKernel.entries()].sort((a, b) => b[1] - a[1])) {
    opts.note(`    ${name.padEnd(24)} ${f3(s)} s  ${pct(s)}`);
  }
  opts.note("  top kernel calls (phase kernel [shape]: s/step, calls/step):");
  for (const e of entries.slice(0, 30)) {
    const rate = e.flops > 0 ? `  ${(e.flops / e.s / 1e9).toFixed(0)} GFLOP/s` : "";
    opts.note(`    ${e.key.padEnd(48)} ${f3(e.s)} s  ${pct(e.s).padStart(6)}  x${e.calls}${rate}`);
  }
  const mm = entries.filter((e) => e.flops > 0);
  const mmS = mm.reduce((a, e) => a + e.s, 0);
  const mmF = mm.reduce((a, e) => a + e.flops, 0);
  opts.note(`  matmul overall: ${(mmF / 1e9).toFixed(1)} GFLOP/step in ${f3(mmS)} s = ${(mmF / mmS / 1e9).toFixed(0)} GFLOP/s`);
  opts.detail("profile", { phases, inKernels, entries });
}
