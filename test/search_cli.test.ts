// `nexus score orm|prm` and `nexus search` end to end on tiny random models (spawning the CLI): scores equal the
// library scorers on the same rows, search writes one row per prompt with a budget matching its N and seed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { defaultCharTokenizer } from "../src/cli/init.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { SequenceClassifier, saveClassifier, TokenClassifier } from "../src/models/heads.js";
import { createCausalLM, saveCausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import { OrmScorer, PrmScorer } from "../src/rewards/scoring.js";

const ROOT = join(import.meta.dirname, "..");
function nexus(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const readRows = (f: string) =>
  readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

const TOK = defaultCharTokenizer();
const CFG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
  pad_token_id: 0,
});
const prm = new TokenClassifier(CFG, { rng: new Rng(4) });
const orm = new SequenceClassifier(CFG, { rng: new Rng(5) });
let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-search-cli-"));
  for (const [name, m] of [
    ["prm", prm],
    ["orm", orm],
  ] as const) {
    saveClassifier(m, join(dir, name));
    saveTokenizer(TOK, join(dir, name));
  }
  saveCausalLM(createCausalLM(CFG, { seed: 6 }), join(dir, "policy"));
  saveTokenizer(TOK, join(dir, "policy"));
  writeFileSync(
    join(dir, "rows.jsonl"),
    `${JSON.stringify({ prompt: "Start at 2. Add 3.\n", steps: ["2 + 3 = 5", "The answer is 5."] })}\n${JSON.stringify({
      prompt: "Start at 1.\n",
      solutions: ["The answer is 1.\n", "1 + 1 = 2\nThe answer is 2.\n"],
    })}\n`,
  );
  writeFileSync(join(dir, "prompts.jsonl"), `${JSON.stringify({ prompt: "Start at 2. Add 3.\n", answer: 5 })}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("nexus score", () => {
  test("prm: per-step scores and the aggregate equal PrmScorer's", async () => {
    const out = join(dir, "prm_out.jsonl");
    const r = nexus(
      "score",
      "prm",
      "--model",
      join(dir, "prm"),
      "--data",
      join(dir, "rows.jsonl"),
      "--output",
      out,
      "--aggregation",
      "min",
    );
    assert.equal(r.code, 0, r.stderr);
    const [a, b] = readRows(out);
    const s = new PrmScorer(prm, TOK);
    const want = await s.scoreSteps(a.prompt, a.steps);
    a.step_scores.forEach((x: number, i: number) => {
      assert.ok(Math.abs(x - want[i]) < 1e-5);
    });
    assert.ok(Math.abs(a.score - Math.min(...want)) < 1e-5);
    assert.equal(b.step_scores.length, 2);
    assert.equal(b.step_scores[1].length, 2);
    const wantB = await s.scoreSteps(b.prompt, ["1 + 1 = 2", "The answer is 2."]);
    assert.ok(Math.abs(b.scores[1] - Math.min(...wantB)) < 1e-5);
  });

  test("orm: one score per solution, equal to OrmScorer's", async () => {
    const out = join(dir, "orm_out.jsonl");
    const r = nexus("score", "orm", "--model", join(dir, "orm"), "--data", join(dir, "rows.jsonl"), "--output", out);
    assert.equal(r.code, 0, r.stderr);
    const [a, b] = readRows(out);
    const s = new OrmScorer(orm, TOK);
    assert.ok(Math.abs(a.score - (await s.scoreSolution(a.prompt, a.steps))) < 1e-5);
    assert.equal(b.scores.length, 2);
    assert.ok(Math.abs(b.scores[0] - (await s.scoreSolution(b.prompt, ["The answer is 1."]))) < 1e-5);
  });
});

describe("nexus search", () => {
  test("beam with a PRM: one row per prompt, budget = N first steps + at most N per later round", () => {
    const out = join(dir, "beam_out.jsonl");
    const args = ["search", "beam", "--model", join(dir, "policy"), "--prm-model", join(dir, "prm"), "--data", join(dir, "prompts.jsonl")];
    const r = nexus(...args, "--output", out, "--n", "4", "--width", "2", "--max-rounds", "2", "--max-step-length", "4", "--seed", "1");
    assert.equal(r.code, 0, r.stderr);
    const [row] = readRows(out);
    assert.equal(row.prompt, "Start at 2. Add 3.\n");
    assert.equal(row.answer, 5);
    assert.equal(typeof row.correct, "boolean");
    assert.ok(row.budget.stepsGenerated >= 4 && row.budget.stepsGenerated <= 8, JSON.stringify(row.budget));
    assert.equal(row.budget.scorerCalls, row.budget.stepsGenerated);
    assert.ok(row.steps.length >= 1 && row.steps.length <= 2);
  });

  test("bon needs a reward model; unknown selection is an error naming the options", () => {
    const base = ["search", "bon", "--model", join(dir, "policy"), "--data", join(dir, "prompts.jsonl"), "--output", join(dir, "x.jsonl")];
    const r = nexus(...base);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /needs --prm-model or --reward-model/);
    const r2 = nexus(...base, "--reward-model", join(dir, "orm"), "--selection", "nope");
    assert.match(r2.stderr, /--selection.*'nope' is not one of best, weighted, majority/);
  });
});
