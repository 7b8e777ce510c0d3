// The short versions of the reliability parts for fuzzing, malformed requests and contention (what `npm run
// reliability -- --quick --only fuzz,serve_malformed,contention` runs): each must try what it promises and hold
// on every attempt. The full versions (10,000+ fuzz cases, 10,000 malformed requests, PyTorch as the contention
// peer) are `npm run reliability`. serve_load's short version is not here: its /health bar (100 ms) does not hold
// on a loaded 2-core machine during a burst of connections (see the README); test/serve_guard.test.ts checks the
// server's limits, 429s, disconnects and SIGTERM.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import type { PartFn } from "../reliability/common.js";
import { contention } from "../reliability/contention.js";
import { fuzz } from "../reliability/fuzz.js";
import { serveMalformed } from "../reliability/serve_malformed.js";

const PARTS: [string, PartFn, number][] = [
  ["fuzz", fuzz, 300],
  ["serve_malformed", serveMalformed, 500],
  ["contention", contention, 1],
];

for (const [name, fn, minTried] of PARTS) {
  test(`reliability part ${name} (quick)`, async () => {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `nexus-rel-${name}-`));
    try {
      const r = await fn({ quick: true, seed: 0, workDir, note: () => {} });
      assert.equal(r.part, name);
      assert.ok(r.tried >= minTried, `${name} tried only ${r.tried}`);
      assert.equal(r.held + r.failed, r.tried);
      assert.equal(r.failed, 0, `${name}: ${JSON.stringify(r.detail).slice(0, 1500)}`);
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
}
