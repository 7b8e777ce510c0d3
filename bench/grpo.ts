// GRPO step on W1's shape (vocab 2048, D 256, 4 layers, 8 heads, FFN 768): 8 prompts × G 8 completions of 128
// new tokens (no EOS, so every completion is full length), μ = 1, beta 0: generation tokens/s and update seconds,
// and peak memory (process maxRSS, each trainer in its own child process) of GRPO vs PPO (policy + value model +
// frozen reference, src/train/ppo.ts, one PPO epoch) on the same batch of 64 sequences. No peer: TRL needs a GPU
// stack this machine lacks; the PPO/GRPO memory ratio is the claim DESIGN.md's lab checks.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { namedReward } from "../src/rewards/types.js";
import { trainGrpo } from "../src/train/grpo.js";
import { type BenchOptions, type BenchRow, row } from "./common.js";
import { W1, w1Config } from "./w1.js";

const PROMPTS = 8;
const G = 8;
const PROMPT_LEN = 16;

/** A char tokenizer with exactly W1's vocab (2045 CJK characters after pad / eos / bos). */
function w1Tokenizer(): CharTokenizer {
  return new CharTokenizer(Array.from({ length: W1.vocab - 3 }, (_, i) => String.fromCharCode(0x4e00 + i)));
}

function promptRows(tok: CharTokenizer, n: number) {
  let x = 12345;
  const rnd = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x;
  };
  return Array.from({ length: n }, () => ({
    prompt: Array.from({ length: PROMPT_LEN }, () => tok.vocab[3 + (rnd() % (W1.vocab - 3))]).join(""),
  }));
}

/** A deterministic reward that varies between completions (so advantages are not all zero). */
const hashReward = namedReward("hash", (a) => a.completions.map((c) => (c.charCodeAt(0) + c.charCodeAt(c.length - 1)) % 7));

interface ChildResult {
  genSeconds: number;
  updateSeconds: number;
  completionTokens: number;
  baseRssMB: number;
  maxRssMB: number;
}

async function child(kind: "grpo" | "ppo", newTokens: number, prompts: number): Promise<ChildResult> {
  const tok = w1Tokenizer();
  const cfg = { ...w1Config(), eosTokenId: null, maxPositionEmbeddings: PROMPT_LEN + newTokens + 8 };
  const model = createCausalLM(cfg, { seed: 0 });
  const noEos = Object.create(tok, { eosTokenId: { value: null } }) as CharTokenizer;
  const baseRssMB = process.memoryUsage().rss / 2 ** 20;
  const t0 = performance.now();
  let tGen = t0;
  let completionTokens = 0;
  if (kind === "grpo") {
    await trainGrpo({
      model,
      tokenizer: noEos,
      data: promptRows(tok, prompts),
      rewardFuncs: [hashReward],
      config: {
        maxSteps: 1,
        numGenerations: G,
        perDeviceTrainBatchSize: prompts * G,
        maxCompletionLength: newTokens,
        maxPromptLength: null,
      },
      quiet: true,
      onBatch: (b) => {
        tGen = performance.now();
        completionTokens = b.rollout.completionIds.reduce((a, c) => a + c.length, 0);
      },
    });
  } else {
    const { trainPpo } = await import("../src/train/ppo.js");
    const rows = promptRows(tok, prompts).flatMap((r) => Array.from({ length: G }, () => r));
    completionTokens = rows.length * newTokens;
    await trainPpo({
      model,
      tokenizer: noEos,
      rows,
      rewardFuncs: [hashReward],
      config: {
        maxSteps: 1,
        perDeviceTrainBatchSize: rows.length,
        responseLength: newTokens,
        numPpoEpochs: 1,
        valueModelInit: "policy",
      } as never,
      quiet: true,
    });
    tGen = t0; // PPO's generation is not separated: updateSeconds is the whole step
  }
  const end = performance.now();
  return {
    genSeconds: (tGen - t0) / 1000,
    updateSeconds: (end - tGen) / 1000,
    completionTokens,
    baseRssMB,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

function runChild(kind: "grpo" | "ppo", newTokens: number, prompts: number): Promise<ChildResult | { error: string }> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", self, "--child", kind, String(newTokens), String(prompts)],
      { maxBuffer: 16 << 20, timeout: 30 * 60_000 },
      (err, stdout, stderr) => {
        if (err) return resolve({ error: (stderr || err.message).trim().split("\n").slice(-3).join(" | ") });
        resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as ChildResult);
      },
    );
  });
}

export async function benchGrpo(opts: BenchOptions): Promise<BenchRow[]> {
  const newTokens = opts.quick ? 32 : 128;
  const prompts = opts.quick ? 2 : PROMPTS;
  opts.note(
    `W1 shape, ${prompts} prompts x G ${G}, ${PROMPT_LEN}-token prompts, ${newTokens} new tokens, mu 1, beta 0; each trainer in a child process`,
  );
  const grpo = await runChild("grpo", newTokens, prompts);
  const ppo = await runChild("ppo", newTokens, prompts);
  opts.detail("grpo", grpo);
  opts.detail("ppo", ppo);
  const rows: BenchRow[] = [];
  if ("error" in grpo) {
    opts.note(`grpo child failed: ${grpo.error}`);
    return rows;
  }
  rows.push(row("grpo", "generation tokens/s", grpo.completionTokens / grpo.genSeconds, "tok/s"));
  rows.push(row("grpo", "update (forward+backward+AdamW)", grpo.updateSeconds, "s", null, "time"));
  rows.push(row("grpo", "peak RSS", grpo.maxRssMB, "MiB", null, "info"));
  if ("error" in ppo) opts.note(`ppo child failed: ${ppo.error}`);
  else {
    rows.push(row("grpo", "PPO peak RSS (policy+value+ref)", ppo.maxRssMB, "MiB", null, "info"));
    rows.push(row("grpo", "PPO step (gen+update)", ppo.updateSeconds, "s", null, "time"));
    // ratio > 1: GRPO needs that many times less memory than PPO on the same batch
    rows.push({ bench: "grpo", metric: "peak RSS PPO / GRPO", value: ppo.maxRssMB / grpo.maxRssMB, unit: "x", peer: null, ratio: null });
  }
  return rows;
}

if (process.argv[2] === "--child") {
  const kind = process.argv[3] as "grpo" | "ppo";
  child(kind, Number(process.argv[4]), Number(process.argv[5])).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
}
