// Held-out evaluation of the offline preference trainers (DPO, KTO, ORPO, CPO): evalRows are scored with the
// trainer's own loss and metrics (eval_loss, eval_rewards/accuracies, eval_rewards/margins, ...). With a
// learning rate of ~0 the policy equals the reference, so DPO's eval loss is ln 2 with zero margins, and every
// trainer's eval loss on its training rows equals its training loss. `nexus dpo --eval-data` logs the same rows,
// and the progress line headlines the reward accuracy; a trainer that cannot evaluate refuses the flag.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { saveCausalLM } from "../src/models/index.js";
import { trainCpo } from "../src/train/cpo.js";
import { trainDpo } from "../src/train/dpo.js";
import { trainKto } from "../src/train/kto.js";
import type { Metrics } from "../src/train/metrics.js";
import { progressMetrics } from "../src/train/metrics.js";
import { trainOrpo } from "../src/train/orpo.js";
import { runNexus } from "./helpers/cli.js";
import { preferenceRows, TOK, tinyModel, unpairedRows } from "./helpers/tiny_preference.js";

const STILL = { learningRate: 1e-12, maxSteps: 1, perDeviceTrainBatchSize: 8, loggingSteps: 1 };
const evalOf = (history: Metrics[]) => history.find((h) => "eval_loss" in h)!;
const trainOf = (history: Metrics[]) => history.find((h) => "loss" in h)!;
const close = (a: unknown, b: unknown, tol = 1e-5) => Math.abs((a as number) - (b as number)) <= tol;

describe("evalRows in the preference trainers", () => {
  test("DPO: policy = reference gives eval loss ln 2, zero margins and accuracy, on held-out pairs", async () => {
    const r = await trainDpo({
      model: tinyModel(1),
      tokenizer: TOK,
      rows: preferenceRows(4, 1),
      evalRows: preferenceRows(6, 2),
      config: STILL,
      quiet: true,
    });
    const ev = evalOf(r.history);
    assert.ok(close(ev.eval_loss, Math.LN2, 1e-6), `eval_loss ${ev.eval_loss}`);
    assert.ok(close(ev["eval_rewards/margins"], 0, 1e-6));
    assert.equal(ev["eval_rewards/accuracies"], 0);
    assert.ok(Number.isFinite(ev["eval_logps/chosen"] as number) && (ev["eval_logps/chosen"] as number) < 0);
  });

  test("DPO with precomputed reference log-probs evaluates too (the eval pairs get theirs)", async () => {
    const r = await trainDpo({
      model: tinyModel(1),
      tokenizer: TOK,
      rows: preferenceRows(4, 1),
      evalRows: preferenceRows(3, 2),
      config: { ...STILL, precomputeRefLogProbs: true },
      quiet: true,
    });
    assert.ok(close(evalOf(r.history).eval_loss, Math.LN2, 1e-6));
  });

  test("KTO, ORPO, CPO: eval loss on the training rows equals the training loss (nothing moved)", async () => {
    const pairs = preferenceRows(4, 3);
    const unpaired = unpairedRows(2, 3);
    const runs = {
      kto: await trainKto({ model: tinyModel(2), tokenizer: TOK, rows: unpaired, evalRows: unpaired, config: STILL, quiet: true }),
      orpo: await trainOrpo({ model: tinyModel(2), tokenizer: TOK, rows: pairs, evalRows: pairs, config: STILL, quiet: true }),
      cpo: await trainCpo({ model: tinyModel(2), tokenizer: TOK, rows: pairs, evalRows: pairs, config: STILL, quiet: true }),
    };
    for (const [name, r] of Object.entries(runs)) {
      const tr = trainOf(r.history);
      const ev = evalOf(r.history);
      assert.ok(close(ev.eval_loss, tr.loss), `${name}: eval ${ev.eval_loss} vs train ${tr.loss}`);
      assert.ok((ev.eval_loss as number) > 0, name);
      for (const k of Object.keys(tr)) {
        if (k.startsWith("rewards/")) assert.ok(close(ev[`eval_${k}`], tr[k]), `${name} ${k}: ${ev[`eval_${k}`]} vs ${tr[k]}`);
      }
    }
  });
});

describe("nexus dpo --eval-data", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nexus-eval-data-"));
    saveCausalLM(tinyModel(4), join(dir, "model"));
    saveTokenizer(TOK, join(dir, "model"));
    const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;
    writeFileSync(join(dir, "train.jsonl"), jsonl(preferenceRows(4, 5)));
    writeFileSync(join(dir, "eval.jsonl"), jsonl(preferenceRows(3, 6)));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("logs eval_* rows in metrics.jsonl; the progress line headlines loss and reward accuracy", async () => {
    const out = join(dir, "out");
    const args = ["dpo", "--model", join(dir, "model"), "--data", join(dir, "train.jsonl"), "--eval-data", join(dir, "eval.jsonl")];
    const r = await runNexus([
      ...args,
      "--output",
      out,
      "--max-steps",
      "2",
      "--eval-steps",
      "1",
      "--logging-steps",
      "1",
      "--learning-rate",
      "1e-3",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const evals = rows.filter((x) => "eval_loss" in x);
    assert.deepEqual(
      evals.map((x) => x.step),
      [1, 2],
    );
    for (const e of evals) assert.ok(e["eval_rewards/accuracies"] >= 0 && e["eval_rewards/accuracies"] <= 1);
    assert.notEqual(evals[0].eval_loss, evals[1].eval_loss); // the policy moved between the two evaluations
    assert.match(r.stderr, /\[dpo\] step \d\/2 loss \S+ rewards\/accuracies \S+ rewards\/margins/);
  });

  test("a malformed eval row names the eval file and line", async () => {
    const bad = join(dir, "bad_eval.jsonl");
    writeFileSync(bad, `${JSON.stringify({ prompt: "ab", chosen: "=ab" })}\n`);
    const args = ["dpo", "--model", join(dir, "model"), "--data", join(dir, "train.jsonl"), "--eval-data", bad];
    const r = await runNexus([...args, "--output", join(dir, "out2"), "--max-steps", "1"]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${bad}:1`), r.stderr);
  });
});

describe("progress line", () => {
  test("headline metrics first (loss, reward, accuracy, margins), learning rate and grad norm last, epoch left out", () => {
    const shown = progressMetrics({
      epoch: 0.5,
      learning_rate: 1e-4,
      "logps/chosen": -3,
      grad_norm: 2,
      "rewards/margins": 0.2,
      "rewards/chosen": 0.1,
      loss: 0.6,
      "rewards/accuracies": 0.75,
      "logps/rejected": -4,
      note: "x",
    }).map(([k]) => k);
    assert.deepEqual(shown, [
      "loss",
      "rewards/accuracies",
      "rewards/margins",
      "logps/chosen",
      "rewards/chosen",
      "grad_norm",
      "learning_rate",
    ]);
    assert.deepEqual(
      progressMetrics({ eval_x: 1, "eval_rewards/accuracies": 0.5, eval_loss: 0.7 }).map(([k]) => k),
      ["eval_loss", "eval_rewards/accuracies", "eval_x"],
    );
  });
});
