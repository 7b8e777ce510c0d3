// `nexus eval bon` reads what `nexus search bon` writes (candidates with answer, score, correct), its metrics equal
// those recomputed from the search output, and candidates given as text are judged with the same answer
// extractor (--answer-pattern) as search and the rewards. In process, on a tiny random policy and ORM.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runNexus } from "./helpers/cli.js";
import { saveCliClassifier, saveCliPolicy } from "./helpers/tiny_model.js";

const rows = (f: string) =>
  readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-search-eval-"));
  saveCliPolicy(join(dir, "policy"), 3);
  saveCliClassifier("orm", join(dir, "orm"), 5);
  const prompts = [1, 2, 3, 4, 5, 6].map((a) => JSON.stringify({ prompt: `Start at ${a}.\n`, answer: a % 10 }));
  writeFileSync(join(dir, "prompts.jsonl"), `${prompts.join("\n")}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("search bon → eval bon", () => {
  test("eval's metrics equal those recomputed from the candidates search wrote", async () => {
    const out = join(dir, "bon.jsonl");
    // a single digit is an answer, so a random policy sometimes gets one right
    const args = [
      "--model",
      join(dir, "policy"),
      "--reward-model",
      join(dir, "orm"),
      "--data",
      join(dir, "prompts.jsonl"),
      "--output",
      out,
    ];
    const s = await runNexus([
      "search",
      "bon",
      ...args,
      "--n",
      "4",
      "--max-completion-length",
      "12",
      "--answer-pattern",
      "(\\d)",
      "--seed",
      "1",
    ]);
    assert.equal(s.code, 0, s.stderr);
    const written = rows(out) as { candidates: { score: number; correct: boolean; answer: string | null }[]; correct: boolean }[];
    assert.equal(written.length, 6);
    for (const r of written) {
      assert.equal(r.candidates.length, 4);
      for (const c of r.candidates) assert.equal(typeof c.correct, "boolean");
    }
    const e = await runNexus(["eval", "bon", "--data", out]);
    assert.equal(e.code, 0, e.stderr);
    const m = JSON.parse(e.stdout.trim().split("\n").at(-1)!);
    const best = (r: (typeof written)[number]) => r.candidates.reduce((a, b) => (b.score > a.score ? b : a));
    const mean = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;
    assert.equal(m.problems, 6);
    assert.equal(m.n, 4);
    assert.ok(Math.abs(m.bestOfN - mean(written.map((r) => best(r).correct))) < 1e-12);
    assert.ok(Math.abs(m.passAtN - mean(written.map((r) => r.candidates.some((c) => c.correct)))) < 1e-12);
    const perCandidate = written.flatMap((r) => r.candidates.map((c) => c.correct));
    assert.ok(Math.abs(m.passAt1 - mean(perCandidate)) < 1e-12);
  });

  test("candidates given as text are judged by --answer-pattern against the row's gold answer", async () => {
    const f = join(dir, "texts.jsonl");
    writeFileSync(
      f,
      [
        {
          answer: 7,
          candidates: [
            { score: 0.9, text: "RESULT=3 then 7" },
            { score: 0.1, text: "RESULT=7" },
            { score: 0.3, text: "RESULT=7" },
          ],
        },
        {
          answer: 2,
          candidates: [
            { score: 0.2, text: "RESULT=5" },
            { score: 0.8, text: "RESULT=2" },
            { score: 0.5, steps: ["x", "RESULT=5"] },
          ],
        },
      ]
        .map((r) => JSON.stringify(r))
        .join("\n"),
    );
    const withPattern = JSON.parse((await runNexus(["eval", "bon", "--data", f, "--answer-pattern", "RESULT=(\\d+)"])).stdout);
    assert.ok(Math.abs(withPattern.passAt1 - 0.5) < 1e-12); // (2/3 + 1/3) / 2
    assert.deepEqual({ ...withPattern, passAt1: 0.5 }, { problems: 2, n: 3, bestOfN: 0.5, passAt1: 0.5, passAtN: 1, majAtN: 0.5 });
    // by default the last number counts: "RESULT=3 then 7" is 7
    const byDefault = JSON.parse((await runNexus(["eval", "bon", "--data", f])).stdout);
    assert.equal(byDefault.bestOfN, 1);
    const noGold = join(dir, "nogold.jsonl");
    writeFileSync(noGold, `${JSON.stringify({ candidates: [{ score: 1, text: "7" }] })}\n`);
    const r = await runNexus(["eval", "bon", "--data", noGold]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nogold.jsonl:1: candidate 1 has no "correct"; give it, or the candidate's "text".*gold "answer"/);
  });
});
