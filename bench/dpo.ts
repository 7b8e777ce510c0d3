// DPO step on W1's model (vocab 2048, d 256, 4 layers, 8 heads, SwiGLU 768, fp32): 8 pairs x 256 tokens (128
// shared prompt + 128 completion), policy forward over [chosen; rejected] (16 x 256), the frozen reference's
// forward, sigmoid DPO loss, backward, AdamW, through the trainer's own task (src/train/dpo.ts). Pairs/s
// against the same step in PyTorch (bench/peers/dpo_torch.py, W1's torch model) in the same run.
// Not a correctness test: both sides print their losses (ln 2 at step 1) only to show they do the same work.

import { kernels } from "../src/backend/index.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { AdamW } from "../src/nn/optim.js";
import { createDpoTask, createReference, resolveDpoTrainConfig } from "../src/train/dpo.js";
import type { PreferencePair } from "../src/train/preference_data.js";
import { type BenchOptions, type BenchRow, median, row, runPeer, torchPeerConfigs } from "./common.js";
import { W1, W1_OPTIM, w1Config, w1Tokens } from "./w1.js";

export const DPO_BENCH = { pairs: 8, seq: 256, prompt: 128 } as const;

/** The peer's pairs: rows 0..B-1 of the W1 stream are chosen, rows B..2B-1 rejected with the chosen prompt. */
function benchPairs(): PreferencePair[] {
  const { pairs: b, seq: t, prompt } = DPO_BENCH;
  const ids = w1Tokens(2 * b, t - 1, W1.vocab); // (2B, T)
  const rowIds = (r: number) => Array.from(ids.subarray(r * t, (r + 1) * t));
  return Array.from({ length: b }, (_, i) => {
    const c = rowIds(i);
    const r = rowIds(b + i);
    return {
      index: i,
      chosen: { promptIds: c.slice(0, prompt), completionIds: c.slice(prompt) },
      rejected: { promptIds: c.slice(0, prompt), completionIds: r.slice(prompt) },
    };
  });
}

interface PeerOut {
  pairs_per_s: number;
  step_s_median: number;
  forward_s_median: number;
  losses: number[];
  params: number;
  config: Record<string, unknown>;
}

export async function benchDpo(opts: BenchOptions): Promise<BenchRow[]> {
  const warmup = opts.quick ? 1 : 2;
  const steps = opts.quick ? 2 : 6;
  const { pairs: b, seq: t } = DPO_BENCH;
  opts.note(
    `DPO: W1 model (V=${W1.vocab} D=${W1.hidden} L=${W1.layers} H=${W1.heads} F=${W1.ffn}), ${b} pairs x ${t} tokens ` +
      `(prompt ${DPO_BENCH.prompt}), policy fwd 2B x T + reference fwd + sigmoid loss + backward + AdamW; ` +
      `warmup ${warmup}, median of ${steps} steps; backend ${kernels().name}`,
  );

  const model = createCausalLM(w1Config(), { seed: 0 });
  const config = resolveDpoTrainConfig({ maxLength: null });
  const task = createDpoTask({ policy: model, config, padId: 0, reference: createReference(model, 0) });
  const opt = new AdamW(model.parameters(), W1_OPTIM);
  const pairs = benchPairs();
  const samples: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    const { loss } = task.lossSum(pairs) as { loss: import("../src/tensor/index.js").Tensor };
    loss.div(b).backward();
    opt.step();
    opt.zeroGrad();
    const s = (performance.now() - t0) / 1000;
    losses.push(loss.item() / b);
    if (i >= warmup) samples.push(s);
    opts.note(
      `nexus step ${i + 1}/${warmup + steps}${i < warmup ? " (warmup)" : ""}: ${s.toFixed(3)} s, loss ${(loss.item() / b).toFixed(4)}`,
    );
  }
  const stepS = median(samples);
  const nexus = { pairsPerS: b / stepS, stepS, losses, samples };
  opts.detail("nexus", nexus);
  opts.note(`nexus: ${nexus.pairsPerS.toFixed(2)} pairs/s (step ${stepS.toFixed(3)} s)`);

  let peer: PeerOut | null = null;
  const cfgs = await torchPeerConfigs(opts.quick);
  if ("reason" in cfgs) opts.note(`peer: skipped (${cfgs.reason})`);
  else {
    opts.note(`peer (tuned): ${cfgs.tuned.describe}`);
    const r = await runPeer<PeerOut>(
      "dpo_torch.py",
      ["--steps", String(opts.quick ? 3 : 10), "--warmup", "2", "--threads", "2", "--pairs", String(b), "--seq", String(t)],
      cfgs.tuned.env,
    );
    if (!r.ok) opts.note(`peer: failed (${r.reason})`);
    else {
      peer = r.data;
      opts.detail("torch", r.data);
      opts.note(
        `torch: ${peer.pairs_per_s.toFixed(2)} pairs/s (step ${peer.step_s_median.toFixed(3)} s); losses ${peer.losses.map((x) => x.toFixed(4)).join(" ")}`,
      );
      if (peer.params !== model.numParameters())
        opts.note(`WARNING: parameter counts differ: nexus ${model.numParameters()}, torch ${peer.params}`);
    }
  }
  return [
    row("dpo", "pairs_per_s", nexus.pairsPerS, "pairs/s", peer?.pairs_per_s ?? null, "throughput"),
    row("dpo", "step_s", stepS, "s", peer?.step_s_median ?? null, "time"),
    row("dpo", "initial_loss", losses[0], "nats", peer?.losses[0] ?? null, "info"),
  ];
}
