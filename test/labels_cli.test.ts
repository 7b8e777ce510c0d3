// `nexus label mc | omega | judge | consensus` end to end on arithmetic solutions with planted errors: the
// synthetic completer (p = 1) recovers every gold first error (label quality 1 against the gold labels in the
// file), rollout totals are exact, a local OpenAI-compatible judge server (one wrong verdict, one unparseable
// reply) feeds `label judge`, and consensus keeps exactly the rows where MC and judge agree.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  arithmeticSolution,
  corruptSolution,
  generateArithmetic,
  Mulberry32,
  resolveArithmeticConfig,
  stepwiseRow,
} from "../src/data/index.js";

const ROOT = join(import.meta.dirname, "..");
function nexus(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; last: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code, stdout, stderr, last: stdout.trim().split("\n").at(-1) ?? "" }));
  });
}
const readRows = (file: string) =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

let dir = "";
let server: Server;
let url = "";
const f = (name: string) => join(dir, name);
const GOLD_FIRST = [-1, 0, 2, 4]; // per row: gold first error (4 = the answer line)

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "nexus-label-"));
  const cfg = resolveArithmeticConfig({ minSteps: 4, maxSteps: 4, ops: ["+", "-"] });
  const probs = generateArithmetic(cfg, "train", 4, 9);
  const rng = new Mulberry32(1);
  const rows = probs.map((p, i) => {
    const e = GOLD_FIRST[i]!;
    const text = e === -1 ? arithmeticSolution(p) : corruptSolution(p, e === 4 ? "answer" : "slip", rng, e).text;
    return { id: `r${i}`, ...stepwiseRow(p, text) };
  });
  writeFileSync(f("sols.jsonl"), `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  // judge: right on rows 0 and 1, says step 2 (index 1) on row 2 (gold 2), unparseable on row 3
  const byProblem = new Map(rows.map((r, i) => [r.prompt.trim(), i]));
  const replies = ["looks fine. first wrong step: none", "first wrong step: 1", "first wrong step: 2", "no idea"];
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const prompt = (JSON.parse(body) as { messages: { content: string }[] }).messages[0]!.content;
      const problem = /Problem:\n(.*)\n/.exec(prompt)![1]!;
      const i = byProblem.get(problem)!;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content: replies[i] } }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("nexus label", () => {
  test("mc: gold first errors recovered, k·(M-1) rollouts per row, label quality 1 vs gold", async () => {
    const r = await nexus("label", "mc", "--data", f("sols.jsonl"), "--output", f("mc.jsonl"), "--synthetic-p", "1", "--rollouts", "2");
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.last) as { rows: number; rollouts: number; vsGold: { f1: number; firstErrorAgreement: number } };
    assert.equal(s.rows, 4);
    assert.equal(s.rollouts, 4 * 2 * 4); // 5 steps each: 4 prefixes rolled out, the answer step checked
    assert.equal(s.vsGold.f1, 1);
    assert.equal(s.vsGold.firstErrorAgreement, 1);
    const out = readRows(f("mc.jsonl"));
    assert.deepEqual(
      out.map((o) => o.first_error),
      GOLD_FIRST,
    );
    assert.deepEqual(out[2]!.labels, [true, true, false, false, false]);
    assert.deepEqual(out[2]!.mc_values, [1, 1, 0, 0, 0]);
    assert.equal(out[2]!.id, "r2");
  });

  test("omega: same first errors; rollouts k·(2,2,3) for errors at 0,2,4 of 5 steps, 0 for the correct row", async () => {
    const r = await nexus(
      "label",
      "omega",
      "--data",
      f("sols.jsonl"),
      "--output",
      f("omega.jsonl"),
      "--synthetic-p",
      "1",
      "--rollouts",
      "2",
      "--truncate",
    );
    assert.equal(r.code, 0, r.stderr);
    const out = readRows(f("omega.jsonl"));
    assert.deepEqual(
      out.map((o) => [o.first_error, o.rollouts]),
      [
        [-1, 0],
        [0, 4],
        [2, 4],
        [4, 6],
      ],
    );
    assert.deepEqual(out[2]!.completions, (readRows(f("sols.jsonl"))[2]!.completions as string[]).slice(0, 3)); // truncated
  });

  test("judge via an OpenAI-compatible endpoint, then consensus with MC", async () => {
    const j = await nexus(
      "label",
      "judge",
      "--data",
      f("sols.jsonl"),
      "--output",
      f("judge.jsonl"),
      "--judge-url",
      url,
      "--concurrency",
      "2",
    );
    assert.equal(j.code, 0, j.stderr);
    const js = JSON.parse(j.last) as Record<string, unknown>;
    assert.deepEqual([js.total, js.parsed, js.unparseable], [4, 3, 1]);
    assert.deepEqual(
      readRows(f("judge.jsonl")).map((o) => o.first_error),
      [-1, 0, 1],
    );
    const c = await nexus("label", "consensus", "--mc", f("mc.jsonl"), "--judge", f("judge.jsonl"), "--output", f("cons.jsonl"));
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(JSON.parse(c.last), { method: "consensus", total: 4, kept: 2, judgeMissing: 1, disagreed: 1, keepRate: 0.5 });
    const kept = readRows(f("cons.jsonl"));
    assert.deepEqual(
      kept.map((k) => [k.id, k.first_error, k.labels]),
      [
        ["r0", -1, [true, true, true, true, true]],
        ["r1", 0, [false, false, false, false, false]],
      ],
    );
  });

  test("missing generator is an error naming the flag", async () => {
    const r = await nexus("label", "mc", "--data", f("sols.jsonl"), "--output", f("x.jsonl"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--model \(or --synthetic-p/);
  });
});
