// Fuzz target for `nexus serve`'s HTTP surface: valid requests (completions, chat, adapter routes) whose JSON
// bodies, headers or framing are mutated, sent over raw sockets to a server started in the child process.
// Every reply must be 200 with a well-formed answer or a 4xx; a 5xx, a dropped connection or a hang fails, and
// the server must still answer /health at the end. Not here: load and shedding (serve_load.ts).

import * as fs from "node:fs";
import * as path from "node:path";
import type { Rng } from "../../src/nn/rng.js";
import { type ServerHandle, startServer } from "../../src/serve/server.js";
import { FIXTURES } from "../fixtures.js";
import { httpBytes, rawRequest, SERVE_TEST_LIMITS, validRequest } from "../serve_requests.js";
import { announceCase, type FuzzTarget, type Outcome } from "./harness.js";
import { BYTE_MUTATIONS, mutateJsonText, pick } from "./mutate.js";

let server: ServerHandle | null = null;
const KEY = "fuzz-key";

/** Header damage: wrong or missing content type and length, odd encodings, duplicate and huge headers. */
function mutateHeaders(rng: Rng, h: Record<string, string>, bodyLen: number): string {
  const r = rng.next();
  if (r < 0.15) {
    // (never more than is sent: the server would rightly wait for the rest until its request timeout)
    h["content-length"] = String(pick(rng, [0, Math.max(0, bodyLen - 1), -1, 2 ** 53, "abc", "1, 2"]));
    return `content-length ${h["content-length"]}`;
  }
  if (r < 0.3) {
    h["content-type"] = pick(rng, [
      "text/plain",
      "application/x-www-form-urlencoded",
      "",
      "application/json; charset=latin1",
      "multipart/form-data",
    ]);
    return `content-type ${JSON.stringify(h["content-type"])}`;
  }
  if (r < 0.45) {
    h.authorization = pick(rng, ["", "Bearer", `Bearer ${KEY} extra`, `Bearer  ${KEY}`, "Bearer \u00ff", `Bearer ${"k".repeat(10_000)}`]);
    return `authorization ${JSON.stringify(h.authorization.slice(0, 20))}`;
  }
  if (r < 0.55) {
    h["content-encoding"] = pick(rng, ["gzip", "br", "identity"]);
    return `content-encoding ${h["content-encoding"]}`;
  }
  if (r < 0.65) {
    h["transfer-encoding"] = pick(rng, ["chunked", "gzip, chunked", "identity"]);
    return `transfer-encoding ${h["transfer-encoding"]}`;
  }
  h[pick(rng, ["x-a", "expect", "accept"])] = pick(rng, ["100-continue", "x".repeat(5000), "\u00e9"]);
  return "extra header";
}

export const httpTarget: FuzzTarget = {
  name: "http",
  cases: { full: 1200, quick: 30 },
  async setup(work) {
    const model = path.join(FIXTURES, "llama-tiny");
    fs.mkdirSync(path.join(work, "adapters"), { recursive: true });
    server = await startServer({
      model,
      tokenizer: path.join(FIXTURES, "tokenizer"),
      port: 0,
      apiKey: KEY,
      adapterRoot: path.join(work, "adapters"),
      maxBatch: 16,
      limits: SERVE_TEST_LIMITS,
    });
  },
  async teardown() {
    await server?.close();
  },
  async run(rng, _work, index): Promise<Outcome> {
    if (server === null) throw new Error("no server");
    const o = await httpCase(server, rng);
    // every 25th case, the server must still be healthy after what it was sent
    if (index % 25 === 24 && o.kind !== "failed") {
      const h = await rawRequest(server.port, httpBytes("GET", "/health", ""), 5_000);
      if (h.status !== 200) return { kind: "failed", what: o.what, reason: `/health answered ${h.status} after this case` };
    }
    return o;
  },
};

async function httpCase(server: ServerHandle, rng: Rng): Promise<Outcome> {
  const { path: route, body } = validRequest(rng);
  const what: string[] = [route];
  let text = JSON.stringify(body);
  const r = rng.next();
  if (r < 0.6) {
    const m = mutateJsonText(
      body,
      rng,
      Object.keys(body).map((k) => [k]),
    );
    text = m.text;
    what.push(...m.what);
  } else if (r < 0.7) {
    const extra = pick(rng, ["load_lora_adapter", "unload_lora_adapter"]);
    const b = {
      lora_name: pick(rng, ["a", "../a", "", "x".repeat(70)]),
      lora_path: pick(rng, ["../../etc", "/etc", "ad", "", 5, "a\u0000"]),
    };
    text = JSON.stringify(b);
    what.splice(0, 1, `/v1/${extra}`, JSON.stringify(b));
  }
  let bytes: Buffer = Buffer.from(text, "utf8");
  if (rng.next() < 0.2) {
    let d: string;
    [bytes, d] = BYTE_MUTATIONS[pick(rng, Object.keys(BYTE_MUTATIONS))](bytes, rng);
    what.push(d);
  }
  const headers: Record<string, string> = { authorization: `Bearer ${KEY}` };
  if (rng.next() < 0.35) what.push(mutateHeaders(rng, headers, bytes.length));
  const method = rng.next() < 0.05 ? pick(rng, ["GET", "PUT", "OPTIONS", "HEAD"]) : "POST";
  const target =
    rng.next() < 0.05 ? pick(rng, ["/v1/completions?x=1", "/v1//completions", "/v1/completions/", "/health", "/v1/models"]) : what[0];
  if (method !== "POST" || target !== what[0]) what.push(`${method} ${target}`);
  announceCase(what);
  const reply = await rawRequest(server.port, httpBytes(method, target, bytes, headers), 15_000);
  if (reply.status === -1) return { kind: "failed", what, reason: "no reply within 15 s" };
  if (reply.status === 0) {
    // Node closes the socket after framing it cannot parse; that is a refusal only if the framing was broken
    const framing = /content-length|transfer-encoding|content-encoding/.test(what.join(" "));
    return framing
      ? { kind: "rejected", what, message: "connection closed on broken framing" }
      : { kind: "failed", what, reason: "connection closed without a reply" };
  }
  if (reply.status >= 500) return { kind: "failed", what, reason: `${reply.status}: ${reply.body.slice(0, 300)}` };
  if (reply.status >= 400) return { kind: "rejected", what, message: `${reply.status} ${reply.body.slice(0, 150)}` };
  if (method === "HEAD" || target === "/health") return { kind: "accepted", what };
  if (route.includes("lora") || target === "/v1/models") return { kind: "accepted", what };
  try {
    const j = JSON.parse(reply.body) as { choices?: unknown[] };
    if (!Array.isArray(j.choices) || j.choices.length === 0)
      return { kind: "failed", what, reason: `200 without choices: ${reply.body.slice(0, 200)}` };
  } catch {
    return { kind: "failed", what, reason: `200 with a body that is not JSON: ${reply.body.slice(0, 200)}` };
  }
  return { kind: "accepted", what };
}
