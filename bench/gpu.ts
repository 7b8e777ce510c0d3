// The GPU bench (`npm run bench -- --only gpu`): W2 = SmolLM2-135M's shape (vocab 49152, d 576, 30 layers, 9 heads / 3 KV
// heads, ffn 1536, tied embeddings), random weights, on the cuda backend with precision bf16 (fp32 master weights and
// optimizer state, bf16 matmuls and attention): an SFT step (B 8 x T 512, mean token cross-entropy, backward, AdamW)
// and a DPO step (8 pairs x 512, sigmoid loss beta 0.1, a frozen reference forward), their peak device memory and MFU
// (6 x params x tokens / s over the GPU's dense bf16 peak), against PyTorch + transformers (sdpa) eager and
// torch.compile in the same run (bench/peers/gpu_torch.py). Without a GPU it says why and emits no rows.

import { cudaDeviceInfo, cudaSynchronize, cudaUnavailableReason } from "../src/backend/cuda.js";
import { backendName, setBackend, setPrecision } from "../src/backend/index.js";
import { alignedTokenLogprobs } from "../src/data/batch.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { dpoLoss } from "../src/losses/dpo.js";
import { type CausalLM, createCausalLM } from "../src/models/causal_lm.js";
import { AdamW } from "../src/nn/optim.js";
import {
  crossEntropy,
  fromArray,
  maskedSum,
  memoryStats,
  noGrad,
  resetPeakMemoryStats,
  scope,
  slice,
  type Tensor,
} from "../src/tensor/index.js";
import { frozenCopy } from "../src/train/dpo.js";
import { type BenchOptions, type BenchRow, median, row, runPeer } from "./common.js";

export const W2 = { vocab: 49152, hidden: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, batch: 8, seq: 512, pairs: 8, prompt: 128 };

/** Dense bf16 tensor-core peak (FLOP/s) by GPU name, from the vendors' datasheets; null when unknown. */
export function bf16Peak(name: string): number | null {
  const n = name.toUpperCase();
  if (n.includes("H100") || n.includes("H200") || n.includes("GH200")) return n.includes("PCIE") ? 756e12 : 989e12;
  if (n.includes("A100")) return 312e12;
  if (n.includes("L40S")) return 362e12;
  if (n.includes("A10G") || n.includes(" A10")) return 125e12;
  return null;
}

function w2Config() {
  return parseHfConfig({
    model_type: "llama",
    vocab_size: W2.vocab,
    hidden_size: W2.hidden,
    intermediate_size: W2.ffn,
    num_hidden_layers: W2.layers,
    num_attention_heads: W2.heads,
    num_key_value_heads: W2.kvHeads,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    initializer_range: 0.02,
  });
}

/** xorshift32 tokens, the stream of bench/peers/gpu_torch.py: [rows, t]. */
function tokens(rows: number, t: number, v: number): Int32Array {
  const out = new Int32Array(rows * t);
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

interface Measured {
  stepS: number;
  peakMiB: number;
  losses: number[];
}

/** warmup + timed steps (each ends with loss.item(), which waits for the GPU); peak memory over the timed ones. */
function measure(step: () => number, warmup: number, steps: number, say: (m: string) => void, label: string): Measured {
  const losses: number[] = [];
  for (let i = 0; i < warmup; i++) losses.push(step());
  cudaSynchronize();
  resetPeakMemoryStats();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(step());
    times.push((performance.now() - t0) / 1000);
  }
  const peakMiB = memoryStats().peakAllocated / 2 ** 20;
  say(
    `nexus ${label}: median ${median(times).toFixed(4)} s over ${steps} steps, peak ${peakMiB.toFixed(0)} MiB; losses ${losses
      .slice(0, 3)
      .map((x) => x.toFixed(4))
      .join(" ")}`,
  );
  return { stepS: median(times), peakMiB, losses };
}

function sftStep(model: CausalLM, opt: AdamW, ids: Tensor, targets: Tensor): number {
  return scope(() => {
    const { logits } = model.forward({ inputIds: ids });
    const loss = crossEntropy(slice(logits, 1, 0, W2.seq - 1), targets); // (B, T-1, V) vs next tokens
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
}

function dpoStep(model: CausalLM, ref: CausalLM, opt: AdamW, seq: Tensor, mask: Tensor): number {
  const b = W2.pairs;
  return scope(() => {
    const logps = (m: CausalLM) => maskedSum(alignedTokenLogprobs(m.forward({ inputIds: seq }).logits, seq), mask, 1); // (2B)
    const rl = noGrad(() => logps(ref));
    const pl = logps(model);
    const { loss } = dpoLoss(
      {
        policyChosenLogps: slice(pl, 0, 0, b),
        policyRejectedLogps: slice(pl, 0, b, 2 * b),
        refChosenLogps: slice(rl, 0, 0, b),
        refRejectedLogps: slice(rl, 0, b, 2 * b),
      },
      { lossType: "sigmoid", beta: 0.1 },
    );
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
}

interface PeerSide {
  step_s: number;
  tokens_per_s?: number;
  pairs_per_s?: number;
  peak_mib: number;
  first_step_s?: number;
}
interface PeerOut {
  error?: string;
  torch: string;
  transformers: string;
  gpu: string;
  config: string;
  params: number;
  sft_eager?: PeerSide;
  sft_compiled?: PeerSide;
  dpo_eager?: PeerSide;
  sft_eager_error?: string;
  sft_compiled_error?: string;
  dpo_eager_error?: string;
}

export async function benchGpu(opts: BenchOptions): Promise<BenchRow[]> {
  const info = cudaDeviceInfo();
  if (info === null) {
    opts.note(`gpu: skipped, no rows (cuda backend unavailable: ${cudaUnavailableReason()})`);
    return [];
  }
  const warmup = opts.quick ? 2 : 3;
  const steps = opts.quick ? 5 : 10;
  const prev = backendName();
  setBackend("cuda");
  setPrecision("bf16");
  const rows: BenchRow[] = [];
  try {
    opts.note(
      `gpu: ${info.name} (sm_${info.computeCapability.replace(".", "")}, ${(info.totalBytes / 2 ** 30).toFixed(1)} GiB, driver ${info.driverVersion}, ` +
        `runtime ${info.runtimeVersion}, ${info.cublasLt}); W2 ${JSON.stringify(W2)}; precision bf16; warmup ${warmup}, median of ${steps}`,
    );
    // ---- Nexus SFT ----
    const model = createCausalLM(w2Config(), { seed: 0 });
    const params = model.numParameters();
    const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const ids = tokens(W2.batch, W2.seq, W2.vocab);
    const tgt = new Int32Array(W2.batch * (W2.seq - 1));
    for (let r = 0; r < W2.batch; r++) tgt.set(ids.subarray(r * W2.seq + 1, (r + 1) * W2.seq), r * (W2.seq - 1));
    const idsT = fromArray(ids, [W2.batch, W2.seq]);
    const tgtT = fromArray(tgt, [W2.batch, W2.seq - 1]);
    const sft = measure(() => sftStep(model, opt, idsT, tgtT), warmup, steps, opts.note, "sft_step");
    // ---- Nexus DPO ----
    const ref = frozenCopy(model);
    const seq = tokens(2 * W2.pairs, W2.seq, W2.vocab);
    for (let r = 0; r < W2.pairs; r++) seq.copyWithin((W2.pairs + r) * W2.seq, r * W2.seq, r * W2.seq + W2.prompt); // shared prompts
    const mask = new Float32Array(2 * W2.pairs * W2.seq);
    for (let r = 0; r < 2 * W2.pairs; r++) mask.fill(1, r * W2.seq + W2.prompt, (r + 1) * W2.seq); // completion tokens
    const seqT = fromArray(seq, [2 * W2.pairs, W2.seq]);
    const maskT = fromArray(mask, [2 * W2.pairs, W2.seq]);
    const dpo = measure(() => dpoStep(model, ref, opt, seqT, maskT), warmup, steps, opts.note, "dpo_step");
    opts.detail("nexus", { params, sft, dpo, gpu: info });

    // ---- PyTorch peers ----
    const r = await runPeer<PeerOut>("gpu_torch.py", ["--steps", String(steps), "--warmup", String(warmup)], {}, 20 * 60_000);
    let peer: PeerOut | null = null;
    if (!r.ok) opts.note(`peer: failed (${r.reason})`);
    else if (r.data.error) opts.note(`peer: not run (${r.data.error})`);
    else {
      peer = r.data;
      opts.detail("peer", peer);
      opts.note(`peer: PyTorch ${peer.torch}, transformers ${peer.transformers}, ${peer.config}; ${peer.params} params (nexus ${params})`);
      for (const e of [peer.sft_eager_error, peer.sft_compiled_error, peer.dpo_eager_error]) if (e) opts.note(`peer: ${e}`);
      if (peer.sft_compiled?.first_step_s)
        opts.note(`peer: torch.compile first SFT step (compile) ${peer.sft_compiled.first_step_s.toFixed(1)} s`);
    }
    const tokensPerStep = W2.batch * W2.seq;
    const nexusTps = tokensPerStep / sft.stepS;
    rows.push(row("gpu", "sft_step", nexusTps, "tokens/s", peer?.sft_eager?.tokens_per_s ?? null));
    rows.push(row("gpu", "sft_step_compiled", nexusTps, "tokens/s", peer?.sft_compiled?.tokens_per_s ?? null));
    rows.push(row("gpu", "dpo_step", W2.pairs / dpo.stepS, "pairs/s", peer?.dpo_eager?.pairs_per_s ?? null));
    // memory: lower is better, so the ratio is Nexus / PyTorch as the issue asks (not the usual "times faster")
    const pm = peer?.sft_eager?.peak_mib ?? null;
    rows.push({ bench: "gpu", metric: "peak_memory_sft", value: sft.peakMiB, unit: "MiB", peer: pm, ratio: pm ? sft.peakMiB / pm : null });
    const pd = peer?.dpo_eager?.peak_mib ?? null;
    rows.push({ bench: "gpu", metric: "peak_memory_dpo", value: dpo.peakMiB, unit: "MiB", peer: pd, ratio: pd ? dpo.peakMiB / pd : null });
    const peak = bf16Peak(info.name);
    if (peak === null) opts.note(`MFU: no bf16 peak known for ${info.name}`);
    else {
      const mfu = (tps: number) => (100 * 6 * params * tps) / peak;
      opts.note(`MFU = 6 x ${params} params x tokens/s / ${(peak / 1e12).toFixed(0)} TFLOP/s (dense bf16 peak of ${info.name})`);
      rows.push(row("gpu", "mfu_sft", mfu(nexusTps), "%", peer?.sft_eager ? mfu(peer.sft_eager.tokens_per_s ?? 0) : null));
      rows.push(row("gpu", "mfu_sft_compiled", mfu(nexusTps), "%", peer?.sft_compiled ? mfu(peer.sft_compiled.tokens_per_s ?? 0) : null));
    }
  } finally {
    setPrecision("fp32");
    setBackend(prev);
  }
  return rows;
}
