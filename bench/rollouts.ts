// Rollouts bench: new tokens/s of generate() on the rollout engine (paged KV cache, continuous batching, packed
// weights, fused sampling) at the W1 model shape (bench/w1.ts), batch 32 x 128 new tokens after a 64-token prompt,
// temperature 1, eos off; against the same work in PyTorch (bench/peers/generation_torch.py) in the tuned peer
// environment, with its KV cache grown by torch.cat (HF DynamicCache) and preallocated (StaticCache, eager); the
// faster of the two is the peer. Rounds alternate Nexus and peer so a busy machine hits both alike.
// The GPU rows (generate, grpo_step, serve) need the cuda backend; without it the bench says why and emits none.
// NEXUS_PROFILE=1 adds a per-kernel breakdown of one Nexus run. Not a correctness test: random weights.

import { availableBackends, kernels } from "../src/backend/index.js";
import { generate } from "../src/generate/generate.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { type BenchOptions, type BenchRow, median, row, runPeer, torchPeerConfigs } from "./common.js";
import { W1, w1Config } from "./w1.js";

const CPU = { batch: 32, prompt: 64, newTokens: 128 } as const;

interface PeerOut {
  tokens_per_s: number;
  s_median: number;
  params: number;
}

function profileOnce(run: () => void, note: (m: string) => void): void {
  const table = kernels() as unknown as Record<string, unknown>;
  const originals = Object.entries(table).filter(([, f]) => typeof f === "function");
  const totals = new Map<string, number>();
  for (const [name, fn] of originals) {
    const f = fn as (...a: unknown[]) => unknown;
    table[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      const r = f(...args);
      const key = name === "linearPacked" || name === "matmul" ? `${name} ${(args.slice(3, 7) as number[]).join("x")}` : name;
      totals.set(key, (totals.get(key) ?? 0) + performance.now() - t0);
      return r;
    };
  }
  const t0 = performance.now();
  try {
    run();
  } finally {
    for (const [name, fn] of originals) table[name] = fn;
  }
  const all = performance.now() - t0;
  const inK = [...totals.values()].reduce((a, b) => a + b, 0);
  note(
    `profile (NEXUS_PROFILE=1): ${all.toFixed(0)} ms, ${inK.toFixed(0)} ms in kernels, ${(all - inK).toFixed(0)} ms outside (scheduling, JS)`,
  );
  for (const [k, ms] of [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    note(`  ${k.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms  ${((100 * ms) / all).toFixed(1)}%`);
  }
}

export async function benchRollouts(opts: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const gpu = (availableBackends() as string[]).includes("cuda");
  if (!gpu) {
    opts.note(
      "GPU rows (rollouts/generate, grpo_step, serve): skipped, no cuda backend on this machine (no GPU, or the cuda addon is not built)",
    );
  }

  const rounds = opts.quick ? 1 : 3;
  const { batch, prompt, newTokens } = CPU;
  opts.note(
    `cpu_generate_b${batch}: W1 shape (V ${W1.vocab}, D ${W1.hidden}, L ${W1.layers}, H ${W1.heads}/${W1.kvHeads}, F ${W1.ffn}), ` +
      `${batch} prompts x ${prompt} tokens, ${newTokens} new tokens each, temperature 1, eos off, fp32; backend ${kernels().name}; ` +
      `${rounds} rounds of (Nexus best of 2, peer best of 2)`,
  );
  const cfgs = await torchPeerConfigs(opts.quick);
  if ("reason" in cfgs) opts.note(`peer: skipped (${cfgs.reason})`);
  else opts.note(`peer: ${cfgs.tuned.describe}; PyTorch 1.13 is old (Debian's): no SDPA, no torch.compile on this CPU path`);
  // both sides use libgomp: the peer gets the OpenMP wait policy Nexus runs with (the cpu backend makes it passive
  // unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set); on a busy machine it is the peer's best too (static cache,
  // 32 new tokens: 137 new tokens/s with libgomp's default, 762 passive)
  const waitPolicy = {
    ...(process.env.OMP_WAIT_POLICY !== undefined ? { OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY } : {}),
    ...(process.env.GOMP_SPINCOUNT !== undefined ? { GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT } : {}),
  };
  opts.note(`OpenMP wait policy, both sides: ${JSON.stringify(waitPolicy)}`);

  const model = createCausalLM({ ...w1Config(), maxPositionEmbeddings: prompt + newTokens, eosTokenId: null }, { seed: 0 });
  const rng = new Rng(1);
  const prompts = Array.from({ length: batch }, () => Array.from({ length: prompt }, () => rng.int(W1.vocab)));
  const run = () => generate(model, prompts, { maxNewTokens: newTokens, temperature: 1, eosTokenId: null, seed: 2 });
  run(); // warm-up: JIT, thread pool, allocation
  const peerArgs = (cache: string) => [
    "--mode",
    "generate",
    "--batch",
    String(batch),
    "--prompt",
    String(prompt),
    "--new",
    String(newTokens),
    "--vocab",
    String(W1.vocab),
    "--hidden",
    String(W1.hidden),
    "--layers",
    String(W1.layers),
    "--heads",
    String(W1.heads),
    "--kv-heads",
    String(W1.kvHeads),
    "--ffn",
    String(W1.ffn),
    "--threads",
    "2",
    "--reps",
    "2",
    "--warmup",
    "1",
    "--cache",
    cache,
  ];
  const nexus: number[] = [];
  const peers: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      const out = run();
      best = Math.min(best, (performance.now() - t0) / 1000);
      if (out.some((g) => g.completionIds.length !== newTokens)) throw new Error("a row stopped early: eos must be off");
    }
    nexus.push((batch * newTokens) / best);
    let peer: number | null = null;
    if (!("reason" in cfgs)) {
      for (const cache of ["dynamic", "static"]) {
        const p = await runPeer<PeerOut>("generation_torch.py", peerArgs(cache), { ...cfgs.tuned.env, ...waitPolicy });
        if (!p.ok) {
          opts.note(`peer (${cache} cache) failed: ${p.reason}`);
          continue;
        }
        if (p.data.params !== model.numParameters())
          opts.note(`WARNING: parameter counts differ: nexus ${model.numParameters()}, torch ${p.data.params}`);
        opts.detail(`torch ${cache} round ${r + 1}`, p.data);
        opts.note(`round ${r + 1}: torch ${cache} cache ${p.data.tokens_per_s.toFixed(0)} new tokens/s`);
        peer = Math.max(peer ?? 0, p.data.tokens_per_s);
      }
    }
    if (peer !== null) peers.push(peer);
    opts.note(
      `round ${r + 1}: nexus ${nexus[r].toFixed(0)} new tokens/s` +
        (peer !== null ? `, torch best ${peer.toFixed(0)}: ${(nexus[r] / peer).toFixed(2)}x` : ""),
    );
  }
  opts.detail("nexus tokens/s per round", nexus);
  if (process.env.NEXUS_PROFILE === "1") profileOnce(run, opts.note);
  rows.push(row("rollouts", `cpu_generate_b${batch}`, median(nexus), "tokens/s", peers.length > 0 ? median(peers) : null));
  return rows;
}
