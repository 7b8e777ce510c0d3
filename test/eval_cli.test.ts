// `nexus eval processbench` and `nexus eval bon` end to end on hand-made files: the LAST stdout line is exact JSON.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

const ROOT = join(import.meta.dirname, "..");
function nexus(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, last: r.stdout.trim().split("\n").at(-1) };
}
const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

let dir = "";
const f = (name: string) => join(dir, name);
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-eval-"));
  const steps = (n: number) => Array.from({ length: n }, (_, i) => `step ${i}`);
  writeFileSync(
    f("fit.jsonl"),
    jsonl([
      { id: "A", problem: "p", steps: steps(3), label: -1, scores: [0.9, 0.8, 0.7] },
      { id: "B", problem: "p", steps: steps(3), label: 1, scores: [0.9, 0.3, 0.2] },
      { id: "C", problem: "p", steps: steps(3), label: 2, scores: [0.9, 0.6, 0.55] },
      { id: "D", problem: "p", steps: steps(3), label: -1, scores: [0.95, 0.65, 0.9] },
    ]),
  );
  writeFileSync(
    f("apply.jsonl"),
    jsonl([
      { id: "E", problem: "p", steps: steps(2), label: 0, scores: [0.58, 0.9] },
      { id: "F", problem: "p", steps: steps(2), label: -1, scores: [0.6, 0.7] },
    ]),
  );
  const pred = [-1, 2, -1, 1, 1, -1];
  const gold = [-1, -1, -1, 1, 2, 0];
  writeFileSync(
    f("pred.jsonl"),
    jsonl(gold.map((label, i) => ({ id: String(i), problem: "p", steps: steps(3), label, prediction: pred[i] }))),
  );
  writeFileSync(f("bad.jsonl"), jsonl([{ id: "x", label: 0 }]));
  writeFileSync(
    f("bon.jsonl"),
    jsonl([
      {
        candidates: [
          { score: 0.9, correct: false, answer: "3" },
          { score: 0.9, correct: true, answer: "5" },
          { score: 0.1, correct: true, answer: "5" },
        ],
      },
      { scores: [0.2, 0.7, 0.3], correct: [false, true, false], answers: ["1", "2", "1"] },
    ]),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("nexus eval processbench", () => {
  test("--threshold 0.5: accErr 1/2, accCor 1, F1 2/3", () => {
    const r = nexus("eval", "processbench", "--data", f("fit.jsonl"), "--threshold", "0.5");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.last, '{"f1":0.6666666666666666,"accErr":0.5,"accCor":1}');
  });

  test("no threshold: fitted on the data itself (0.575), F1 1", () => {
    const r = nexus("eval", "processbench", "--data", f("fit.jsonl"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.last, '{"f1":1,"accErr":1,"accCor":1}');
    assert.match(r.stdout, /"threshold":0\.575/);
  });

  test("--fit-threshold-on another split: the fitted 0.575 misses row E", () => {
    const r = nexus("eval", "processbench", "--data", f("apply.jsonl"), "--fit-threshold-on", f("fit.jsonl"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.last, '{"f1":0,"accErr":0,"accCor":1}');
  });

  test("prediction rows: F1 4/9", () => {
    const r = nexus("eval", "processbench", "--data", f("pred.jsonl"));
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.last!) as Record<string, number>;
    assert.deepEqual(Object.keys(m), ["f1", "accErr", "accCor"]);
    assert.ok(Math.abs(m.f1! - 4 / 9) < 1e-15 && Math.abs(m.accErr! - 1 / 3) < 1e-15 && Math.abs(m.accCor! - 2 / 3) < 1e-15);
  });

  test("a row with neither scores nor prediction is reported with file:line", () => {
    const r = nexus("eval", "processbench", "--data", f("bad.jsonl"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.jsonl:1: a row needs per-step scores or a prediction/);
  });
});

describe("nexus eval bon", () => {
  test("best-of-N, pass@1, pass@N, maj@N", () => {
    const r = nexus("eval", "bon", "--data", f("bon.jsonl"));
    assert.equal(r.code, 0, r.stderr);
    // pass@1 = mean(2/3, 1/3) = 1/2; pass@3 = 1 for both
    const m = JSON.parse(r.last!) as Record<string, number>;
    assert.ok(Math.abs(m.passAt1! - 0.5) < 1e-15);
    assert.deepEqual({ ...m, passAt1: 0.5 }, { problems: 2, n: 3, bestOfN: 0.5, passAt1: 0.5, passAtN: 1, majAtN: 0.5 });
    const r1 = nexus("eval", "bon", "--data", f("bon.jsonl"), "--n", "1");
    assert.equal(r1.last, '{"problems":2,"n":1,"bestOfN":0,"passAt1":0,"passAtN":0,"majAtN":0}');
  });
});
