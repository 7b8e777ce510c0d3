// The lab's plumbing on the `tiny` profile: every stage runs, results.json is identical across two runs
// with the same seed (apart from timing), an interrupted lab resumes from its last finished stage, the
// claims are present with honest "not measured" entries, and the report renders in headless Chromium.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { deterministicResults } from "../src/lab/deterministic.js";
import { LAB_STAGES, runLab, runLabSeeds } from "../src/lab/lab.js";

const run = promisify(execFile);
const CHROMIUM = process.env.NEXUS_CHROMIUM ?? "/usr/bin/chromium";

const deterministicPart = (path: string) => deterministicResults(readFileSync(path, "utf8"));

const REQUIRED_CLAIMS = [
  "grpo_beats_sft",
  "gold_prm_beats_mc_prm",
  "prm_search_beats_majority",
  "grpo_less_memory_than_ppo",
  "dpo_beats_sft",
];

test("tiny lab: deterministic results, resume, claims and a report that renders", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-lab-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = await runLab({ profile: "tiny", seed: 3, name: "a", runsDir: dir, quiet: true });
  const b = await runLab({ profile: "tiny", seed: 3, name: "b", runsDir: dir, quiet: true });
  assert.deepEqual(deterministicPart(join(a.dir, "results.json")), deterministicPart(join(b.dir, "results.json")));
  assert.deepEqual(
    Object.keys(a.stages),
    LAB_STAGES.map((s) => s.name),
  );

  // claims: every required id present; a verdict only where the value was measured
  for (const id of REQUIRED_CLAIMS) {
    const c = a.claims.find((x) => x.id === id);
    assert.ok(c, `claim ${id} missing`);
    if (c.holds === null) assert.equal(c.measured, null);
    else assert.equal(typeof c.measured, "string");
  }
  // every claim carries a verdict word; measured ones a difference and a 95% interval around it
  for (const c of a.claims) {
    assert.ok(["holds", "contradicted", "not shown", "not measured"].includes(c.verdict ?? ""), `${c.id}: ${c.verdict}`);
    if (c.verdict !== "not measured" && c.interval) assert.ok(c.interval[0] <= (c.difference as number) + 1e-9);
  }
  // measured memory at the same rollout batch: PPO holds a value model (and a reference) GRPO without a reference does not
  const probe = (a.stages.align as { memoryProbe: { methods: Record<string, { peakBytes: number; peakRssBytes: number }> } }).memoryProbe;
  assert.ok(probe.methods.grpo.peakBytes > 0 && probe.methods.grpo.peakRssBytes > 0);
  assert.ok(probe.methods.grpo.peakBytes < probe.methods.ppo.peakBytes, JSON.stringify(probe.methods));
  // search: per-strategy budgets are counted, equal across best-of-N strategies at one N
  const search = a.stages.search as { budget: Record<string, Record<string, { completions: number; tokens: number }>> };
  assert.deepEqual(search.budget.random["4"], search.budget.prm_bon_min["4"]);
  assert.deepEqual(search.budget.confidence_bon["4"], search.budget.prm_bon_min["4"]);
  assert.ok(search.budget.random["4"].completions === 4 && search.budget.random["4"].tokens > 0);
  // Titans surprise read from the policy's hidden states: finite and of one order of magnitude for every held-out
  // step (without the memory's input norm and step bound this run read up to 1.5e11, and NaN on longer solutions)
  const surprise = (a.stages.search as { titans: { perStep: { surprise: number[] } } }).titans.perStep.surprise;
  const sorted = [...surprise].sort((x, y) => x - y);
  assert.ok(sorted.length > 0 && sorted.every(Number.isFinite), `titans surprise ${surprise}`);
  assert.ok(sorted[sorted.length - 1]! <= 10 * sorted[sorted.length >> 1]!, `titans surprise ${surprise}`);
  // tree searches run up to the profile's tree budget (tiny: N = 1), with budgets of their own
  assert.deepEqual(Object.keys(search.budget.prm_beam), ["1"]);
  assert.ok(!("4" in search.budget.mcts) && search.budget.mcts["1"].completions > 0);
  // verifiers ranked on the largest N's shared samples: within a problem and across problems
  const vr = (a.stages.search as { verifierRanking: { n: number; solutions: number; withinProblemAuroc: Record<string, number | null> } })
    .verifierRanking;
  assert.equal(vr.n, 4);
  assert.equal(vr.solutions, 4 * 4);
  for (const k of ["prm_min", "prm_product", "prm_last", "confidence"]) {
    const v = vr.withinProblemAuroc[k];
    assert.ok(v === null || Number.isNaN(v) || (v >= 0 && v <= 1), `${k}: ${v}`);
  }

  // resume: drop the last stage's record; only that stage runs again and the results are unchanged
  const lastStage = LAB_STAGES[LAB_STAGES.length - 1].name;
  const sftMtime = statSync(join(a.dir, "sft", "result.json")).mtimeMs;
  rmSync(join(a.dir, lastStage, "result.json"));
  await runLab({ profile: "tiny", seed: 3, name: "a", runsDir: dir, quiet: true });
  assert.equal(statSync(join(a.dir, "sft", "result.json")).mtimeMs, sftMtime, "finished stages are not rerun");
  assert.deepEqual(deterministicPart(join(a.dir, "results.json")), deterministicPart(join(b.dir, "results.json")));

  // a different seed is refused on an existing run folder rather than mixed in
  await assert.rejects(runLab({ profile: "tiny", seed: 4, name: "a", runsDir: dir, quiet: true }), /seed 3/);

  await t.test("report renders in headless Chromium", { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} not found` }, async () => {
    const html = join(a.dir, "report.html");
    const png = join(dir, "report.png");
    const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,3000"];
    const dom = await run(CHROMIUM, [...flags, "--dump-dom", `file://${html}`], { maxBuffer: 32 * 2 ** 20 });
    assert.ok((dom.stdout.match(/<svg/g) ?? []).length >= 5, "charts rendered");
    assert.ok((dom.stdout.match(/<table/g) ?? []).length >= 5, "tables rendered");
    for (const id of REQUIRED_CLAIMS) assert.ok(dom.stdout.includes(id), `claim ${id} in the page`);
    const shot = await run(CHROMIUM, [...flags, `--screenshot=${png}`, "--enable-logging=stderr", "--v=0", `file://${html}`]);
    assert.ok(!/Uncaught|:CONSOLE/.test(shot.stderr), "no console errors");
    const bytes = readFileSync(png);
    assert.equal(bytes.readUInt32BE(16), 1200, "screenshot width");
    assert.ok(bytes.length > 20_000, "screenshot is not blank");
  });
});

test("lab --seeds: each seed in its own folder, claims over all seeds, repeated seeds refused", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-lab-seeds-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const m = await runLabSeeds({ profile: "tiny", seeds: [1, 2], runsDir: dir, until: "sft", quiet: true });
  assert.deepEqual(Object.keys(m.runs), ["1", "2"]);
  for (const s of ["1", "2"]) assert.ok(existsSync(join(m.runs[s]!, "results.json")));
  const saved = JSON.parse(readFileSync(join(m.dir, "results.json"), "utf8"));
  assert.deepEqual(saved.seeds, [1, 2]);
  // only SFT ran: every comparative claim is honestly not measured
  assert.ok(saved.claims.every((c: { verdict: string }) => c.verdict === "not measured"));
  assert.ok(existsSync(join(m.dir, "report.html")));
  await assert.rejects(runLabSeeds({ profile: "tiny", seeds: [1, 1], runsDir: dir, until: "sft", quiet: true }), /repeats/);
});
