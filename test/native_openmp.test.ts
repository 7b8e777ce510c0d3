// The cpu backend loads libgomp with a passive wait policy unless the user chose one: its workers sleep after each
// parallel region instead of spinning against the JS thread (on a busy 2-core machine, W1 decode ran ~10x slower
// with libgomp's default spin). Checked in a child process with OMP_DISPLAY_ENV=verbose, so the value is libgomp's
// own: its spin count (0 passive, 300000 by default, 3e10 active) tells the policies apart.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { loadCpuAddon } from "../src/backend/cpu.js";

const CPU = new URL("../src/backend/cpu.ts", import.meta.url).href;

/** libgomp's GOMP_SPINCOUNT (as it prints it at load) in a child that loads the addon with `env` added. */
function spinCountWith(env: Record<string, string>): string {
  const src = `import(${JSON.stringify(CPU)}).then((m) => { if (m.loadCpuAddon() === null) throw new Error(m.cpuUnavailableReason()); })`;
  const base = { ...process.env };
  delete base.OMP_WAIT_POLICY;
  delete base.GOMP_SPINCOUNT;
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", src], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...base, OMP_DISPLAY_ENV: "verbose", ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  const m = /GOMP_SPINCOUNT = '(\d+)'/.exec(r.stdout + r.stderr);
  assert.ok(m !== null, `libgomp printed no GOMP_SPINCOUNT:\n${r.stdout}${r.stderr}`);
  return m[1];
}

test("libgomp waits passively by default; a policy the user set is kept", {
  skip: loadCpuAddon() === null && "cpu addon not built",
}, () => {
  assert.equal(spinCountWith({}), "0");
  assert.equal(spinCountWith({ OMP_WAIT_POLICY: "active" }), "30000000000");
  assert.equal(spinCountWith({ GOMP_SPINCOUNT: "100000" }), "100000");
});
