// The trainer CLI end to end (spawning `node --import tsx src/cli/main.ts`): --help lists every option with
// its default, unknown flags and bad values are errors, a malformed JSONL row is reported as file:line and
// field, and --config (snake_case YAML) is overridden by flags, with the resolved config written out.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Command } from "commander";
import { z } from "zod";
import { registerTrainCommand, resolveTrainCommand } from "../src/cli/train_command.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { createCausalLM, saveCausalLM } from "../src/models/index.js";

const ROOT = join(import.meta.dirname, "..");
function nexus(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir = "";
let modelDir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-cli-"));
  modelDir = join(dir, "model");
  const tok = new CharTokenizer("abcdefgh+=x\n");
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    pad_token_id: 0,
  });
  saveCausalLM(createCausalLM(cfg, { seed: 0 }), modelDir);
  saveTokenizer(tok, modelDir);
  const lines = ["ab=", "cd=", "ef=", "gh="].map((p) => JSON.stringify({ prompt: p, completion: "x" }));
  writeFileSync(join(dir, "sft.jsonl"), `${lines.join("\n")}\n`);
  writeFileSync(join(dir, "bad.jsonl"), `${lines[0]}\n{"prompt": "ab", "completion": 5}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("nexus sft / rm / prm", () => {
  test("--help lists every option with its description and default", () => {
    const r = nexus("sft", "--help");
    assert.equal(r.code, 0);
    for (const needle of [
      "--config <file>",
      "--model <dir>",
      "--eval-data <file>",
      "--resume",
      "--learning-rate <value>",
      "(default: 0.00002)",
      "--max-length <value>",
      "(default: 1024)",
      "--completion-only-loss",
      "--no-completion-only-loss",
      "--lr-scheduler-type <value>",
      "[constant | constant_with_warmup | linear | cosine]",
      "--gradient-accumulation-steps <value>",
    ]) {
      assert.ok(r.stdout.includes(needle), `help lacks ${needle}`);
    }
    const rm = nexus("rm", "--help");
    assert.ok(rm.stdout.includes("--center-rewards-coefficient <value>") && rm.stdout.includes("(default: 0.0001)"));
    const prm = nexus("prm", "--help");
    assert.ok(prm.stdout.includes("--step-separator <value>") && prm.stdout.includes('(default: "\\n")'));
    assert.ok(prm.stdout.includes("--train-on-last-step-only"));
  });

  test("an unknown flag, a non-number and a bad choice are errors", () => {
    const a = nexus("sft", "--model", modelDir, "--data", "x", "--output", "y", "--learning-rat", "1");
    assert.notEqual(a.code, 0);
    assert.match(a.stderr, /unknown option '--learning-rat'/);
    const b = nexus("sft", "--learning-rate", "fast");
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /--learning-rate <value>' argument 'fast' is invalid. expected a number, got 'fast'/);
    const c = nexus("sft", "--lr-scheduler-type", "wavy");
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /'wavy' is not one of constant, constant_with_warmup, linear, cosine/);
  });

  test("a malformed JSONL row is reported with file:line and field", () => {
    const bad = join(dir, "bad.jsonl");
    const r = nexus("sft", "--model", modelDir, "--data", bad, "--output", join(dir, "out-bad"), "--max-steps", "1");
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${bad}:2`), r.stderr);
    assert.match(r.stderr, /completion/);
  });

  test("--config (snake_case YAML) with a flag overriding it; resolved config written to output and checkpoints", () => {
    const out = join(dir, "out");
    const cfgFile = join(dir, "sft.yaml");
    writeFileSync(cfgFile, "learning_rate: 0.01\nmax_steps: 2\nper_device_train_batch_size: 2\nlogging_steps: 1\nsave_steps: 1\n");
    const r = nexus("sft", "--config", cfgFile, "--model", modelDir, "--data", join(dir, "sft.jsonl"), "--output", out, "--max-steps", "3");
    assert.equal(r.code, 0, r.stderr);
    const resolved = JSON.parse(readFileSync(join(out, "training_config.json"), "utf8"));
    assert.equal(resolved.learningRate, 0.01);
    assert.equal(resolved.maxSteps, 3);
    assert.equal(resolved.perDeviceTrainBatchSize, 2);
    assert.equal(resolved.model, modelDir);
    assert.equal(resolved.precision, "fp32", "the global --precision lands in the trainer's config");
    const steps = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3]);
    const ck = JSON.parse(readFileSync(join(out, "checkpoint-3", "config.json"), "utf8"));
    assert.equal(ck.maxSteps, 3);
    assert.equal(ck.learningRate, 0.01);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) assert.ok(existsSync(join(out, f)), f);
  });

  test("--precision bf16: rejected on cpu with the reason, trains on a device backend (sim) and is recorded", () => {
    const args = ["sft", "--model", modelDir, "--data", join(dir, "sft.jsonl"), "--max-steps", "2", "--precision", "bf16"];
    const onCpu = nexus(...args, "--output", join(dir, "bf16-cpu"), "--backend", "cpu");
    assert.notEqual(onCpu.code, 0);
    assert.match(onCpu.stderr, /bf16 is not available on the 'cpu' backend: it multiplies in float32 only/);
    const out = join(dir, "bf16-sim");
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args, "--output", out], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, NEXUS_BACKEND: "sim" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(join(out, "training_config.json"), "utf8")).precision, "bf16");
    const losses = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).loss);
    assert.ok(losses.length > 0 && losses.every(Number.isFinite), `losses ${losses}`);
  });

  test("an unknown key in the config file is an error with a suggestion", () => {
    const cfgFile = join(dir, "typo.yaml");
    writeFileSync(cfgFile, "learning_rte: 0.01\n");
    const r = nexus("sft", "--config", cfgFile, "--model", modelDir, "--data", join(dir, "sft.jsonl"), "--output", join(dir, "o2"));
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`[sft] ${cfgFile}: unknown key 'learning_rte' (did you mean 'learning_rate'?)`), r.stderr);
  });
});

describe("registerTrainCommand (in process)", () => {
  const schema = z
    .object({
      alpha: z.number().default(0.5).describe("a number"),
      mode: z.enum(["x", "y"]).default("x").describe("a choice"),
      flag: z.boolean().default(true).describe("a flag"),
    })
    .strict();

  test("precedence: defaults < config file < flags; booleans negate; paths from the file", async () => {
    const cfgFile = join(dir, "p.json");
    writeFileSync(cfgFile, JSON.stringify({ alpha: 2, mode: "y", model: "m", data: "d", output_dir: "o" }));
    let got: unknown = null;
    const program = new Command("t").exitOverride();
    registerTrainCommand(program, { name: "go", description: "", schema, action: (ctx) => void (got = ctx) });
    await program.parseAsync(["go", "--config", cfgFile, "--alpha", "3", "--no-flag"], { from: "user" });
    const ctx = got as { config: unknown; model: string; output: string; tokenizer: string };
    assert.deepEqual(ctx.config, { alpha: 3, mode: "y", flag: false });
    assert.equal(ctx.model, "m");
    assert.equal(ctx.output, "o");
    assert.equal(ctx.tokenizer, "m");
  });

  test("missing paths are errors naming the flag", () => {
    assert.throws(() => resolveTrainCommand({ name: "go", schema }, { model: "m", data: "d" }), /--output is required/);
  });
});
