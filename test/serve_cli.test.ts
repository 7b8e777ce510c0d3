// The real `nexus serve` command: spawned on port 0, it prints "listening on <url>", answers /v1/models and a
// completion with a preloaded --lora adapter, and exits 0 on SIGTERM. Bad flags fail fast. Loopback only.
// Not here: the API itself (serve_api.test.ts).

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadCausalLM } from "../src/models/causal_lm.js";
import { applyLora, saveLoraAdapter } from "../src/models/lora.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const CLI = ["--import", "tsx", path.join(ROOT, "src/cli/main.ts")];

function waitForUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no "listening on" line within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout?.on("data", (c) => {
      out += c;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr?.on("data", (c) => (err += c));
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nexus serve exited early (${code}): ${err}`));
    });
  });
}

test("nexus serve: listens, answers, exits 0 on SIGTERM", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-serve-cli-"));
  try {
    const modelDir = path.join(FIXTURES, "llama-tiny");
    const lora = applyLora(await loadCausalLM(modelDir), { r: 2 });
    saveLoraAdapter(lora, path.join(dir, "ad"));
    const args = [
      ...CLI,
      "serve",
      "--model",
      modelDir,
      "--tokenizer",
      path.join(FIXTURES, "tokenizer"),
      "--port",
      "0",
      "--served-model-name",
      "tiny",
    ];
    const child = spawn(process.execPath, [...args, "--lora", `ad=${path.join(dir, "ad")}`, "--quiet"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      const url = await waitForUrl(child, 20_000);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      assert.deepEqual(
        models.data.map((d) => d.id),
        ["tiny", "ad"],
      );
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "ad", prompt: [5, 6, 7], max_tokens: 3, temperature: 0, ignore_eos: true }),
      });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { choices: { token_ids: number[] }[] }).choices[0].token_ids.length, 3);
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("nexus serve: a malformed --lora fails with a message", () => {
  const r = spawnSync(process.execPath, [...CLI, "serve", "--model", "x", "--lora", "noequals"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--lora.*expected NAME=VALUE/);
});
