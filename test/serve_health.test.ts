// The health verdict of `nexus serve` (health.ts) and its listener thread (--health-port): the verdict from the
// shared board (beats, draining, failed, stale), the listener's routes, an answer while the HTTP thread is blocked
// (it runs on a thread of its own, and says the HTTP thread is stuck), 503 while draining, and the port closed
// after close(). In-process, loopback only.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { HealthBoard, healthVerdict } from "../src/serve/health.js";
import { type ServerHandle, startServer } from "../src/serve/server.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const MODEL = path.join(FIXTURES, "llama-tiny");
const TOK = path.join(FIXTURES, "tokenizer");

/** Status and body of GET url from another process: this thread's event loop does not have to run. */
function probeFromChild(url: string, method = "GET"): { status: number; body: string; ms: number } {
  const src = `const t0 = performance.now(); fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(method)} })
    .then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text(), ms: performance.now() - t0 })))
    .catch((e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e), ms: 0 })));`;
  return JSON.parse(execFileSync(process.execPath, ["-e", src], { encoding: "utf8", timeout: 20_000 }));
}

test("verdict: beating and serving is 200; stale, draining and failed are 503 with the reason", () => {
  const board = new HealthBoard();
  try {
    const now = Date.now();
    assert.deepEqual(healthVerdict(board.shared, now, 1000), { status: 200, reason: "" });
    const stale = healthVerdict(board.shared, now + 5000, 1000);
    assert.equal(stale.status, 503);
    assert.match(stale.reason, /HTTP thread has not run for 50\d\d ms \(limit 1000 ms\)/);
    board.beat();
    assert.equal(healthVerdict(board.shared, Date.now(), 1000).status, 200);
    board.set("draining");
    assert.deepEqual(healthVerdict(board.shared, Date.now(), 1000), { status: 503, reason: "shutting down: finishing admitted requests" });
    board.set("failed");
    assert.deepEqual(healthVerdict(board.shared, Date.now(), 1000), { status: 503, reason: "the generation worker failed" });
    board.set("draining"); // failed is final
    assert.equal(healthVerdict(board.shared, Date.now(), 1000).reason, "the generation worker failed");
  } finally {
    board.stop();
  }
});

describe("the health listener", () => {
  let server: ServerHandle;
  before(async () => {
    server = await startServer({ model: MODEL, tokenizer: TOK, port: 0, healthPort: 0, healthStaleMs: 300, seed: 1 });
  });
  after(async () => {
    await server?.close();
  });

  test("serves GET and HEAD /health only, on a port of its own", async () => {
    assert.ok(server.healthUrl !== null && server.healthUrl !== server.url, String(server.healthUrl));
    const ok = await fetch(`${server.healthUrl}/health`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "");
    assert.equal((await fetch(`${server.healthUrl}/health`, { method: "HEAD" })).status, 200);
    assert.equal((await fetch(`${server.healthUrl}/health`, { method: "POST" })).status, 405);
    const other = await fetch(`${server.healthUrl}/v1/models`);
    assert.equal(other.status, 404);
    assert.match(await other.text(), /only \/health/);
    assert.equal((await fetch(`${server.url}/health`)).status, 200); // the main port still answers too
  });

  test("answers while the HTTP thread is blocked, and says it is stuck", async () => {
    // this thread is the server's HTTP thread: block it (no beats), then probe from another process
    const until = Date.now() + 500;
    while (Date.now() < until) {}
    const stuck = probeFromChild(`${server.healthUrl}/health`);
    assert.equal(stuck.status, 503, stuck.body);
    assert.match(stuck.body, /HTTP thread has not run for \d+ ms \(limit 300 ms\)/);
    await new Promise((r) => setTimeout(r, 250)); // the beat timer runs again
    assert.equal((await fetch(`${server.healthUrl}/health`)).status, 200);
  });

  test("503 while draining; closed after close()", async () => {
    const s = await startServer({ model: MODEL, tokenizer: TOK, port: 0, healthPort: 0, seed: 2 });
    const long = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: [1, 2, 3], max_tokens: 200, ignore_eos: true }),
    });
    while (s.inflight() === 0) await new Promise((r) => setTimeout(r, 5));
    const closing = s.close();
    const draining = await fetch(`${s.healthUrl}/health`);
    assert.equal(draining.status, 503);
    assert.equal(await draining.text(), "shutting down: finishing admitted requests");
    assert.equal((await long).status, 200); // the admitted request still finishes
    await closing;
    const gone = probeFromChild(`${s.healthUrl}/health`);
    assert.equal(gone.status, 0);
    assert.match(gone.body, /ECONNREFUSED/);
  });

  test("a port in use is refused with the address", async () => {
    const port = Number(new URL(server.healthUrl as string).port);
    await assert.rejects(
      startServer({ model: MODEL, tokenizer: TOK, port: 0, healthPort: port }),
      new RegExp(`health listener on 127\\.0\\.0\\.1:${port} did not start: .*EADDRINUSE`),
    );
  });
});
