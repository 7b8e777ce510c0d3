// What `nexus serve` checks before doing work: loopback-only binding without an API key, Bearer keys, adapter
// loading confined to --adapter-root (traversal, symlinks, absolute paths, count limit, no path leaks), body /
// prompt / rows x tokens limits checked before tokenizing, a bounded queue answered with 429 + Retry-After,
// /health during generation, and a disconnected client's generation cancelled. In-process, loopback only.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadCausalLM } from "../src/models/causal_lm.js";
import { applyLora, saveLoraAdapter } from "../src/models/lora.js";
import { bearerCheck, checkBindAddress, isLoopbackHost } from "../src/serve/guard.js";
import { type ServerHandle, startServer } from "../src/serve/server.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const MODEL = path.join(FIXTURES, "llama-tiny");
const TOK = path.join(FIXTURES, "tokenizer");

async function call(url: string, route: string, body: unknown, headers: Record<string, string> = {}) {
  const t0 = performance.now();
  const r = await fetch(`${url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json: { error?: { message: string; param: string | null }; choices?: unknown[] } = {};
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text, headers: r.headers, ms: performance.now() - t0 };
}

test("binding: loopback needs no key; any other address does", async () => {
  for (const h of ["127.0.0.1", "127.0.0.2", "::1", "localhost"]) assert.equal(await isLoopbackHost(h), true, h);
  for (const h of ["0.0.0.0", "::", "10.1.2.3", "192.168.0.1"]) assert.equal(await isLoopbackHost(h), false, h);
  await assert.rejects(checkBindAddress("0.0.0.0", undefined), /--host 0\.0\.0\.0 is not a loopback address: .*--api-key/);
  await checkBindAddress("0.0.0.0", "secret");
  await checkBindAddress("127.0.0.1", undefined);
  await assert.rejects(checkBindAddress("127.0.0.1", ""), /--api-key is empty/);
  // refused before the model is even loaded (the folder does not exist)
  await assert.rejects(startServer({ model: "/nonexistent", host: "0.0.0.0", port: 0 }), /not a loopback address/);
});

test("bearer keys: only the exact header passes", () => {
  const ok = bearerCheck("s3cret");
  assert.equal(ok("Bearer s3cret"), true);
  for (const h of [
    undefined,
    "",
    "Bearer",
    "Bearer ",
    "bearer s3cret",
    "Bearer s3cret ",
    "Bearer s3cre",
    "Basic s3cret",
    "s3cret",
    "Bearer s3cretx",
  ]) {
    assert.equal(ok(h), false, String(h));
  }
});

describe("a server with a key, an adapter root and small limits", () => {
  let dir: string;
  let root: string;
  let outside: string;
  let server: ServerHandle;
  const KEY = "k-123";
  const auth = { authorization: `Bearer ${KEY}` };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-guard-"));
    root = path.join(dir, "adapters");
    outside = path.join(dir, "outside");
    const lora = applyLora(await loadCausalLM(MODEL), { r: 2 });
    for (const name of ["a1", "a2", "a3"]) saveLoraAdapter(lora, path.join(root, name));
    saveLoraAdapter(lora, path.join(outside, "secret-adapter"));
    fs.symlinkSync(path.join(outside, "secret-adapter"), path.join(root, "link-out"));
    server = await startServer({
      model: MODEL,
      tokenizer: TOK,
      port: 0,
      apiKey: KEY,
      adapterRoot: root,
      maxBatch: 8,
      limits: { maxBodyBytes: 20_000, maxPromptChars: 2000, maxRequestTokens: 600, maxQueuedRequests: 3, maxLoras: 2 },
    });
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("/v1 routes need the key; /health does not", async () => {
    assert.equal((await call(server.url, "/v1/completions", { prompt: [1, 2] })).status, 401);
    assert.equal((await call(server.url, "/v1/completions", { prompt: [1, 2] }, { authorization: "Bearer nope" })).status, 401);
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 401);
    assert.equal((await call(server.url, "/v1/completions", { prompt: [1, 2], max_tokens: 2 }, auth)).status, 200);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  test("adapters load only from inside the root; traversal gets one message that reveals nothing", async () => {
    const load = (lora_name: string, lora_path: string) => call(server.url, "/v1/load_lora_adapter", { lora_name, lora_path }, auth);
    assert.equal((await load("a1", "a1")).status, 200);
    assert.equal((await load("a2", path.join(root, "a2"))).status, 200); // absolute, but inside
    const secret = path.join(outside, "secret-adapter");
    for (const p of ["../outside/secret-adapter", secret, "link-out", "a1/../../outside/secret-adapter", "/etc", "..", "", "a1\u0000"]) {
      const r = await load("x", p);
      assert.ok([400, 404].includes(r.status), `${p}: ${r.status}`);
      assert.equal(r.json.error?.param, "lora_path");
      const shown = p === "" ? r.text : r.text.split(p).join(""); // echoing what the client sent reveals nothing
      for (const leak of [dir, root, outside, fs.realpathSync(root)]) assert.ok(!shown.includes(leak), `${p} leaks ${leak}: ${r.text}`);
    }
    // the same answer whether the outside folder exists or not
    const a = await load("x", "../outside/secret-adapter");
    const b = await load("x", "../outside/no-such-folder");
    assert.equal(a.status, b.status);
    assert.equal(a.json.error?.message.replace("secret-adapter", "?"), b.json.error?.message.replace("no-such-folder", "?"));
    // a folder that is missing inside the root: 404; a broken adapter inside: its error shows <adapter-root>
    assert.equal((await load("x", "nope")).status, 404);
    assert.equal((await call(server.url, "/v1/unload_lora_adapter", { lora_name: "a2" }, auth)).status, 200);
    fs.mkdirSync(path.join(root, "broken"));
    fs.writeFileSync(path.join(root, "broken", "adapter_config.json"), "{");
    const broken = await load("x", "broken");
    assert.equal(broken.status, 400);
    assert.match(broken.text, /<adapter-root>\/broken\/adapter_config\.json: cannot read/);
    assert.equal((await load("a2", "a2")).status, 200);
    // names are plain; the count is limited
    assert.equal((await load("../x", "a3")).json.error?.param, "lora_name");
    const third = await load("a3", "a3");
    assert.equal(third.status, 400);
    assert.match(third.json.error?.message ?? "", /2 LoRA adapters are loaded \(the limit\)/);
    assert.equal((await call(server.url, "/v1/unload_lora_adapter", { lora_name: "a2" }, auth)).status, 200);
    assert.equal((await load("a3", "a3")).status, 200);
  });

  test("limits are checked before any work: body bytes, prompt characters, rows x tokens", async () => {
    const big = await call(server.url, "/v1/completions", { prompt: "x".repeat(30_000) }, auth);
    assert.equal(big.status, 413);
    const chars = await call(server.url, "/v1/completions", { prompt: "ab ".repeat(1000) }, auth);
    assert.equal(chars.status, 400);
    assert.match(chars.json.error?.message ?? "", /prompt: 3000 characters; the limit is 2000 \(checked before tokenizing\)/);
    const chat = await call(server.url, "/v1/chat/completions", { messages: [{ role: "user", content: "y".repeat(2500) }] }, auth);
    assert.equal(chat.json.error?.param, "messages");
    const tokens = await call(server.url, "/v1/completions", { prompt: [1, 2], n: 8, max_tokens: 100 }, auth);
    assert.equal(tokens.status, 400);
    assert.match(tokens.json.error?.message ?? "", /8 rows x 100 tokens = 800 generated tokens in one request; the limit is 600/);
    const utf8 = await call(server.url, "/v1/completions", Buffer.from([0x7b, 0xff, 0x7d]).toString("latin1"), auth);
    assert.equal(utf8.status, 400);
  });

  test("past the queue limit: 429 with Retry-After; /health stays fast while generating", async () => {
    const long = { prompt: [5, 6, 7], max_tokens: 250, ignore_eos: true };
    const running = Array.from({ length: 3 }, () => call(server.url, "/v1/completions", long, auth));
    for (let i = 0; i < 500 && server.inflight() < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(server.inflight(), 3, "the three long requests were never admitted together");
    const refused = await call(server.url, "/v1/completions", long, auth);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    const health: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      health.push(performance.now() - t0);
    }
    const done = await Promise.all(running);
    for (const r of done) assert.equal(r.status, 200);
    assert.ok(
      done.every((r) => r.ms > Math.max(...health)),
      `health ${health.map((h) => h.toFixed(0))} vs generation ${done.map((r) => r.ms.toFixed(0))}`,
    );
  });

  test("a client that disconnects cancels its generation", async () => {
    const body = JSON.stringify({ prompt: [5, 6, 7], n: 3, max_tokens: 200, ignore_eos: true });
    const full = await call(server.url, "/v1/completions", body, auth);
    assert.equal(full.status, 200);
    await new Promise<void>((resolve) => {
      const s = net.connect(server.port, "127.0.0.1", () => {
        s.write(
          `POST /v1/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        setTimeout(
          () => {
            s.destroy();
            resolve();
          },
          Math.min(100, full.ms / 5),
        );
      });
    });
    const t0 = performance.now();
    await server.engine.drain();
    const idleAfter = performance.now() - t0;
    assert.ok(
      idleAfter < full.ms / 2,
      `the engine went idle ${idleAfter.toFixed(0)} ms after the disconnect; the full generation takes ${full.ms.toFixed(0)} ms`,
    );
    assert.equal(server.inflight(), 0);
  });
});

test("runtime adapter loading is off without --adapter-root", async () => {
  const server = await startServer({ model: MODEL, tokenizer: TOK, port: 0 });
  try {
    const r = await call(server.url, "/v1/load_lora_adapter", { lora_name: "a", lora_path: "/tmp" });
    assert.equal(r.status, 403);
    assert.match(r.json.error?.message ?? "", /--adapter-root/);
  } finally {
    await server.close();
  }
});
