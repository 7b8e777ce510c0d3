// Part `serve_malformed`: 10,000 malformed requests (500 in --quick) at the real `nexus serve`, started with an
// API key and an adapter root: broken JSON and UTF-8, wrong types and ranges, oversized bodies and prompts,
// unknown routes and methods, adapter-path traversal, bad framing, missing or wrong keys (serve_requests.ts).
// Every one must get a 4xx (no 200, no 5xx, no dropped connection), no error may reveal a path outside the
// adapter root, and the server must stay healthy: /health and a valid completion answer after the storm.

import * as fs from "node:fs";
import * as path from "node:path";
import type { PartFn } from "./common.js";
import { FIXTURES } from "./fixtures.js";
import { caseRng } from "./fuzz/mutate.js";
import { startServe } from "./serve_process.js";
import { httpBytes, malformedRequest, rawRequest, SERVE_TEST_LIMITS } from "./serve_requests.js";

const KEY = "reliability-key";
const CONCURRENCY = 16;

export const serveMalformed: PartFn = async (o) => {
  const n = o.quick ? 500 : 10_000;
  const root = path.join(o.workDir, "adapters");
  fs.mkdirSync(root, { recursive: true });
  const srv = await startServe(
    [
      "--api-key",
      KEY,
      "--adapter-root",
      root,
      "--max-body-bytes",
      String(SERVE_TEST_LIMITS.maxBodyBytes),
      "--max-request-tokens",
      String(SERVE_TEST_LIMITS.maxRequestTokens),
      "--quiet",
    ],
    o.workDir,
  );
  const byKind: Record<string, Record<string, number>> = {};
  const failures: string[] = [];
  let failed = 0;
  const hidden = [root, fs.realpathSync(root), o.workDir, FIXTURES];
  const t0 = performance.now();
  try {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        const { bytes, what } = malformedRequest(caseRng(o.seed, "serve_malformed", i), KEY);
        const r = await rawRequest(srv.port, bytes, 30_000);
        const k = (byKind[what] ??= {});
        k[r.status] = (k[r.status] ?? 0) + 1;
        // the server's own folders must never show: the adapter root (real or as given), the model's folder
        const leaks = hidden.some((p) => r.body.includes(p));
        if (!(r.status >= 400 && r.status < 500) || leaks) {
          failed++;
          if (failures.length < 20) failures.push(`#${i} ${what}: ${r.status}${leaks ? " (reveals a path)" : ""} ${r.body.slice(0, 160)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    // still healthy and still working
    const health = await rawRequest(srv.port, httpBytes("GET", "/health", ""), 5_000);
    const ok = await rawRequest(
      srv.port,
      httpBytes("POST", "/v1/completions", JSON.stringify({ prompt: [1, 2, 3], max_tokens: 3 }), { authorization: `Bearer ${KEY}` }),
      30_000,
    );
    const healthy = health.status === 200 && ok.status === 200;
    if (!healthy) failures.push(`after the storm: /health ${health.status}, a valid completion ${ok.status} ${ok.body.slice(0, 100)}`);
    const mem = srv.memory();
    const exit = await srv.stop("SIGTERM");
    const exitOk = exit.code === 0;
    if (!exitOk) failures.push(`exit after SIGTERM: ${exit.code} ${exit.signal}`);
    const statuses: Record<string, number> = {};
    for (const k of Object.values(byKind)) for (const [s, c] of Object.entries(k)) statuses[s] = (statuses[s] ?? 0) + c;
    o.note(
      `serve_malformed: ${n} malformed requests in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)}/s): ${JSON.stringify(statuses)}; ` +
        `then /health ${health.status}, a valid completion ${ok.status}; RSS ${mem.rssMiB.toFixed(0)} MiB (peak ${mem.peakMiB.toFixed(0)}); exit ${exit.code}`,
    );
    const extra = (healthy ? 0 : 1) + (exitOk ? 0 : 1);
    return {
      part: "serve_malformed",
      tried: n + 2,
      held: n - failed + 2 - extra,
      failed: failed + extra,
      detail: {
        statuses,
        byKind,
        seconds: Number(seconds.toFixed(1)),
        healthAfter: health.status,
        validAfter: ok.status,
        failures,
        seed: o.seed,
      },
    };
  } finally {
    await srv.stop("SIGKILL").catch(() => {});
  }
};
