// The run lifecycle from the command line (spawning `node --import tsx src/cli/main.ts`): Ctrl-C (SIGINT) writes a
// checkpoint at the next step boundary and exits 130 printing the exact command that resumes; that command resumes
// (and SIGTERM does the same with 143); a second signal exits at once leaving only complete checkpoints; a folder
// holding another run is refused without --overwrite; --output naming a file gets a clear message; `nexus init`
// does not overwrite a model silently; every trainer says where it saved the model.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { createCausalLM, saveCausalLM } from "../src/models/index.js";
import { listCheckpoints, loadCheckpoint } from "../src/train/checkpoint.js";

const ROOT = join(import.meta.dirname, "..");
const CLI = ["--import", "tsx", "src/cli/main.ts"];
function nexus(...args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** Start a run, send `signals` once metrics.jsonl has `afterRecords` records, and collect its exit. */
function interrupted(args: string[], signals: NodeJS.Signals[], output: string, afterRecords: number) {
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT });
    let stderr = "";
    child.stderr.on("data", (c) => {
      stderr += String(c);
    });
    const metrics = join(output, "metrics.jsonl");
    const started = Date.now();
    const poll = setInterval(() => {
      const n = existsSync(metrics) ? readFileSync(metrics, "utf8").split("\n").filter(Boolean).length : 0;
      if (n >= afterRecords) {
        clearInterval(poll);
        for (const s of signals) child.kill(s);
      } else if (Date.now() - started > 60_000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        reject(new Error(`no ${afterRecords} metrics records within 60 s: ${stderr}`));
      }
    }, 20);
    child.on("exit", (code) => {
      clearInterval(poll);
      resolve({ code, stderr });
    });
  });
}

let dir = "";
let modelDir = "";
let data = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-cli-life-"));
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
  data = join(dir, "sft.jsonl");
  writeFileSync(data, `${["ab=", "cd=", "ef=", "gh="].map((p) => JSON.stringify({ prompt: p, completion: "x" })).join("\n")}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("nexus <trainer>: interruptions", () => {
  test("SIGINT writes a checkpoint and prints the resume command; that command resumes; SIGTERM exits 143", async () => {
    const out = join(dir, "run-int");
    const args = ["sft", "--model", modelDir, "--data", data, "--output", out, "--max-steps", "100000", "--logging-steps", "1"];
    const first = await interrupted(args, ["SIGINT"], out, 3);
    assert.equal(first.code, 130, first.stderr);
    assert.match(first.stderr, /SIGINT: stopping after the current step and writing a checkpoint/);
    const m = /stopped after step (\d+) \(checkpoint: (.*)\)\. To resume:\n {2}(.*)\n/.exec(first.stderr);
    assert.ok(m, first.stderr);
    const step = Number(m[1]);
    assert.equal(m[2], join(out, `checkpoint-${step}`));
    assert.deepEqual(listCheckpoints(out), [step], "the default --save-steps 0 still checkpointed at the interruption");
    assert.equal(loadCheckpoint(m[2]).state.step, step);
    assert.equal(m[3], `nexus ${args.join(" ")} --resume`);
    const again = await interrupted([...m[3].split(" ").slice(1)], ["SIGTERM"], out, step + 2);
    assert.equal(again.code, 143, again.stderr);
    assert.match(again.stderr, new RegExp(`resumed from .*checkpoint-${step} at step ${step}\\n`));
    const later = listCheckpoints(out);
    assert.deepEqual(later.slice(0, 1), [step], "the first run's checkpoint is kept (saveTotalLimit 2)");
    assert.ok(later.length === 2 && later[1] > step, `${later} after ${step}`);
  });

  test("a second signal exits at once; whatever is on disk is complete", async () => {
    const out = join(dir, "run-twice");
    const args = ["sft", "--model", modelDir, "--data", data, "--output", out, "--max-steps", "100000", "--save-steps", "1"];
    const r = await interrupted(args, ["SIGINT", "SIGINT"], out, 2);
    assert.equal(r.code, 130, r.stderr);
    for (const s of listCheckpoints(out)) assert.equal(loadCheckpoint(join(out, `checkpoint-${s}`)).state.step, s);
  });
});

describe("nexus <trainer>: output folders", () => {
  test("another run's folder is refused without --overwrite; --overwrite replaces it; a file path is named", () => {
    const out = join(dir, "run-reuse");
    const args = ["sft", "--model", modelDir, "--data", data, "--output", out, "--max-steps", "2"];
    const a = nexus(...args);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, new RegExp(`\\[sft\\] saved the trained model to ${out}`));
    const b = nexus(...args);
    assert.equal(b.code, 1);
    assert.match(
      b.stderr,
      /already holds another run \(checkpoint-2, metrics\.jsonl, model\.safetensors\): pass --resume to continue it, --overwrite/,
    );
    const c = nexus(...args.slice(0, -1), "3", "--overwrite", "--save-steps", "1", "--save-total-limit", "5");
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(listCheckpoints(out), [1, 2, 3]);
    const f = nexus("sft", "--model", modelDir, "--data", data, "--output", data);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /--output .*sft\.jsonl is a file, not a folder/);
    assert.doesNotMatch(f.stderr, /EEXIST/);
    const self = nexus("sft", "--model", modelDir, "--data", data, "--output", modelDir, "--overwrite");
    assert.equal(self.code, 1);
    assert.match(self.stderr, /--overwrite would clear .*model, which holds .*model that this run reads/);
  });

  test("nexus init refuses a folder holding a model unless --overwrite", () => {
    const out = join(dir, "init");
    assert.equal(nexus("init", "--preset", "tiny", "--output", out).code, 0);
    const before = readFileSync(join(out, "model.safetensors"));
    const r = nexus("init", "--preset", "tiny", "--output", out, "--seed", "5");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[init\] .*init already holds a model or run \(model\.safetensors\): pass --overwrite to replace it/);
    assert.doesNotMatch(r.stderr, /--resume/, "init cannot resume: the message does not offer it");
    assert.ok(readFileSync(join(out, "model.safetensors")).equals(before), "the model was not touched");
    assert.equal(nexus("init", "--preset", "tiny", "--output", out, "--seed", "5", "--overwrite").code, 0);
    assert.ok(!readFileSync(join(out, "model.safetensors")).equals(before));
  });
});
