// RemoteGenerator against an in-process `nexus serve` (llama-tiny fixture): the same ids, log-probs, finish reasons
// and text as local `generate` (greedy, seeded sampling, eos overrides, stop strings); makeGenerator local vs
// remote; and against small fake loopback servers: vLLM "token_id:" tokens, re-tokenizing fallback (warns),
// retries after 503 and refused connections, timeouts, and 400s surfaced with the URL. Loopback only, bounded.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type GenerateOptions, type Generation, generate } from "../src/generate/generate.js";
import { makeGenerator, RemoteGenerateError, RemoteGenerator } from "../src/generate/remote.js";
import { type HfTokenizer, loadTokenizer } from "../src/io/tokenizer.js";
import { type CausalLM, loadCausalLM } from "../src/models/causal_lm.js";
import { Rng } from "../src/nn/rng.js";
import { type ServerHandle, startServer } from "../src/serve/server.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const LOGPROB_TOL = 1e-5;

function fixtureDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-remote-"));
  for (const f of ["config.json", "model.safetensors"]) fs.copyFileSync(path.join(FIXTURES, "llama-tiny", f), path.join(dir, f));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(FIXTURES, "tokenizer", f), path.join(dir, f));
  return dir;
}

function prompts(lengths: readonly number[], seed = 1): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => 3 + rng.int(380)));
}

function assertSame(got: Generation[], want: Generation[], withText = true): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    assert.deepEqual(g.promptIds, want[i].promptIds);
    assert.deepEqual(g.completionIds, want[i].completionIds, `row ${i}`);
    assert.equal(g.finishReason, want[i].finishReason, `row ${i}`);
    if (withText) assert.equal(g.text, want[i].text);
    g.logprobs.forEach((x, t) => {
      assert.ok(Math.abs(x - want[i].logprobs[t]) <= LOGPROB_TOL, `row ${i} token ${t}: ${x} vs ${want[i].logprobs[t]}`);
    });
  });
}

/** A loopback server whose answers the test scripts; closed by the caller. */
async function fakeServer(handler: http.RequestListener): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

describe("RemoteGenerator against nexus serve", () => {
  let dir: string;
  let server: ServerHandle;
  let model: CausalLM;
  let tok: HfTokenizer;

  before(async () => {
    dir = fixtureDir();
    model = await loadCausalLM(dir);
    tok = loadTokenizer(dir);
    server = await startServer({ model: dir, port: 0 });
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("greedy and seeded sampling: identical ids, log-probs, finish reasons and text", async () => {
    const remote = new RemoteGenerator({ url: `${server.url}/v1` });
    const ps = prompts([5, 9, 3, 7], 3);
    const cases: GenerateOptions[] = [
      { maxNewTokens: 10, temperature: 0 },
      { maxNewTokens: 10, temperature: 0.8, topK: 30, seed: 4 },
      { maxNewTokens: 10, temperature: 1.2, topP: 0.9, minP: 0.01, seed: 9 },
      { maxNewTokens: 7, temperature: 1, seed: 1, eosTokenId: null },
      { maxNewTokens: 10, temperature: 0, eosTokenId: [model.config.eosTokenId as number, 80] },
    ];
    for (const o of cases) {
      const want = generate(model, ps, { ...o, tokenizer: tok });
      assertSame(await remote.generate(ps, o), want);
    }
    // an rng instead of a seed: the seed is drawn from it, so equal rng states give equal answers
    const a = await remote.generate(ps, { maxNewTokens: 6, temperature: 1, rng: new Rng(42) });
    const b = await remote.generate(ps, { maxNewTokens: 6, temperature: 1, rng: new Rng(42) });
    assert.deepEqual(
      a.map((g) => g.completionIds),
      b.map((g) => g.completionIds),
    );
  });

  test("stop strings: finishReason stop and the truncated text, as local", async () => {
    const remote = new RemoteGenerator({ url: server.url, model: server.servedModelName });
    const ps = prompts([6, 4], 8);
    const full = generate(model, ps, { maxNewTokens: 12, temperature: 0, eosTokenId: null, tokenizer: tok });
    const text = full[0].text as string;
    assert.ok(text.length >= 4);
    const o: GenerateOptions = { maxNewTokens: 12, temperature: 0, eosTokenId: null, stop: [text.slice(2, 4)] };
    const want = generate(model, ps, { ...o, tokenizer: tok });
    assert.equal(want[0].finishReason, "stop");
    assertSame(await remote.generate(ps, o), want);
  });

  test("makeGenerator: the local and the remote function give the same rollouts", async () => {
    const ps = prompts([4, 6], 12);
    const o: GenerateOptions = { maxNewTokens: 8, temperature: 0.7, seed: 3, tokenizer: tok };
    const localGen = makeGenerator({ model });
    const remoteGen = makeGenerator({ url: server.url });
    assertSame(await remoteGen(ps, o), await localGen(ps, o));
  });
});

describe("RemoteGenerator against fake servers", () => {
  const choice = {
    index: 0,
    text: "ab",
    finish_reason: "length",
    stop_reason: null,
    logprobs: { tokens: ["token_id:7", "token_id:9"], token_logprobs: [-0.5, -1.5] },
  };

  test("vLLM 'token_id:' tokens give the ids; the request carries ids, logprobs 1, sampling fields", async () => {
    let seen: Record<string, unknown> = {};
    const fake = await fakeServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        seen = JSON.parse(body);
        json(res, 200, { choices: [{ ...choice, stop_reason: null, finish_reason: "stop" }] });
      });
    });
    try {
      const remote = new RemoteGenerator({ url: fake.url, model: "m" });
      const [g] = await remote.generate([[1, 2, 3]], { maxNewTokens: 2, temperature: 0.5, topK: 5, seed: 7, eosTokenId: 4 });
      assert.deepEqual(g.completionIds, [7, 9]);
      assert.deepEqual(g.logprobs, [-0.5, -1.5]);
      assert.equal(g.finishReason, "eos");
      assert.deepEqual(seen.prompt, [[1, 2, 3]]);
      assert.equal(seen.model, "m");
      assert.equal(seen.logprobs, 1);
      assert.equal(seen.return_tokens_as_token_ids, true);
      assert.equal(seen.top_k, 5);
      assert.equal(seen.temperature, 0.5);
      assert.equal(seen.seed, 7);
      assert.deepEqual(seen.stop_token_ids, [4]);
      assert.equal(seen.ignore_eos, true);
    } finally {
      await fake.close();
    }
  });

  test("no ids in the answer: re-tokenizes with a tokenizer (warns once), else a clear error", async () => {
    const fake = await fakeServer((_req, res) =>
      json(res, 200, { choices: [{ ...choice, logprobs: { tokens: ["a", "b"], token_logprobs: [-0.5, -1.5] } }] }),
    );
    try {
      const warnings: string[] = [];
      const tokenizer = { encode: (t: string) => Array.from(t, (ch) => ch.charCodeAt(0)) };
      const remote = new RemoteGenerator({ url: fake.url, model: "m", tokenizer, warn: (m) => warnings.push(m) });
      const [g] = await remote.generate([[1]], { maxNewTokens: 2 });
      assert.deepEqual(g.completionIds, [97, 98]);
      await remote.generate([[1]], { maxNewTokens: 2 });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /re-tokeniz/);
      const strict = new RemoteGenerator({ url: fake.url, model: "m" });
      await assert.rejects(
        strict.generate([[1]], { maxNewTokens: 2 }),
        (e: Error) => e instanceof RemoteGenerateError && e.message.includes(fake.url),
      );
    } finally {
      await fake.close();
    }
  });

  test("retries 503 then succeeds; a refused port fails after bounded retries naming the URL", async () => {
    let n = 0;
    const fake = await fakeServer((_req, res) =>
      ++n <= 2 ? json(res, 503, { error: { message: "busy" } }) : json(res, 200, { choices: [choice] }),
    );
    try {
      const remote = new RemoteGenerator({ url: fake.url, model: "m", retryDelayMs: 5 });
      const [g] = await remote.generate([[1]], { maxNewTokens: 2 });
      assert.deepEqual(g.completionIds, [7, 9]);
      assert.equal(fake.hits(), 3);
    } finally {
      await fake.close();
    }
    // a port that was just free: connection refused
    const probe = await fakeServer((_req, res) => res.end());
    const deadUrl = probe.url;
    await probe.close();
    const dead = new RemoteGenerator({ url: deadUrl, model: "m", maxRetries: 2, retryDelayMs: 5 });
    const t0 = Date.now();
    await assert.rejects(
      dead.generate([[1]], { maxNewTokens: 2 }),
      (e: Error) => e instanceof RemoteGenerateError && e.message.includes(deadUrl) && /3 attempt/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5000);
  });

  test("a server that never answers times out; a 400 surfaces its message and the URL", async () => {
    const hang = await fakeServer(() => {});
    try {
      const remote = new RemoteGenerator({ url: hang.url, model: "m", timeoutMs: 200 });
      await assert.rejects(remote.generate([[1]], { maxNewTokens: 2 }), /timed out after 200 ms/);
    } finally {
      await hang.close();
    }
    const reject = await fakeServer((_req, res) =>
      json(res, 400, { error: { message: "[serve] temperature: must be >= 0", param: "temperature" } }),
    );
    try {
      const remote = new RemoteGenerator({ url: reject.url, model: "m" });
      await assert.rejects(
        remote.generate([[1]], { maxNewTokens: 2 }),
        (e: Error) => e.message.includes("400") && e.message.includes("temperature") && e.message.includes(reject.url),
      );
      assert.equal(reject.hits(), 1); // 4xx is not retried
    } finally {
      await reject.close();
    }
  });
});
