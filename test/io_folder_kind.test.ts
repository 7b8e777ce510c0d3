// Folders of the wrong kind: a causal LM given as an ORM or PRM, an ORM given as a PRM, a PRM given as a policy
// are refused with what the folder is and what was expected (no silent random head); and `completions` means
// the steps of ONE solution in `nexus score` as in `nexus prm` / `nexus label` (TRL stepwise).

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { describeFolder, folderInfo } from "../src/io/folder_kind.js";
import { createCausalLM, loadCausalLM, saveCausalLM } from "../src/models/index.js";
import { runNexus } from "./helpers/cli.js";
import { CLI_CONFIG as CFG, saveCliClassifier, saveCliPolicy } from "./helpers/tiny_model.js";

let dir = "";
const f = (name: string) => join(dir, name);
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-kind-"));
  saveCliPolicy(f("lm"), 1);
  saveCliClassifier("orm", f("orm"), 2);
  saveCliClassifier("prm", f("prm"), 3);
  writeFileSync(f("rows.jsonl"), `${JSON.stringify({ prompt: "Start at 1.\n", completions: ["1 + 1 = 2", "The answer is 2."] })}\n`);
  writeFileSync(f("text.jsonl"), `${JSON.stringify({ prompt: "Start at 1.\n", completion: "1 + 1 = 2\nThe answer is 2.\n" })}\n`);
  writeFileSync(f("prompts.jsonl"), `${JSON.stringify({ prompt: "Start at 1.\n" })}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("folder kinds", () => {
  test("config.json says what a folder is", () => {
    assert.equal(describeFolder(folderInfo(f("lm"))), "a causal language model (a policy): LlamaForCausalLM");
    assert.equal(
      describeFolder(folderInfo(f("orm"))),
      "a sequence classifier (an outcome reward model or a value model): LlamaForSequenceClassification, 1 label",
    );
    assert.equal(
      describeFolder(folderInfo(f("prm"))),
      "a token classifier (a process reward model): LlamaForTokenClassification, 2 labels",
    );
    assert.equal(folderInfo(join(dir, "missing")).kind, null);
  });

  test("a config.json that is valid JSON but not an object is a named error, not a TypeError (fuzz case config_json 876)", async () => {
    for (const text of ["null", "[]", "7", '"llama"']) {
      const d = f(`odd-${text.length}`);
      saveCausalLM(createCausalLM(CFG, { seed: 1 }), d);
      writeFileSync(join(d, "config.json"), text);
      assert.equal(folderInfo(d).kind, null);
      await assert.rejects(
        () => loadCausalLM(d),
        (e: Error) => !(e instanceof TypeError) && e.message.includes(join(d, "config.json")),
        `config.json = ${text}`,
      );
    }
  });

  test("score orm with a causal LM refuses instead of scoring with a random head", async () => {
    const r = await runNexus(["score", "orm", "--model", f("lm"), "--data", f("rows.jsonl"), "--output", f("o.jsonl")]);
    assert.equal(r.code, 1);
    assert.ok(
      r.stderr.includes(`${f("lm")} is a causal language model (a policy): LlamaForCausalLM, but an ORM needs a sequence classifier`),
      r.stderr,
    );
    assert.match(r.stderr, /nexus rm --model DIR/);
  });

  test("an ORM as a PRM, a PRM as a policy, an ORM to start a PRM: each names both kinds", async () => {
    const a = await runNexus(["score", "prm", "--model", f("orm"), "--data", f("rows.jsonl"), "--output", f("o.jsonl")]);
    assert.match(a.stderr, /orm is a sequence classifier .*, but a PRM needs a token classifier \(a process reward model\)/);
    const b = await runNexus([
      "search",
      "bon",
      "--model",
      f("prm"),
      "--reward-model",
      f("orm"),
      "--data",
      f("prompts.jsonl"),
      "--output",
      f("o.jsonl"),
    ]);
    assert.match(b.stderr, /prm is a token classifier .*, but a policy needs a causal language model/);
    await assert.rejects(loadCausalLM(f("orm")), /orm is a sequence classifier .*, but a policy needs a causal language model/);
    const c = await runNexus(["prm", "--model", f("orm"), "--data", f("rows.jsonl"), "--output", f("prm_out")]);
    assert.equal(c.code, 1);
    assert.match(
      c.stderr,
      /orm is a sequence classifier .*, but starting a token classifier needs a token classifier .*; or a causal language model/,
    );
  });
});

describe("completions: the steps of one solution everywhere", () => {
  test("score prm reads {prompt, completions} as one solution's steps, like {prompt, completion} split on the separator", async () => {
    const a = await runNexus(["score", "prm", "--model", f("prm"), "--data", f("rows.jsonl"), "--output", f("a.jsonl")]);
    const b = await runNexus(["score", "prm", "--model", f("prm"), "--data", f("text.jsonl"), "--output", f("b.jsonl")]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const [ra] = readFileSync(f("a.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const [rb] = readFileSync(f("b.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(ra.step_scores.length, 2);
    assert.equal(typeof ra.score, "number");
    assert.ok(ra.step_scores.every((x: number, i: number) => Math.abs(x - rb.step_scores[i]) < 1e-6));
    assert.equal(ra.score, Math.min(...ra.step_scores));
  });

  test("a row with two solution columns is refused, naming the formats", async () => {
    writeFileSync(f("both.jsonl"), `${JSON.stringify({ prompt: "p", completions: ["a"], solutions: ["b"] })}\n`);
    const r = await runNexus(["score", "orm", "--model", f("orm"), "--data", f("both.jsonl"), "--output", f("o.jsonl")]);
    assert.match(
      r.stderr,
      /both.jsonl:1: both completions and solutions; a row is \{prompt, completions: \[step, \.\.\.\]\} \(TRL stepwise\)/,
    );
  });
});
