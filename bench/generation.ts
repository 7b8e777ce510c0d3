// Generation bench: new tokens/s of `generate` (KV cache, sampling at temperature 1, eos off so every row runs
// the full length) on the W1 model shape at batch 1 and batch 32 x 128 new tokens, and a teacher-forced forward
// (logits at every position, no grad) on the SmolLM2-135M shape at batch 4 x 256; each against the same work in
// PyTorch (bench/peers/generation_torch.py, 2 threads, the tuned peer environment of bench/common.ts).
// Not a correctness test; random weights on both sides.

import { kernels } from "../src/backend/index.js";
import { generate } from "../src/generate/generate.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { noGrad, Tensor } from "../src/tensor/index.js";
import { type BenchOptions, type BenchRow, row, runPeer, timeit, torchPeerConfigs } from "./common.js";

/** W1's decoder (bench/w1.ts) and SmolLM2-135M's, as model shapes. */
const SHAPES = Object.freeze({
  w1: { vocab: 2048, hidden: 256, layers: 4, heads: 8, kvHeads: 8, ffn: 768, tied: false, theta: 10000 },
  smollm135m: { vocab: 49152, hidden: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, tied: true, theta: 100000 },
});
type Shape = (typeof SHAPES)[keyof typeof SHAPES];

const PROMPT_LEN = 16;
const NEW_TOKENS = 128;
const FORWARD = { batch: 4, seq: 256 } as const;

function config(s: Shape, maxPos: number) {
  return parseHfConfig({
    model_type: "llama",
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.ffn,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    rms_norm_eps: 1e-5,
    rope_theta: s.theta,
    max_position_embeddings: maxPos,
    tie_word_embeddings: s.tied,
    eos_token_id: null,
  });
}

function peerArgs(s: Shape): string[] {
  return [
    "--vocab",
    String(s.vocab),
    "--hidden",
    String(s.hidden),
    "--layers",
    String(s.layers),
    "--heads",
    String(s.heads),
    "--kv-heads",
    String(s.kvHeads),
    "--ffn",
    String(s.ffn),
    "--theta",
    String(s.theta),
    ...(s.tied ? ["--tied"] : []),
    "--threads",
    "2",
  ];
}

interface PeerOut {
  tokens_per_s: number;
  s_median: number;
  params: number;
}

export async function benchGeneration(opts: BenchOptions): Promise<BenchRow[]> {
  const reps = opts.quick ? 1 : 3;
  const batches = [1, 32];
  opts.note(
    `generation: W1 shape (V 2048, D 256, L 4, H 8, F 768), prompt ${PROMPT_LEN} + ${NEW_TOKENS} new tokens, temperature 1, eos off, ` +
      `batch ${batches.join(" and ")}; forward: SmolLM2-135M shape, batch ${FORWARD.batch} x ${FORWARD.seq}; backend ${kernels().name}; median of ${reps}`,
  );
  const cfgs = await torchPeerConfigs(opts.quick);
  if ("reason" in cfgs) opts.note(`peer: skipped (${cfgs.reason})`);
  else opts.note(`peer: ${cfgs.tuned.describe}`);
  const peer = async (label: string, args: string[]): Promise<PeerOut | null> => {
    if ("reason" in cfgs) return null;
    const r = await runPeer<PeerOut>("generation_torch.py", [...args, "--reps", String(reps), "--warmup", "1"], cfgs.tuned.env);
    if (!r.ok) {
      opts.note(`${label} peer failed: ${r.reason}`);
      return null;
    }
    opts.detail(`torch ${label}`, r.data);
    return r.data;
  };
  const rows: BenchRow[] = [];

  // ---- generation, W1 shape ----
  const w1 = createCausalLM(config(SHAPES.w1, 1024), { seed: 0 });
  for (const b of batches) {
    const rng = new Rng(1);
    const prompts = Array.from({ length: b }, () => Array.from({ length: PROMPT_LEN }, () => rng.int(SHAPES.w1.vocab)));
    let produced = 0;
    const t = await timeit(
      () => {
        const out = generate(w1, prompts, { maxNewTokens: NEW_TOKENS, temperature: 1, eosTokenId: null, seed: 2 });
        produced = out.reduce((n, g) => n + g.completionIds.length, 0);
      },
      { warmup: 1, reps },
    );
    const tps = produced / t.median;
    const p = await peer(`generate b${b}`, [
      ...peerArgs(SHAPES.w1),
      "--mode",
      "generate",
      "--batch",
      String(b),
      "--prompt",
      String(PROMPT_LEN),
      "--new",
      String(NEW_TOKENS),
    ]);
    opts.note(
      `generate batch ${b}: nexus ${tps.toFixed(0)} new tokens/s (${t.median.toFixed(3)} s)` +
        (p ? `, torch ${p.tokens_per_s.toFixed(0)} (${p.s_median.toFixed(3)} s)` : ""),
    );
    opts.detail(`nexus generate b${b}`, { ...t, tokensPerS: tps });
    rows.push(row("generation", `w1_generate_b${b}_new_tokens_per_s`, tps, "tokens/s", p?.tokens_per_s ?? null));
  }

  // ---- teacher-forced forward, SmolLM2-135M shape ----
  const smol = createCausalLM(config(SHAPES.smollm135m, 2048), { seed: 0 });
  const rng = new Rng(3);
  const ids = new Tensor(
    Int32Array.from({ length: FORWARD.batch * FORWARD.seq }, () => rng.int(SHAPES.smollm135m.vocab)),
    [FORWARD.batch, FORWARD.seq],
  );
  const t = await timeit(() => noGrad(() => smol.forward({ inputIds: ids }).logits), { warmup: 1, reps });
  const tps = (FORWARD.batch * FORWARD.seq) / t.median;
  const p = await peer("forward smollm135m", [
    ...peerArgs(SHAPES.smollm135m),
    "--mode",
    "forward",
    "--batch",
    String(FORWARD.batch),
    "--prompt",
    String(FORWARD.seq),
  ]);
  if (p && p.params !== smol.numParameters())
    opts.note(`WARNING: parameter counts differ: nexus ${smol.numParameters()}, torch ${p.params}`);
  opts.note(
    `forward SmolLM2-135M shape: nexus ${tps.toFixed(0)} tokens/s (${t.median.toFixed(3)} s)` +
      (p ? `, torch ${p.tokens_per_s.toFixed(0)} (${p.s_median.toFixed(3)} s)` : ""),
  );
  opts.detail("nexus forward smollm135m", { ...t, tokensPerS: tps, params: smol.numParameters() });
  rows.push(row("generation", "smollm135m_forward_b4x256_tokens_per_s", tps, "tokens/s", p?.tokens_per_s ?? null));
  return rows;
}
