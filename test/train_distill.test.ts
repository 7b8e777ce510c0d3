// On-policy distillation on the one loop (src/train/gkd.ts). GKD: micro-batches come from the student with
// probability lmbda, else from the data (or the teacher with seqKd); the step-1 loss equals the generalized JSD
// recomputed independently (full right-padded forward passes, float64 softmax by hand); the student's divergence
// from the teacher falls. Reverse-KL distillation: a teacher model and the same teacher as a log-prob function train
// identically, and the sampled reverse KL falls.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { buildProgram } from "../src/cli/program.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { saveCausalLM } from "../src/models/causal_lm.js";
import { type CausalLM, createCausalLM } from "../src/models/index.js";
import { tensor } from "../src/tensor/index.js";
import { trainDistill } from "../src/train/distill.js";
import { type GkdSource, trainGkd } from "../src/train/gkd.js";
import { completionLogprobsNoGrad, type Rollout } from "../src/train/rollout.js";
import { trainSft } from "../src/train/sft.js";

const TOK = new CharTokenizer("abcd=", { bosToken: null });
const ROWS = ["ab", "cd", "ba", "dc", "ac", "bd", "ca", "db"].map((p) => ({ prompt: p, completion: `=${p}${p}` }));

function tiny(seed: number, width = 32): CausalLM {
  return createCausalLM(
    parseHfConfig({
      model_type: "llama",
      vocab_size: TOK.vocabSize,
      hidden_size: width,
      intermediate_size: 2 * width,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32,
      tie_word_embeddings: false,
      eos_token_id: TOK.eosTokenId,
      pad_token_id: TOK.padTokenId,
    }),
    { seed },
  );
}

let teacherCache: CausalLM | null = null;
/** A teacher that half-learned the data's pattern (20 SFT steps: peaked, not one-hot), shared by the tests. */
async function teacher(): Promise<CausalLM> {
  if (teacherCache !== null) return teacherCache;
  const t = tiny(9);
  await trainSft({
    model: t,
    tokenizer: TOK,
    data: ROWS,
    config: { learningRate: 1e-2, maxSteps: 20, perDeviceTrainBatchSize: 8, seed: 1 },
    quiet: true,
  });
  teacherCache = t;
  return t;
}

/** log softmax of one row of logits, in float64. */
function logSoftmax(row: ArrayLike<number>): number[] {
  const mx = Math.max(...Array.from(row));
  const z = Array.from(row).reduce((a, x) => a + Math.exp(x - mx), 0);
  return Array.from(row, (x) => x - mx - Math.log(z));
}

/** The generalized JSD of a rollout, recomputed from full right-padded forward passes (one row at a time). */
function jsdByHand(student: CausalLM, t: CausalLM, r: Rollout, beta: number): number {
  let total = 0;
  let n = 0;
  r.completionIds.forEach((c, i) => {
    const ids = [...r.promptIds[i], ...c];
    const ls = student.forward({ inputIds: tensor([ids], { dtype: "i32" }) }).logits;
    const lt = t.forward({ inputIds: tensor([ids], { dtype: "i32" }) }).logits;
    const v = ls.shape[2];
    for (let k = 0; k < c.length; k++) {
      const pos = r.promptIds[i].length - 1 + k;
      const s = logSoftmax(ls.hostData().subarray(pos * v, (pos + 1) * v));
      const q = logSoftmax(lt.hostData().subarray(pos * v, (pos + 1) * v));
      let d = 0;
      for (let j = 0; j < v; j++) {
        const m = Math.log((1 - beta) * Math.exp(s[j]) + beta * Math.exp(q[j]));
        d += beta * Math.exp(q[j]) * (q[j] - m) + (1 - beta) * Math.exp(s[j]) * (s[j] - m);
      }
      total += d;
      n++;
    }
  });
  return total / n;
}

describe("GKD (TRL GKDTrainer)", () => {
  test("lmbda picks the student's samples, else the data's (or the teacher's with seqKd); step 1's loss is the JSD by hand", async () => {
    const t = await teacher();
    const sourcesOf = async (config: Record<string, unknown>) => {
      const seen: GkdSource[] = [];
      await trainGkd({
        model: tiny(1),
        tokenizer: TOK,
        data: ROWS,
        teacher: t,
        config: { maxSteps: 2, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, maxCompletionLength: 6, seed: 4, ...config },
        quiet: true,
        onSources: (s) => seen.push(...s),
      });
      return seen;
    };
    assert.deepEqual(await sourcesOf({ lmbda: 1 }), ["student", "student", "student", "student"]);
    assert.deepEqual(await sourcesOf({ lmbda: 0 }), ["data", "data", "data", "data"]);
    assert.deepEqual(await sourcesOf({ lmbda: 0, seqKd: true }), ["teacher", "teacher", "teacher", "teacher"]);
    const mixed = await sourcesOf({ lmbda: 0.5 });
    assert.ok(mixed.includes("student") && mixed.includes("data"), mixed.join());

    const student = tiny(2);
    let want = Number.NaN;
    const res = await trainGkd({
      model: student,
      tokenizer: TOK,
      data: ROWS,
      teacher: t,
      config: {
        maxSteps: 1,
        perDeviceTrainBatchSize: 2,
        gradientAccumulationSteps: 2,
        lmbda: 0.5,
        beta: 0.3,
        seed: 5,
        maxCompletionLength: 6,
        loggingSteps: 1,
      },
      quiet: true,
      onBatch: (b) => {
        want = jsdByHand(student, t, b.rollout, 0.3);
      },
    });
    const got = res.run.history[0].loss as number;
    assert.ok(Math.abs(got - want) < 1e-4, `loss ${got} vs by hand ${want}`);
  });

  test("the student's divergence from the teacher falls", async () => {
    const t = await teacher();
    const res = await trainGkd({
      model: tiny(3),
      tokenizer: TOK,
      data: ROWS,
      teacher: t,
      config: {
        maxSteps: 30,
        perDeviceTrainBatchSize: 8,
        learningRate: 1e-2,
        lmbda: 0.5,
        maxCompletionLength: 6,
        loggingSteps: 1,
        seed: 6,
      },
      quiet: true,
    });
    const losses = res.run.history.map((h) => h.loss as number);
    const first = losses.slice(0, 3).reduce((a, b) => a + b, 0) / 3;
    const last = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
    console.log(`GKD JSD ${first.toFixed(4)} -> ${last.toFixed(4)}`);
    assert.ok(last < 0.5 * first, `JSD should fall: ${first} -> ${last}`);
  });
});

describe("reverse-KL on-policy distillation", () => {
  test("a teacher model and the same teacher's log-prob function train identically; the sampled reverse KL falls", async () => {
    const t = await teacher();
    const run = async (asFunction: boolean) => {
      const student = tiny(7);
      const res = await trainDistill({
        model: student,
        tokenizer: TOK,
        data: ROWS.map((r) => ({ prompt: r.prompt })),
        teacher: asFunction ? (r, padId) => completionLogprobsNoGrad(t, r, padId, 8, 1) : t,
        config: {
          maxSteps: 30,
          perDeviceTrainBatchSize: 8,
          numGenerations: 2,
          learningRate: 5e-2,
          temperature: 1,
          maxCompletionLength: 6,
          loggingSteps: 1,
          seed: 8,
        },
        quiet: true,
      });
      return { student, kl: res.run.history.map((h) => h["distill/reverse_kl"] as number) };
    };
    const a = await run(false);
    const b = await run(true);
    assert.deepEqual(b.kl, a.kl);
    const first = a.kl.slice(0, 3).reduce((x, y) => x + y, 0) / 3;
    const last = a.kl.slice(-3).reduce((x, y) => x + y, 0) / 3;
    console.log(`reverse KL ${first.toFixed(4)} -> ${last.toFixed(4)}`);
    assert.ok(last < 0.75 * first, `sampled reverse KL should fall: ${first} -> ${last}`);
  });
});

describe("nexus gkd", () => {
  test("distills a teacher folder into a student folder from the command line and saves the student", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-gkd-cli-"));
    try {
      for (const [name, seed] of [
        ["student", 1],
        ["teacher", 2],
      ] as const) {
        saveCausalLM(tiny(seed), join(dir, name));
        saveTokenizer(TOK, join(dir, name));
      }
      writeFileSync(join(dir, "rows.jsonl"), `${ROWS.map((r) => JSON.stringify(r)).join("\n")}\n`);
      const out = join(dir, "out");
      const args = ["gkd", "--model", join(dir, "student"), "--teacher", join(dir, "teacher"), "--data", join(dir, "rows.jsonl")];
      await buildProgram().parseAsync(
        [...args, "--output", out, "--max-steps", "2", "--lmbda", "1", "--max-completion-length", "4", "--logging-steps", "1"],
        { from: "user" },
      );
      assert.ok(existsSync(join(out, "model.safetensors")) && existsSync(join(out, "tokenizer.json")));
      const rows = readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.equal(rows.length, 2);
      assert.ok(rows.every((r) => Number.isFinite(r.loss) && r.loss >= 0));
      await assert.rejects(buildProgram().parseAsync([...args, "--output", out, "--eval-data", "x"], { from: "user" }), /eval/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
