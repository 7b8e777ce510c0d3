// The lab's LLM judge (src/lab/stages/judge.ts): a perfect checker's reply parses back to the exact first
// error; the local judge starts from the policy's weights (same logits on the policy's vocabulary); on the tiny
// profile the judge stage trains it and its validation accuracy is what the saved judge answers through
// judgeLabels; with `nexus lab --judge-url` the judge and labels stages ask an OpenAI-compatible server
// (scripted here: the request it gets is checked) and its parsed labels land in the labels stage's output.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkArithmetic, corruptSolution, NOISE_KINDS } from "../src/data/tasks/arithmetic.js";
import { Mulberry32 } from "../src/data/tasks/rng.js";
import { joinSteps, splitSteps } from "../src/data/tasks/task.js";
import { labTokenizer, newPolicy, problemsOf } from "../src/lab/common.js";
import { runLab } from "../src/lab/lab.js";
import { LAB_PROFILES } from "../src/lab/profiles.js";
import { judgeFromPolicy, judgeReply, judgeTokenizer, judgeValidationItems, LAB_JUDGE_TEMPLATE } from "../src/lab/stages/judge.js";
import { loadCausalLM } from "../src/models/causal_lm.js";
import { judgeLabels, judgePrompt, localJudge, parseJudgeReply } from "../src/rewards/labels/judge.js";
import { fromArray, noGrad } from "../src/tensor/tensor.js";
import { runNexus } from "./helpers/cli.js";

test("a perfect checker's reply names the exact first error and fits the judge's vocabulary", () => {
  const p = {
    start: 3,
    steps: [
      { op: "+" as const, operand: 6 },
      { op: "*" as const, operand: 2 },
    ],
  };
  assert.equal(judgeReply(p, ["3 + 6 = 9", "9 * 2 = 18", "The answer is 18."]), "first wrong step: none");
  assert.equal(judgeReply(p, ["3 + 6 = 9", "9 * 2 = 17", "The answer is 17."]), "first wrong step: 2");
  assert.equal(judgeReply(p, ["3 + 6 = 9", "9 * 2 = 18", "The answer is 19."]), "first wrong step: 3");
  const tok = judgeTokenizer();
  const rng = new Mulberry32(7);
  // longer, harder problems than any profile's: up to 4 steps, 2-digit operands, values to 1000
  const hard = { ...LAB_PROFILES.quick, task: { minSteps: 2, maxSteps: 4, operandDigits: 2, mulDigits: 1, maxValue: 1000 } };
  for (const problem of problemsOf(hard, "train", 1).slice(0, 100)) {
    for (const kind of NOISE_KINDS) {
      const steps = splitSteps(corruptSolution(problem, kind, rng).text);
      const reply = judgeReply(problem, steps);
      const want = checkArithmetic(problem, joinSteps(steps)).firstErrorIndex;
      assert.equal(parseJudgeReply(reply, steps.length), want, reply);
      const text = judgePrompt("Start at 1.", steps, LAB_JUDGE_TEMPLATE) + reply;
      assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
    }
  }
});

test("the local judge starts from the policy: same logits on the policy's vocabulary", () => {
  const policyTok = labTokenizer();
  const tok = judgeTokenizer();
  assert.ok(tok.vocabSize > policyTok.vocabSize);
  const policy = newPolicy(LAB_PROFILES.tiny, policyTok, 1);
  const judge = judgeFromPolicy(policy, policyTok, tok, 2);
  const ids = policyTok.encode("Start at 4. Add 5.\n4 + 5 = 9\n");
  const logits = (m: typeof policy) =>
    noGrad(() => m.forward({ inputIds: fromArray(Int32Array.from(ids), [1, ids.length]) }).logits.toArray()) as number[][][];
  const a = logits(policy)[0]!;
  const b = logits(judge)[0]!;
  for (let t = 0; t < ids.length; t++)
    for (let v = 0; v < policyTok.vocabSize; v++) assert.ok(Math.abs(a[t]![v]! - b[t]![v]!) < 1e-5, `position ${t} token ${v}`);
  assert.throws(() => judgeFromPolicy(policy, tok, policyTok, 2), /must start with the policy's/);
});

test("tiny profile: the judge stage trains the local judge and reports what it answers on validation problems", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-lab-judge-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runLab({ profile: "tiny", seed: 2, name: "local", runsDir: dir, quiet: true, until: "judge" });
  const j = r.stages.judge as { source: string; trainRows: number; validation: Record<string, number> };
  assert.equal(j.source, "local");
  assert.equal(j.trainRows, LAB_PROFILES.tiny.judge.examples);
  const items = judgeValidationItems(LAB_PROFILES.tiny, 2);
  assert.equal(j.validation.solutions, items.length);
  // the saved judge, asked through judgeLabels, gives exactly the reported figures
  const model = await loadCausalLM(join(r.dir, "judge", "model"));
  const { labels, stats } = await judgeLabels(localJudge(model, judgeTokenizer(), { maxNewTokens: 128 }), items, {
    template: LAB_JUDGE_TEMPLATE,
  });
  assert.equal(j.validation.parsed, stats.parsed);
  assert.equal(j.validation.unparseable, stats.unparseable);
  const right = labels.filter((l, i) => l.firstError === items[i]!.firstError).length;
  assert.equal(j.validation.firstErrorAccuracy, Math.round((1e4 * right) / items.length) / 1e4);
});

test("nexus lab --judge-url: the judge and labels stages ask the server and keep its parsed labels", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-lab-remote-"));
  const requests: { url: string; headers: IncomingHttpHeaders; body: Record<string, unknown> }[] = [];
  // scripted judge: its verdict depends on the number of steps and the problem's start (1 step: step 1; 2: no
  // verdict; 3 or more: none for an even start, step 2 for an odd one)
  const startOf = (text: string) => Number(/Start at (\d+)\./.exec(text)![1]);
  const replyFor = (steps: number, start: number) =>
    steps === 1
      ? "first wrong step: 1"
      : steps === 2
        ? "I cannot tell."
        : start % 2 === 0
          ? "All good.\nfirst wrong step: none"
          : "The second step is off.\nfirst wrong step: 2";
  const want = (steps: number, start: number) => (steps === 1 ? 0 : steps === 2 ? null : start % 2 === 0 ? -1 : 1);
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const parsed = JSON.parse(body) as { messages: { content: string }[] };
      requests.push({ url: req.url ?? "", headers: req.headers, body: parsed });
      const steps = (parsed.messages[0]!.content.match(/^Step \d+: /gm) ?? []).length;
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: replyFor(steps, startOf(parsed.messages[0]!.content)) },
              finish_reason: "stop",
            },
          ],
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const key = process.env.OPENAI_API_KEY;
  process.env.OPENAI_API_KEY = "sk-test";
  t.after(() => {
    server.close();
    if (key === undefined) delete process.env.OPENAI_API_KEY;
    else process.env.OPENAI_API_KEY = key;
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const args = ["lab", "--profile", "tiny", "--seed", "1", "--runs-dir", dir, "--name", "remote", "--until", "labels", "--quiet"];
  const out = await runNexus([...args, "--judge-url", url, "--judge-model", "judge-x"]);
  assert.equal(out.code, 0, out.stderr);

  const results = JSON.parse(readFileSync(join(dir, "remote", "results.json"), "utf8"));
  const samples = readFileSync(join(dir, "remote", "labels", "samples.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map(
      (l) =>
        JSON.parse(l) as {
          prompt: string;
          steps: string[];
          judgeFirstError: number | null;
          judgeReply: string;
          mcFirstError: number;
          judge: boolean[] | null;
        },
    );
  const items = judgeValidationItems(LAB_PROFILES.tiny, 1);
  // every judge call went to the server: the validation solutions, then every labelled sample
  assert.equal(requests.length, items.length + samples.length);
  for (const r of requests) {
    assert.equal(r.url, "/v1/chat/completions");
    assert.equal(r.headers.authorization, "Bearer sk-test");
    assert.equal(r.body.model, "judge-x");
    assert.equal(r.body.temperature, 0);
    const msgs = r.body.messages as { role: string; content: string }[];
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0]!.role, "user");
    assert.match(msgs[0]!.content, /^The following is a math problem[\s\S]*Problem:\nStart at \d+\.[\s\S]*Solution:\nStep 1: /);
  }

  const judgeStage = results.stages.judge;
  assert.deepEqual([judgeStage.source, judgeStage.url, judgeStage.model], ["remote", url, "judge-x"]);
  assert.equal(judgeStage.trainRows, undefined, "nothing is trained with --judge-url");
  const valRight = items.filter((x) => want(x.steps.length, startOf(x.prompt)) === x.firstError).length;
  assert.equal(judgeStage.validation.firstErrorAccuracy, Math.round((1e4 * valRight) / items.length) / 1e4);

  // the labels stage: each sample's judge label is the server's parsed verdict
  assert.ok(samples.length > 0);
  for (const s of samples) {
    assert.equal(s.judgeReply, replyFor(s.steps.length, startOf(s.prompt)));
    assert.equal(s.judgeFirstError, want(s.steps.length, startOf(s.prompt)));
    if (s.judgeFirstError === null) assert.equal(s.judge, null);
    else
      assert.deepEqual(
        s.judge,
        s.steps.map((_, i) => s.judgeFirstError === -1 || i < (s.judgeFirstError as number)),
      );
  }
  const labels = results.stages.labels;
  assert.deepEqual(
    labels.perSample.judgeFirstError,
    samples.map((s) => s.judgeFirstError),
  );
  const parsed = samples.filter((s) => s.judgeFirstError !== null).length;
  assert.deepEqual([labels.judge.source, labels.judge.parsed, labels.judge.unparseable], ["remote", parsed, samples.length - parsed]);
  const none = samples.filter((s) => s.judgeFirstError === -1).length;
  assert.equal(labels.judge.noErrorFraction, Math.round((1e4 * none) / samples.length) / 1e4);
  // consensus on the same samples: kept where MC names the judge's first error; no verdict is never kept
  const kept = samples.filter((s) => s.judgeFirstError !== null && s.mcFirstError === s.judgeFirstError).length;
  assert.equal(labels.consensusKept, kept);
  assert.equal(labels.consensus.judgeMissing, samples.length - parsed);
  assert.equal(labels.consensus.disagreed, parsed - kept);
  assert.deepEqual(
    labels.perSample.consensusKept,
    samples.map((s) => (s.judgeFirstError !== null && s.mcFirstError === s.judgeFirstError ? 1 : 0)),
  );

  // resuming that run without --judge-url would mix two judges: refused
  rmSync(join(dir, "remote", "labels", "result.json"));
  const again = await runNexus(args);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /used the remote judge/);
  // a malformed URL is refused before anything runs
  const bad = await runNexus([...args, "--name", "bad", "--judge-url", "localhost:8000"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /http\(s\) base URL/);
});
