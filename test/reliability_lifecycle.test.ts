// The short versions of the run-lifecycle parts of `npm run reliability` (kill_resume, nonfinite, disk,
// determinism): the same checks as the full runs with fewer attempts. Each part must try what it promises and
// hold every time.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PartFn, PartResult } from "../reliability/common.js";
import { determinism } from "../reliability/determinism.js";
import { disk } from "../reliability/disk.js";
import { killResume } from "../reliability/kill_resume.js";
import { nonfinite } from "../reliability/nonfinite.js";

async function quick(fn: PartFn): Promise<PartResult> {
  const workDir = mkdtempSync(join(tmpdir(), "nexus-rel-test-"));
  try {
    return await fn({ quick: true, seed: 1, workDir, note: () => {} });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

function assertHeld(r: PartResult, minTried: number): void {
  assert.ok(r.tried >= minTried, `${r.part}: only ${r.tried} attempts (${JSON.stringify(r.detail)})`);
  assert.equal(r.held + r.failed, r.tried);
  assert.equal(r.failed, 0, `${r.part}: ${JSON.stringify(r.detail)}`);
}

describe("reliability parts of the run lifecycle (quick)", () => {
  test("kill_resume: SIGKILLed SFT and GRPO runs resume to the uninterrupted result", async () => {
    const r = await quick(killResume);
    assertHeld(r, 4);
    const targets = r.detail.targets as Record<string, { kills: number; equal: boolean }>;
    assert.ok(targets.sft.kills + targets.grpo.kills >= 2, JSON.stringify(targets));
    assert.ok(targets.sft.equal && targets.grpo.equal);
  });

  test("nonfinite: lr 1e30, injected NaN/Inf (stop and skip), collapse", async () => {
    assertHeld(await quick(nonfinite), 6);
  });

  test("disk: a file as output, a path under a file, injected ENOSPC/EIO at save time", async () => {
    assertHeld(await quick(disk), 4);
  });

  test("determinism: two runs of SFT and GRPO are bit-identical", async () => {
    assertHeld(await quick(determinism), 2);
  });
});
