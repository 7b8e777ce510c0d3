// The pieces of `nexus serve` streaming on their own: IncrementalDecoder + TextStream (src/serve/stream_text.ts)
// against the fixture's byte-level BPE tokenizer (a multi-byte character split over tokens never shows as U+FFFD;
// stop strings spanning tokens never leak; random id sequences stream exactly the text the whole answer gets,
// with and without clean-up of " ," and special tokens), and the SSE framing and chunk shapes (src/serve/sse.ts)
// through a real HTTP response.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { matchStop } from "../src/generate/stop.js";
import { loadTokenizer, type Tokenizer } from "../src/io/tokenizer.js";
import { Rng } from "../src/nn/rng.js";
import { ApiError } from "../src/serve/protocol.js";
import { chatChunk, completionChunk, SSE_DONE, SseWriter, sseEvent, usageChunk } from "../src/serve/sse.js";
import { holdbackLength, IncrementalDecoder, TextStream } from "../src/serve/stream_text.js";

const TOK_DIR = fileURLToPath(new URL("../../shared/fixtures/hf/tokenizer/", import.meta.url));
const CASES = JSON.parse(fs.readFileSync(path.join(TOK_DIR, "cases.json"), "utf-8")) as { encode: { text: string; ids: number[] }[] };

/**
 * Stream `ids` one token at a time as server.ts does and return the chunks sent, plus the text the whole answer
 * reports: the engine's rule (the row ends at the first token after which the decoded text holds a stop string).
 */
function streamIds(
  tok: Tokenizer,
  ids: readonly number[],
  stop: string[],
  include = false,
  skipSpecialTokens = true,
): { chunks: string[]; final: string; sentEachStep: string[] } {
  const decode = (x: readonly number[]) => tok.decode(x, { skipSpecialTokens });
  const dec = new IncrementalDecoder(decode);
  const ts = new TextStream(stop, include);
  const chunks: string[] = [];
  const sentEachStep: string[] = [];
  let final: string | null = null;
  for (let t = 0; t < ids.length && final === null; t++) {
    chunks.push(ts.update(dec.push(ids[t])));
    sentEachStep.push(ts.text);
    final = matchStop(decode(ids.slice(0, t + 1)), stop, include);
  }
  final ??= decode(ids);
  chunks.push(ts.finish(final));
  return { chunks, final, sentEachStep };
}

describe("stream_text", () => {
  const tok = loadTokenizer(TOK_DIR);
  const unicode = CASES.encode.find((c) => c.text.startsWith("Ünïcödé"));
  assert.ok(unicode !== undefined, "the fixture's unicode case");

  test("a multi-byte character split over byte-level tokens is sent whole, never as U+FFFD", () => {
    const ids = unicode.ids;
    const dec = new IncrementalDecoder((x) => tok.decode(x));
    const texts = ids.map((id) => dec.push(id));
    assert.equal(texts[texts.length - 1], unicode.text);
    for (const t of texts) {
      assert.ok(!t.includes("\uFFFD"), `partial character leaked: ${JSON.stringify(t)}`);
      assert.ok(unicode.text.startsWith(t), `${JSON.stringify(t)} is not a prefix of the text`);
    }
    // the emoji is 4 bytes over 3 tokens: its first two tokens add no text, the third adds all of it
    const at = texts.findIndex((t) => t.includes("🙂"));
    assert.equal(texts[at - 1], texts[at - 2]);
    assert.equal(texts[at].slice(texts[at - 1].length), "🙂");
    // the whole decode of the split emoji's first tokens does end in U+FFFD: holding it back is what hides it
    assert.ok(tok.decode(ids.slice(0, at)).endsWith("\uFFFD"));
    // held back: the partial character and the space before it (trailing whitespace a decoder may still rewrite)
    assert.equal(holdbackLength(tok.decode(ids.slice(0, at)), []), 2);
    assert.equal(holdbackLength("ab\uFFFD\uFFFD", []), 2);
  });

  test("stop strings spanning tokens: text up to the stop, never past it (or through it when included)", () => {
    const ids = unicode.ids; // 'Ünïcödé 🙂 text\twith  spaces'
    for (const [stop, include] of [
      ["🙂 te", false],
      ["🙂 te", true],
      ["dé 🙂", false],
      ["ïc", false],
    ] as const) {
      const r = streamIds(tok, ids, [stop, "never-there"], include);
      const at = unicode.text.indexOf(stop);
      const want = unicode.text.slice(0, include ? at + stop.length : at);
      assert.equal(r.final, want);
      assert.equal(r.chunks.join(""), want, `stop ${JSON.stringify(stop)} include ${include}`);
      for (const sent of r.sentEachStep) assert.ok(want.startsWith(sent), `${JSON.stringify(sent)} leaks past ${JSON.stringify(want)}`);
    }
    // a prefix of a stop string is held back until the text goes another way
    const ts = new TextStream(["world!"], false);
    assert.equal(ts.update("Hello wor"), "Hello ");
    assert.equal(ts.update("Hello world?"), "world?");
    assert.equal(ts.stopped, false);
    assert.equal(ts.update("Hello world? world!!"), " ");
    assert.equal(ts.stopped, true);
    assert.equal(ts.update("Hello world? world!! more"), "");
    assert.equal(ts.finish("Hello world? "), "");
    assert.equal(ts.text, "Hello world? ");
  });

  test("random byte-level id sequences stream exactly the whole answer's text (stop strings, special tokens)", () => {
    const rng = new Rng(11);
    let stopped = 0;
    for (let k = 0; k < 150; k++) {
      // mostly merged tokens, some raw bytes (partial UTF-8) and special tokens
      const ids = Array.from({ length: 5 + rng.int(30) }, () => (rng.next() < 0.15 ? rng.int(3) : 3 + rng.int(381)));
      const skip = rng.next() < 0.7;
      const full = tok.decode(ids, { skipSpecialTokens: skip });
      const stop: string[] = [];
      if (full.length > 6 && rng.next() < 0.7) {
        const a = rng.int(full.length - 3);
        stop.push(full.slice(a, a + 1 + rng.int(3)));
      }
      const r = streamIds(tok, ids, stop, rng.next() < 0.3, skip);
      if (r.final !== full) stopped++;
      assert.equal(r.chunks.join(""), r.final, `ids ${JSON.stringify(ids)} stop ${JSON.stringify(stop)}`);
      for (const sent of r.sentEachStep) assert.ok(r.final.startsWith(sent));
    }
    assert.ok(stopped > 20, `only ${stopped} sequences ended at a stop string`);
  });

  test("a decoder that rewrites across tokens (clean_up_tokenization_spaces) still streams the exact text", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-cleanup-"));
    try {
      fs.copyFileSync(path.join(TOK_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
      const cfg = JSON.parse(fs.readFileSync(path.join(TOK_DIR, "tokenizer_config.json"), "utf-8"));
      fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, clean_up_tokenization_spaces: true }));
      const clean = loadTokenizer(dir);
      const text = "Hello , world . It 's done !";
      const ids = clean.encode(text);
      const final = clean.decode(ids);
      assert.equal(final, "Hello, world. It's done!");
      const r = streamIds(clean, ids, []);
      assert.equal(r.chunks.join(""), final);
      for (const sent of r.sentEachStep) assert.ok(final.startsWith(sent), `${JSON.stringify(sent)} was rewritten later`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Serve one response written by `write` and return its raw body and headers. */
async function served(write: (res: http.ServerResponse) => void): Promise<{ body: string; headers: Headers }> {
  const server = http.createServer((_req, res) => write(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { body: await r.text(), headers: r.headers };
  } finally {
    server.close();
  }
}

describe("sse", () => {
  const head = { id: "cmpl-1", created: 7, model: "m", includeUsage: false };

  test("events are `data: <json>` blocks and the stream ends with [DONE]", async () => {
    const { body, headers } = await served((res) => {
      const w = new SseWriter(res);
      w.start();
      w.send({ a: "line\nbreak" });
      w.send({ b: 2 });
      w.end();
      w.send({ late: true }); // after the end: dropped
    });
    assert.equal(headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(headers.get("cache-control"), "no-cache");
    assert.equal(body, 'data: {"a":"line\\nbreak"}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n');
    assert.equal(sseEvent([1]), "data: [1]\n\n");
    assert.equal(SSE_DONE, "data: [DONE]\n\n");
  });

  test("a failure after the headers is an error event, then [DONE]", async () => {
    const { body } = await served((res) => {
      const w = new SseWriter(res);
      w.start();
      w.send({ x: 1 });
      w.fail(new ApiError(500, "[serve] boom"));
    });
    const events = body.split("\n\n").filter((e) => e.length > 0);
    assert.deepEqual(events.slice(1), [
      'data: {"error":{"message":"[serve] boom","type":"InternalServerError","param":null,"code":500}}',
      "data: [DONE]",
    ]);
  });

  test("chunk shapes: completion, chat (role, content, finish), usage", () => {
    assert.deepEqual(completionChunk(head, { index: 3, text: "hi", logprobs: null, tokenIds: [5], finish: null }), {
      id: "cmpl-1",
      object: "text_completion",
      created: 7,
      model: "m",
      choices: [{ index: 3, text: "hi", logprobs: null, finish_reason: null, stop_reason: null, token_ids: [5] }],
    });
    const fin = { finish_reason: "stop" as const, stop_reason: "\n" };
    const withUsage = { ...head, includeUsage: true };
    assert.deepEqual(chatChunk(withUsage, { index: 0, delta: {}, logprobs: null, finish: fin }), {
      id: "cmpl-1",
      object: "chat.completion.chunk",
      created: 7,
      model: "m",
      choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop", stop_reason: "\n" }],
      usage: null,
    });
    assert.deepEqual(usageChunk(head, "chat.completion.chunk", { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 }), {
      id: "cmpl-1",
      object: "chat.completion.chunk",
      created: 7,
      model: "m",
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
  });
});
