// What the server parts and the HTTP fuzz target send to `nexus serve`: a raw HTTP/1.1 client over one
// socket (so framing itself can be malformed and the status line is read as sent), the valid request bodies,
// and a table of malformed requests that must each get a 4xx. Not here: the parts (serve_load.ts,
// serve_malformed.ts) or the random mutations of the fuzz target (fuzz/targets_http.ts).

import * as net from "node:net";
import type { Rng } from "../src/nn/rng.js";
import { pick } from "./fuzz/mutate.js";

/** Limits the server parts and the HTTP fuzz target start `nexus serve` with (small, so bad cases stay cheap). */
export const SERVE_TEST_LIMITS = Object.freeze({ maxBodyBytes: 65536, maxRequestTokens: 4096 });

export interface RawReply {
  /** HTTP status, or 0 when the socket closed without a status line, -1 on timeout. */
  status: number;
  headers: Record<string, string>;
  body: string;
  ms: number;
}

/** Send bytes on a fresh connection; read one response (Content-Length framed, as the server writes). */
export function rawRequest(port: number, bytes: Buffer, timeoutMs = 10_000): Promise<RawReply> {
  const isHead = bytes.subarray(0, 5).toString("latin1") === "HEAD "; // a reply to HEAD has no body
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (status: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = buf.toString("latin1");
      const head = text.split("\r\n\r\n")[0] ?? "";
      const headers: Record<string, string> = {};
      for (const line of head.split("\r\n").slice(1)) {
        const at = line.indexOf(":");
        if (at > 0) headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({ status, headers, body: buf.subarray(Buffer.byteLength(head, "latin1") + 4).toString("utf8"), ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(-1), timeoutMs);
    const parse = (): number | null => {
      // an interim "100 Continue" (the request said Expect: 100-continue) is not the answer
      if (/^HTTP\/1\.[01] 1\d\d [^\r]*\r\n\r\n/.test(buf.toString("latin1"))) buf = buf.subarray(buf.indexOf("\r\n\r\n") + 4);
      const text = buf.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return null;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m) return 0;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (!isHead && len && buf.length < end + 4 + Number(len[1])) return null;
      return Number(m[1]);
    };
    sock.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const s = parse();
      if (s !== null) finish(s);
    });
    sock.on("error", () => finish(parse() ?? 0));
    sock.on("close", () => finish(parse() ?? 0));
    sock.on("connect", () => sock.write(bytes)); // no half-close: Node (like most servers) takes a FIN as the client leaving
  });
}

/** An HTTP/1.1 request with a correct Content-Length unless `headers` overrides it. */
export function httpBytes(method: string, path: string, body: Buffer | string, headers: Record<string, string> = {}): Buffer {
  const b = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const h: Record<string, string> = {
    host: "127.0.0.1",
    "content-type": "application/json",
    "content-length": String(b.length),
    connection: "close",
    ...headers,
  };
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(h)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `${k}: ${v}`)
    .join("\r\n")}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), b]);
}

/** Valid, cheap requests against the tiny fixture model (vocabulary 384, 256 positions). */
export function validRequest(rng: Rng): { path: string; body: Record<string, unknown> } {
  const ids = Array.from({ length: 1 + rng.int(8) }, () => 3 + rng.int(300));
  const common = { max_tokens: 1 + rng.int(4), temperature: pick(rng, [0, 0.7, 1]), ignore_eos: rng.next() < 0.5 };
  return pick(rng, [
    { path: "/v1/completions", body: { prompt: ids, ...common } },
    { path: "/v1/completions", body: { prompt: "The sky is", n: 2, logprobs: 2, ...common } },
    { path: "/v1/completions", body: { prompt: ["a b", "c d e"], seed: rng.int(100), stop: ["x"], ...common } },
    {
      path: "/v1/chat/completions",
      body: { messages: [{ role: "user", content: "Hi there" }], logprobs: true, top_logprobs: 2, ...common },
    },
  ]);
}

/**
 * Requests that must each get a 4xx (never 200, never 5xx): broken JSON and UTF-8, wrong types and ranges,
 * unknown routes and methods, oversized bodies and prompts, traversal in adapter paths, bad framing, bad keys.
 * `key` is the server's API key (requests carry it unless the case is about auth).
 */
export function malformedRequest(rng: Rng, key: string): { bytes: Buffer; what: string } {
  const auth = { authorization: `Bearer ${key}` };
  const post = (path: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    httpBytes("POST", path, body, { ...auth, ...headers });
  const json = (v: unknown) => JSON.stringify(v);
  const cases: [string, () => Buffer][] = [
    ["broken JSON", () => post("/v1/completions", `{"prompt": [1, 2${pick(rng, ["", ",", "]", "}}"])}`)],
    ["JSON not an object", () => post("/v1/completions", pick(rng, ["[]", "42", '"x"', "null", "true"]))],
    [
      "invalid UTF-8 body",
      () => post("/v1/completions", Buffer.concat([Buffer.from('{"prompt": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])),
    ],
    ["no prompt", () => post("/v1/completions", json({ max_tokens: 2 }))],
    ["prompt of the wrong type", () => post("/v1/completions", json({ prompt: pick(rng, [3, {}, [null], [[1, "a"]], true]) }))],
    ["token id outside the vocabulary", () => post("/v1/completions", json({ prompt: [1, pick(rng, [384, -1, 1e9, 1.5])] }))],
    ["max_tokens out of range", () => post("/v1/completions", json({ prompt: [1, 2], max_tokens: pick(rng, [-1, 1e9, 1.5, "4", 300]) }))],
    ["n out of range", () => post("/v1/completions", json({ prompt: [1, 2], n: pick(rng, [0, -3, 129, 1e6, "2"]) }))],
    ["temperature invalid", () => post("/v1/completions", json({ prompt: [1, 2], temperature: pick(rng, [-1, "hot", []]) }))],
    ["top_p invalid", () => post("/v1/completions", json({ prompt: [1, 2], top_p: pick(rng, [0, 1.5, -0.1]) }))],
    ["logprobs too many", () => post("/v1/completions", json({ prompt: [1, 2], logprobs: pick(rng, [21, 1e6, -1]) }))],
    ["stream not a boolean", () => post("/v1/completions", json({ prompt: [1, 2], stream: pick(rng, ["yes", 1, {}]) }))],
    ["stream_options without stream", () => post("/v1/completions", json({ prompt: [1, 2], stream_options: { include_usage: true } }))],
    ["unknown model", () => post("/v1/completions", json({ prompt: [1, 2], model: `nope-${rng.int(1000)}` }))],
    [
      "too many rows x tokens",
      () => post("/v1/completions", json({ prompt: Array.from({ length: 64 }, () => [1, 2]), n: 128, max_tokens: 200 })),
    ],
    ["prompt over the character limit", () => post("/v1/completions", json({ prompt: "x ".repeat(5_000) }))],
    ["prompt longer than the context", () => post("/v1/completions", json({ prompt: Array.from({ length: 300 }, () => 5) }))],
    [
      "chat without messages",
      () => post("/v1/chat/completions", json({ messages: pick(rng, [[], null, "hi", [{ content: "x" }], [{ role: 1 }]]) })),
    ],
    [
      "chat content parts of an unknown type",
      () => post("/v1/chat/completions", json({ messages: [{ role: "user", content: [{ type: "image_url" }] }] })),
    ],
    ["deep JSON", () => post("/v1/completions", `{"prompt": ${"[".repeat(50_000)}1${"]".repeat(50_000)}}`)],
    ["body over the byte limit", () => post("/v1/completions", `{"prompt": "${"a".repeat(SERVE_TEST_LIMITS.maxBodyBytes + 10)}"}`)],
    ["declared body over the limit", () => post("/v1/completions", "{}", { "content-length": String(2 ** 40) })],
    [
      "unknown route",
      () => post(pick(rng, ["/v1/nope", "/v2/completions", "/../etc/passwd", "/v1/completions/../models/x", "/%00"]), "{}"),
    ],
    ["wrong method", () => httpBytes(pick(rng, ["GET", "PUT", "DELETE", "PATCH"]), "/v1/completions", "", auth)],
    ["no API key", () => httpBytes("POST", "/v1/completions", json({ prompt: [1, 2] }))],
    [
      "wrong API key",
      () =>
        post("/v1/completions", json({ prompt: [1, 2] }), {
          authorization: pick(rng, [`Bearer ${key}x`, "Bearer ", key, `bearer ${key}`, `Basic ${key}`]),
        }),
    ],
    [
      "load adapter: traversal",
      () =>
        post(
          "/v1/load_lora_adapter",
          json({ lora_name: "a", lora_path: pick(rng, ["../", "../../etc", "/etc", "a/../../b", "/", "x\u0000y"]) }),
        ),
    ],
    ["load adapter: missing folder", () => post("/v1/load_lora_adapter", json({ lora_name: "b", lora_path: `missing-${rng.int(100)}` }))],
    [
      "load adapter: bad name",
      () => post("/v1/load_lora_adapter", json({ lora_name: pick(rng, ["", "../x", "a b", "x".repeat(100), 5]), lora_path: "ad" })),
    ],
    ["unload adapter never loaded", () => post("/v1/unload_lora_adapter", json({ lora_name: `never-${rng.int(100)}` }))],
    [
      "malformed chunked body",
      () =>
        Buffer.from(
          `POST /v1/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
        ),
    ],
    ["header too large", () => httpBytes("POST", "/v1/completions", "{}", { ...auth, "x-big": "a".repeat(20_000) })],
    [
      "bad request line",
      () =>
        Buffer.from(
          pick(rng, ["GARBAGE\r\n\r\n", "POST\r\n\r\n", "POST /v1/completions HTTP/9.9\r\n\r\n", "\u0000\u0001\r\n\r\n"]),
          "latin1",
        ),
    ],
    [
      "content-length and transfer-encoding both",
      () => post("/v1/completions", "5\r\n{}\r\n0\r\n\r\n", { "transfer-encoding": "chunked" }),
    ],
  ];
  const [what, make] = pick(rng, cases);
  return { bytes: make(), what };
}
