// What the run-lifecycle parts (kill_resume, nonfinite, disk, determinism) share: a tiny model and one small data
// file per trainer family written into the part's scratch folder, the `nexus` command line of each trainer, spawning
// the CLI (from source, through tsx), and comparing two runs' outputs byte for byte.
// Not here: any part's attempts or verdicts.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { createCausalLM, saveCausalLM } from "../src/models/index.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

export const TOK = new CharTokenizer("abcdefgh+=x \n", {
  chatTemplate: "{% for m in messages %}{{ m.role[0] }}:{{ m.content }} {% endfor %}{% if add_generation_prompt %}a:{% endif %}",
});

export interface Fixtures {
  model: string;
  sft: string;
  pairs: string;
  prompts: string;
  unpaired: string;
  stepwise: string;
}

/** A tiny Llama (D 16, 1 layer, 2 heads / 1 KV head) over TOK. */
export function tinyConfig() {
  return parseHfConfig({
    model_type: "llama",
    vocab_size: TOK.vocabSize,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    bos_token_id: TOK.bosTokenId,
    eos_token_id: TOK.eosTokenId,
    pad_token_id: TOK.padTokenId,
  });
}

const WORDS = ["abc", "bad", "cab", "dead", "face", "bed", "add", "fed", "hag", "gab", "ace", "head"];

/** A tiny Llama (D 16, 1 layer) with a char tokenizer, and one JSONL file per data format, under dir. */
export function writeFixtures(dir: string, seed = 0): Fixtures {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, "model");
  saveCausalLM(createCausalLM(tinyConfig(), { seed }), model);
  saveTokenizer(TOK, model);
  const jsonl = (name: string, rows: unknown[]) => {
    const path = join(dir, name);
    writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
    return path;
  };
  const rev = (w: string) => [...w].reverse().join("");
  return {
    model,
    sft: jsonl(
      "sft.jsonl",
      WORDS.map((w) => ({ prompt: `${w}=`, completion: rev(w) })),
    ),
    pairs: jsonl(
      "pairs.jsonl",
      WORDS.map((w, i) => ({ prompt: `${w}=`, chosen: rev(w), rejected: WORDS[(i + 3) % WORDS.length] })),
    ),
    prompts: jsonl(
      "prompts.jsonl",
      WORDS.map((w) => ({ prompt: `${w}=` })),
    ),
    unpaired: jsonl(
      "unpaired.jsonl",
      WORDS.map((w, i) => ({ prompt: `${w}=`, completion: i % 2 === 0 ? rev(w) : w, label: i % 2 === 0 })),
    ),
    stepwise: jsonl(
      "stepwise.jsonl",
      WORDS.map((w, i) => ({ prompt: `${w}=`, completions: [w, rev(w)], labels: [true, i % 3 !== 0] })),
    ),
  };
}

export type TrainerName = "sft" | "rm" | "prm" | "dpo" | "kto" | "orpo" | "cpo" | "grpo" | "rloo" | "ppo" | "online-dpo" | "spin";

/** The command line of a small run of each trainer writing into `output` (steps: optimizer steps). */
export function trainerArgs(name: TrainerName, f: Fixtures, output: string, steps: number): string[] {
  const common = ["--model", f.model, "--output", output, "--max-steps", String(steps), "--logging-steps", "1", "--seed", "3"];
  const groupRl = [
    ...["--data", f.prompts, "--reward-funcs", "length", "--num-generations", "2"],
    ...["--per-device-train-batch-size", "4", "--max-completion-length", "6", "--learning-rate", "1e-2"],
  ];
  const table: Record<TrainerName, string[]> = {
    sft: ["--data", f.sft, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    rm: ["--data", f.pairs, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    prm: ["--data", f.stepwise, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    dpo: ["--data", f.pairs, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    kto: ["--data", f.unpaired, "--per-device-train-batch-size", "4", "--learning-rate", "1e-2"],
    orpo: ["--data", f.pairs, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    cpo: ["--data", f.pairs, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2"],
    grpo: groupRl,
    rloo: groupRl,
    ppo: [
      "--data",
      f.prompts,
      "--reward-funcs",
      "length",
      "--max-completion-length",
      "6",
      "--per-device-train-batch-size",
      "2",
      "--learning-rate",
      "1e-2",
    ],
    "online-dpo": [
      "--data",
      f.prompts,
      "--reward-funcs",
      "length",
      "--max-completion-length",
      "6",
      "--per-device-train-batch-size",
      "2",
      "--learning-rate",
      "1e-2",
    ],
    spin: ["--data", f.sft, "--per-device-train-batch-size", "2", "--learning-rate", "1e-2", "--num-train-epochs", "2"],
  };
  return [name, ...common, ...table[name]];
}

export interface Spawned {
  child: ChildProcess;
  /** Resolves when the process exits: exit code (null when killed by a signal), stderr, wall seconds, and seconds
   * from its first WORKING line on stderr to the exit (about the time it worked, without start-up and loading). */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; seconds: number; workSeconds: number }>;
  /** Resolves at the first line on stderr that matches, or when the process exits. */
  waitFor(re: RegExp): Promise<boolean>;
}

/** A line of a run's own output: anything but the backend announcement (which comes before any work). */
export const WORKING = /^(?!\[nexus\] backend ).*\S/m;

/** Run `nexus <args>` from source (tsx), with extra environment variables. */
export function spawnNexus(args: readonly string[], env: Record<string, string> = {}): Spawned {
  const t0 = performance.now();
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  let firstOutput: number | null = null;
  const waiters: { re: RegExp; resolve: (hit: boolean) => void }[] = [];
  child.stderr?.on("data", (c) => {
    stderr += String(c);
    // work starts at the first line after the backend announcement (printed before any model is loaded)
    if (firstOutput === null && WORKING.test(stderr)) firstOutput = performance.now();
    for (const w of [...waiters]) {
      if (w.re.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(true);
      }
    }
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; seconds: number; workSeconds: number }>(
    (resolve) => {
      child.on("exit", (code, signal) => {
        for (const w of waiters.splice(0)) w.resolve(false);
        const now = performance.now();
        resolve({ code, signal, stderr, seconds: (now - t0) / 1000, workSeconds: (now - (firstOutput ?? t0)) / 1000 });
      });
    },
  );
  return {
    child,
    done,
    waitFor: (re) => (re.test(stderr) ? Promise.resolve(true) : new Promise((resolve) => waiters.push({ re, resolve }))),
  };
}

/** Run to completion. */
export async function runNexus(args: readonly string[], env: Record<string, string> = {}) {
  return spawnNexus(args, env).done;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const TIMING_KEYS = new Set(["elapsed_s", "step_time", "eps"]);

/** metrics.jsonl without wall-clock fields, one JSON text per record. */
export function metricsRecords(dir: string): string[] {
  const path = join(dir, "metrics.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => !TIMING_KEYS.has(k)))));
}

/** Weight files of an output folder, relative paths (final model, value model, newest checkpoint's state). */
export function resultFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else if (/\.safetensors$|trainer_state\.json$/.test(e.name)) out.push(r);
    }
  };
  walk("");
  return out.sort();
}

/** The first difference between two runs' outputs (weights, optimizer state, trainer state, metrics), or null. */
export function compareRuns(a: string, b: string): string | null {
  const fa = resultFiles(a);
  const fb = resultFiles(b);
  if (JSON.stringify(fa) !== JSON.stringify(fb)) return `files differ: [${fa.join(", ")}] vs [${fb.join(", ")}]`;
  for (const f of fa) {
    if (!readFileSync(join(a, f)).equals(readFileSync(join(b, f)))) return `${f} differs`;
  }
  const ma = metricsRecords(a);
  const mb = metricsRecords(b);
  if (ma.length !== mb.length) return `metrics.jsonl has ${mb.length} records, the reference ${ma.length}`;
  for (let i = 0; i < ma.length; i++) if (ma[i] !== mb[i]) return `metrics.jsonl record ${i + 1} differs: ${mb[i]} vs ${ma[i]}`;
  return null;
}
