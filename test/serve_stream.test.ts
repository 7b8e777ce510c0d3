// `stream: true` against a real `nexus serve` (in-process, loopback, the llama-tiny fixture and its byte-level
// tokenizer): SSE framing and headers, [DONE], one finish per choice on its last chunk, n > 1 and several prompts
// indexed as the whole answer indexes them, include_usage, and streamed text / token ids / log-probs that
// concatenate to exactly the non-streamed answer (greedy and seeded, with and without stop strings; chat too).
// Errors before the stream are ordinary JSON 4xx; a failure after the headers is an error event then [DONE]; a
// client that aborts mid-stream cancels its generation (KV blocks back); close() (SIGTERM) lets a running stream
// finish.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type ServerHandle, startServer } from "../src/serve/server.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));

function fixtureDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-stream-"));
  for (const f of ["config.json", "model.safetensors", "generation_config.json"])
    fs.copyFileSync(path.join(FIXTURES, "llama-tiny", f), path.join(dir, f));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(FIXTURES, "tokenizer", f), path.join(dir, f));
  return dir;
}

type Json = Record<string, unknown>;
interface Choice {
  index: number;
  text?: string;
  delta?: { role?: string; content?: string };
  message?: { content: string };
  token_ids: number[];
  finish_reason: string | null;
  stop_reason: string | number | null;
  prompt_logprobs?: unknown[];
  prompt_token_ids?: number[];
  logprobs: {
    tokens: string[];
    token_logprobs: number[];
    top_logprobs: Record<string, number>[];
    text_offset: number[];
    content: unknown[];
  } | null;
}
interface Chunk {
  id: string;
  object: string;
  choices: Choice[];
  usage?: Json | null;
  error?: { message: string; code: number };
}

/** Rows may share a step with different rows (or none) in the two runs: float32 sums differ in the last bits. */
const BATCH_TOL = 1e-4;

/** Deep equality, numbers within BATCH_TOL (integers such as token bytes are thus still exact). */
function assertClose(got: unknown, want: unknown, where = "$"): void {
  if (typeof got === "number" && typeof want === "number") {
    assert.ok(Math.abs(got - want) <= BATCH_TOL, `${where}: ${got} vs ${want}`);
  } else if (Array.isArray(got) && Array.isArray(want)) {
    assert.equal(got.length, want.length, `${where}: length`);
    for (const [i, g] of got.entries()) assertClose(g, want[i], `${where}[${i}]`);
  } else if (got !== null && want !== null && typeof got === "object" && typeof want === "object") {
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${where}: keys`);
    for (const k of Object.keys(got)) assertClose((got as Json)[k], (want as Json)[k], `${where}.${k}`);
  } else assert.equal(got, want, where);
}

const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** POST and parse the SSE body, checking its framing: `data: <json>\n\n` blocks, the last one [DONE]. */
async function stream(url: string, route: string, body: Json): Promise<{ res: Response; chunks: Chunk[] }> {
  const res = await fetch(`${url}${route}`, json({ ...body, stream: true }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-cache");
  const raw = await res.text();
  assert.ok(raw.endsWith("data: [DONE]\n\n"), `no [DONE] at the end: ${JSON.stringify(raw.slice(-80))}`);
  const events = raw.slice(0, -2).split("\n\n");
  assert.equal(events.pop(), "data: [DONE]");
  const chunks = events.map((e) => {
    assert.match(e, /^data: \{[^\n]*\}$/, "one data line per event");
    return JSON.parse(e.slice(6)) as Chunk;
  });
  return { res, chunks };
}

async function whole(url: string, route: string, body: Json): Promise<{ choices: Choice[]; usage: Json }> {
  const r = await fetch(`${url}${route}`, json(body));
  assert.equal(r.status, 200);
  return (await r.json()) as { choices: Choice[]; usage: Json };
}

/**
 * Per choice index: its concatenated text, token ids and log-probs, and its finish (checked to be on its last
 * chunk). With `finals` (index → the whole answer's text), the text so far must be a prefix of it after every chunk.
 */
function collect(chunks: Chunk[], chat: boolean, finals?: Map<number, string>) {
  const by = new Map<
    number,
    {
      text: string;
      ids: number[];
      lp: number[];
      tokens: string[];
      offsets: number[];
      content: unknown[];
      finish: Choice | null;
      roles: number;
    }
  >();
  for (const c of chunks) {
    assert.equal(c.choices.length <= 1, true);
    for (const ch of c.choices) {
      let s = by.get(ch.index);
      if (s === undefined)
        by.set(ch.index, (s = { text: "", ids: [], lp: [], tokens: [], offsets: [], content: [], finish: null, roles: 0 }));
      assert.equal(s.finish, null, `choice ${ch.index} has a chunk after its finish`);
      if (chat) {
        if (ch.delta?.role !== undefined) {
          assert.equal(s.text + s.ids.length, "0", "the role comes first");
          assert.deepEqual(ch.delta, { role: "assistant", content: "" });
          s.roles++;
        } else s.text += ch.delta?.content ?? "";
      } else s.text += ch.text;
      s.ids.push(...(ch.token_ids ?? []));
      if (ch.logprobs !== null) {
        if (chat) s.content.push(...ch.logprobs.content);
        else {
          s.lp.push(...ch.logprobs.token_logprobs);
          s.tokens.push(...ch.logprobs.tokens);
          s.offsets.push(...ch.logprobs.text_offset);
        }
      }
      const final = finals?.get(ch.index);
      if (final !== undefined)
        assert.ok(final.startsWith(s.text), `choice ${ch.index} sent ${JSON.stringify(s.text)}, not a prefix of ${JSON.stringify(final)}`);
      if (ch.finish_reason !== null) {
        s.finish = ch;
        if (chat) assert.deepEqual(ch.delta, {}, "the finish chunk has an empty delta");
      }
    }
  }
  for (const [i, s] of by) assert.notEqual(s.finish, null, `choice ${i} never finished`);
  return by;
}

describe("nexus serve: stream: true", () => {
  let dir: string;
  let server: ServerHandle;

  before(async () => {
    dir = fixtureDir();
    server = await startServer({ model: dir, port: 0, servedModelName: "tiny", maxBatch: 16 });
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("completions: greedy, logprobs, prompt_logprobs; chunks concatenate to the whole answer", async () => {
    const body = { prompt: "Ünïcödé 🙂 text", max_tokens: 24, temperature: 0, ignore_eos: true, logprobs: 2, prompt_logprobs: 1 };
    const want = (await whole(server.url, "/v1/completions", body)).choices[0];
    const { chunks } = await stream(server.url, "/v1/completions", body);
    assert.ok(chunks.length >= 24, `${chunks.length} chunks: one per token with logprobs`);
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    for (const c of chunks) {
      assert.equal(c.object, "text_completion");
      assert.equal("usage" in c, false);
    }
    const got = collect(chunks, false, new Map([[0, want.text as string]])).get(0)!;
    assert.equal(got.text, want.text);
    assert.deepEqual(got.ids, want.token_ids);
    assertClose(got.lp, want.logprobs?.token_logprobs);
    assert.deepEqual(got.tokens, want.logprobs?.tokens);
    assert.deepEqual(got.offsets, want.logprobs?.text_offset);
    assert.equal(got.finish?.finish_reason, "length");
    assert.ok((want.prompt_token_ids?.length ?? 0) > 0);
    assert.equal(want.prompt_logprobs?.length, want.prompt_token_ids?.length);
    assertClose(got.finish?.prompt_logprobs, want.prompt_logprobs); // on the choice's last chunk
  });

  test("completions: several prompts x n, seeded sampling, stop strings, include_usage", async () => {
    const base = { prompt: ["The answer is", "Step 1:"], n: 2, max_tokens: 16, temperature: 1, seed: 7, ignore_eos: true };
    const free = await whole(server.url, "/v1/completions", base);
    // stop strings taken from two choices' texts: those rows stop, the others run to max_tokens
    const t0 = free.choices[0].text as string;
    const t3 = free.choices[3].text as string;
    assert.ok(t0.length > 6 && t3.length > 6, `texts too short: ${JSON.stringify([t0, t3])}`);
    for (const stop of [[], [t0.slice(3, 5), t3.slice(4, 7)]]) {
      const body = { ...base, stop, stream_options: { include_usage: true } };
      const want = await whole(server.url, "/v1/completions", { ...base, stop });
      const { chunks } = await stream(server.url, "/v1/completions", body);
      const usage = chunks.pop() as Chunk;
      assert.deepEqual(usage.choices, []);
      assert.deepEqual(usage.usage, want.usage);
      for (const c of chunks) assert.equal(c.usage, null);
      const got = collect(chunks, false, new Map(want.choices.map((c) => [c.index, c.text as string])));
      assert.deepEqual([...got.keys()].sort(), [0, 1, 2, 3]);
      for (const w of want.choices) {
        const g = got.get(w.index)!;
        assert.equal(g.text, w.text, `choice ${w.index}, stop ${JSON.stringify(stop)}`);
        assert.deepEqual(g.ids, w.token_ids);
        assert.equal(g.finish?.finish_reason, w.finish_reason);
        assert.equal(g.finish?.stop_reason, w.stop_reason);
      }
      if (stop.length > 0) assert.ok(want.choices.filter((c) => c.finish_reason === "stop").length >= 2);
    }
  });

  test("chat: role first, content deltas, empty-delta finish; n = 2 with logprobs equals the whole answer", async () => {
    const body = {
      messages: [{ role: "user", content: "hi" }],
      n: 2,
      max_tokens: 12,
      temperature: 0.8,
      seed: 3,
      logprobs: true,
      top_logprobs: 2,
    };
    const want = await whole(server.url, "/v1/chat/completions", body);
    const { chunks } = await stream(server.url, "/v1/chat/completions", body);
    for (const c of chunks) assert.equal(c.object, "chat.completion.chunk");
    assert.deepEqual(
      chunks.slice(0, 2).map((c) => c.choices[0].delta),
      [
        { role: "assistant", content: "" },
        { role: "assistant", content: "" },
      ],
    );
    const got = collect(chunks, true, new Map(want.choices.map((c) => [c.index, c.message?.content as string])));
    for (const w of want.choices) {
      const g = got.get(w.index)!;
      assert.equal(g.roles, 1);
      assert.equal(g.text, w.message?.content);
      assert.deepEqual(g.ids, w.token_ids);
      assertClose(g.content, w.logprobs?.content);
      assert.equal(g.finish?.finish_reason, w.finish_reason);
    }
    // greedy with a stop string that spans tokens: nothing past it is ever sent
    const greedy = { messages: [{ role: "user", content: "hi" }], max_tokens: 16, temperature: 0, ignore_eos: true };
    const text = (await whole(server.url, "/v1/chat/completions", greedy)).choices[0].message?.content as string;
    const stop = text.slice(2, 5);
    const cut = (await whole(server.url, "/v1/chat/completions", { ...greedy, stop })).choices[0];
    const sent = (await stream(server.url, "/v1/chat/completions", { ...greedy, stop })).chunks;
    const s = collect(sent, true, new Map([[0, cut.message?.content as string]])).get(0)!;
    assert.equal(s.text, cut.message?.content);
    assert.equal(s.text, text.slice(0, text.indexOf(stop)));
    assert.equal(s.finish?.finish_reason, "stop");
    assert.equal(s.finish?.stop_reason, stop);
  });

  test("checks before the stream answer ordinary JSON errors", async () => {
    for (const [route, body, param] of [
      ["/v1/completions", { prompt: "hi", max_tokens: 1000, stream: true }, "max_tokens"],
      ["/v1/completions", { prompt: "hi", model: "nope", stream: true }, "model"],
      ["/v1/chat/completions", { messages: [], stream: true }, "messages"],
    ] as const) {
      const r = await fetch(`${server.url}${route}`, json(body));
      assert.equal(r.headers.get("content-type"), "application/json");
      const j = (await r.json()) as { error: { param: string } };
      assert.ok(r.status === 400 || r.status === 404, `${r.status}`);
      assert.equal(j.error.param, param);
    }
  });

  test("a client that aborts mid-stream cancels its generation and frees its KV blocks", async () => {
    const ctrl = new AbortController();
    const body = { prompt: [5, 6, 7], n: 3, max_tokens: 200, ignore_eos: true, temperature: 1, stream: true };
    const res = await fetch(`${server.url}/v1/completions`, { ...json(body), signal: ctrl.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let seen = "";
    while ((seen.match(/\n\n/g) ?? []).length < 6) {
      const r = await reader.read();
      assert.equal(r.done, false, "the stream ended before the abort");
      seen += new TextDecoder().decode(r.value);
    }
    const stepsAtAbort = server.engine.stats.steps;
    ctrl.abort();
    await server.engine.drain();
    assert.ok(server.engine.stats.steps - stepsAtAbort < 100, `${server.engine.stats.steps - stepsAtAbort} steps ran after the abort`);
    assert.equal(server.engine.load.rows, 0);
    for (let i = 0; i < 100 && server.inflight() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.inflight(), 0);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    // the next request's last step reports the cache: every block is free again
    await whole(server.url, "/v1/completions", { prompt: [5, 6], max_tokens: 2 });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.engine.load.kvBlocksFree, server.engine.load.kvBlocks);
  });
});

describe("nexus serve: stream failures and shutdown", () => {
  test("a failure after the headers ends the stream with an error event; SIGTERM lets a running stream finish", async () => {
    const dir = fixtureDir();
    try {
      const server = await startServer({ model: dir, port: 0 });
      const body = { prompt: [5, 6, 7], max_tokens: 40, ignore_eos: true, temperature: 0 };
      const want = (await whole(server.url, "/v1/completions", body)).choices[0];
      // close() while a stream runs: it completes (same text, [DONE]); new requests get 503
      const running = stream(server.url, "/v1/completions", body);
      for (let i = 0; i < 1000 && server.engine.load.requests === 0; i++) await new Promise((r) => setTimeout(r, 2));
      const closing = server.close();
      const got = collect((await running).chunks, false).get(0)!;
      assert.equal(got.text, want.text);
      await closing;

      const second = await startServer({ model: dir, port: 0 });
      try {
        const res = await fetch(`${second.url}/v1/completions`, json({ ...body, max_tokens: 200, stream: true }));
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        let raw = new TextDecoder().decode((await reader.read()).value);
        await second.engine.close(); // the generation worker goes away mid-stream
        for (let r = await reader.read(); !r.done; r = await reader.read()) raw += new TextDecoder().decode(r.value);
        assert.equal(res.status, 200);
        const events = raw.split("\n\n").filter((e) => e.length > 0);
        assert.equal(events.pop(), "data: [DONE]");
        const last = JSON.parse((events.pop() as string).slice(6)) as Chunk;
        assert.equal(last.error?.code, 500);
        assert.match(last.error?.message ?? "", /engine was closed/);
      } finally {
        await second.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
