// `nexus score surprise` and `nexus score verifier` end to end on a tiny random model: the CLI's numbers equal
// the library's for the same seed; calibration turns surprise into P(wrong) with score = 1 − max P(wrong).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readJsonl } from "../src/data/jsonl.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { loadCausalLM } from "../src/models/causal_lm.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../src/models/titans.js";
import { Rng } from "../src/nn/rng.js";
import { SurpriseReader } from "../src/rewards/surprise.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function nexus(...args: string[]): string {
  return execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/main.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NEXUS_QUIET: "1" },
  });
}

test("nexus score surprise and verifier", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-score-"));
  const modelDir = path.join(tmp, "m");
  nexus("init", "--preset", "tiny", "--output", modelDir, "--seed", "5");
  const rows = [
    { prompt: "Start at 3. Add 4.\n", steps: ["3 + 4 = 7", "The answer is 7."] },
    { prompt: "Start at 5. Add 1.\n", steps: ["5 + 1 = 9", "The answer is 9."] },
  ];
  const calib = [
    { prompt: "Start at 2. Add 2.\n", steps: ["2 + 2 = 4", "The answer is 4."], labels: [true, true] },
    { prompt: "Start at 6. Add 1.\n", steps: ["6 + 1 = 8", "The answer is 8."], labels: [false, false] },
    { prompt: "Start at 1. Add 1.\n", steps: ["1 + 1 = 2", "The answer is 3."], labels: [true, false] },
  ];
  const data = path.join(tmp, "data.jsonl");
  const cal = path.join(tmp, "cal.jsonl");
  fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join("\n"));
  fs.writeFileSync(cal, calib.map((r) => JSON.stringify(r)).join("\n"));

  // raw surprise equals the library's reader with the same memory seed
  nexus("score", "surprise", "--model", modelDir, "--data", data, "--output", path.join(tmp, "s.jsonl"), "--seed", "9");
  const raw = readJsonl(path.join(tmp, "s.jsonl")) as { surprise: number[] }[];
  const model = await loadCausalLM(modelDir);
  const tok = loadTokenizer(modelDir);
  const reader = new SurpriseReader(
    model,
    tok,
    new NeuralMemory(resolveNeuralMemoryConfig({ dim: model.config.hiddenSize }), { rng: new Rng(9) }),
  );
  rows.forEach((r, i) => {
    const want = reader.read(r.prompt, r.steps).steps;
    assert.equal(raw[i].surprise.length, 2);
    for (const [j, v] of raw[i].surprise.entries()) {
      assert.ok(Math.abs(v - want[j]) <= 1e-6 * Math.max(1, Math.abs(want[j])), `row ${i} step ${j}`);
    }
  });

  // calibrated: probabilities in [0, 1], score = 1 - max P(wrong), AUROC printed first
  const out = nexus("score", "surprise", "--model", modelDir, "--data", data, "--output", path.join(tmp, "c.jsonl"), "--calibration", cal);
  assert.match(out.split("\n")[0], /"calibrationAuroc":/);
  for (const r of readJsonl(path.join(tmp, "c.jsonl")) as { p_wrong: number[]; score: number }[]) {
    assert.equal(r.p_wrong.length, 2);
    for (const p of r.p_wrong) assert.ok(p >= 0 && p <= 1);
    assert.ok(Math.abs(r.score - (1 - Math.max(...r.p_wrong))) < 1e-12);
  }

  // verifier: K chains per solution, a probability per solution
  nexus(
    "score",
    "verifier",
    "--model",
    modelDir,
    "--data",
    data,
    "--output",
    path.join(tmp, "v.jsonl"),
    "--num-samples",
    "2",
    "--max-completion-length",
    "8",
  );
  for (const r of readJsonl(path.join(tmp, "v.jsonl")) as { score: number; chains: unknown[] }[]) {
    assert.equal(r.chains.length, 2);
    assert.ok(r.score > 0 && r.score < 1);
  }
});
