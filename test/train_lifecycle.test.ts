// The life of a run (issue 13 items 1 and 4, issue 15 items 4, 5 and 12) on a tiny SFT model: checkpoints carry
// checksums and are verified (a flipped weight bit is caught and resume falls back to the newest good one, naming
// what it skipped), trainer_state.json is validated, a changed config is refused unless allowed, stale temp
// folders are removed, metrics.jsonl never repeats a step, NaN/Inf are caught before the update (stop or skip),
// no checkpoint holds a non-finite value, a collapse is warned about, output folders of another run are refused
// unless overwritten, and an aborted signal writes a checkpoint and resumes to the uninterrupted result.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { readSafetensors } from "../src/io/safetensors.js";
import type { CausalLM } from "../src/models/index.js";
import { add, mul, sqrt, sum, type Tensor, tensor } from "../src/tensor/index.js";
import {
  CheckpointError,
  checkpointFolders,
  listCheckpoints,
  loadCheckpoint,
  readTrainerState,
  removeCheckpoint,
  removeStaleTemps,
  saveCheckpoint,
} from "../src/train/checkpoint.js";
import { resolveConfig } from "../src/train/config.js";
import { LOOP_SCHEMA, type LoopConfig, runTraining } from "../src/train/loop.js";
import { COLLAPSE_STEPS, NonFiniteError } from "../src/train/nonfinite.js";
import { OutputDirError, prepareOutputDir } from "../src/train/output_dir.js";
import { configChanges, RunStateError, TrainingInterrupted } from "../src/train/run_state.js";
import { type SftExample, sftLossSum, trainSft } from "../src/train/sft.js";
import { tempDirs, tinyLlama } from "./helpers/tiny_model.js";

const TOK = new CharTokenizer("abcdefgh =+");
const ROWS = ["abc", "bad cafe", "a+b=c", "hgfedcba", "ee", "fgh+a", "cab", "dead beef"].map((text) => ({ text }));

/** d16; the config names no token ids (eos_token_id is Llama's default). */
const model = (seed = 3) => tinyLlama(TOK, seed, { shape: "d16" });
const tmp = tempDirs("nexus-life-");

const BASE = { maxSteps: 6, perDeviceTrainBatchSize: 2, learningRate: 1e-2, loggingSteps: 1, seed: 1 };
type SftExtra = Partial<Parameters<typeof trainSft>[0]>;
const sft = (outputDir: string | null, config: Record<string, unknown> = {}, extra: SftExtra = {}) =>
  trainSft({ model: model(), tokenizer: TOK, data: ROWS, config: { ...BASE, ...config }, outputDir, quiet: true, ...extra });

const EXAMPLES: SftExample[] = ROWS.map((r) => {
  const ids = TOK.encode(r.text + TOK.eosToken);
  return { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) };
});
type LossFn = (rows: SftExample[]) => { loss: Tensor };
type Hook = (rows: SftExample[], base: LossFn) => { loss: Tensor };

/** The offline loop on a tiny model with an optional hook around each micro-batch loss. */
function run(m: CausalLM, outputDir: string, over: Partial<LoopConfig>, hook?: Hook, signal?: AbortSignal, resume = false) {
  const base: LossFn = (rows) => ({ loss: sftLossSum(m, rows, TOK.padTokenId).loss });
  return runTraining({
    model: m,
    task: {
      rowTokens: (r: SftExample) => r.ids.length,
      countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
      lossSum: (rows: SftExample[]) => (hook ? hook(rows, base) : base(rows)),
    },
    rows: EXAMPLES,
    config: resolveConfig("test", LOOP_SCHEMA, { ...BASE, perDeviceTrainBatchSize: 8, ...over }),
    outputDir,
    quiet: true,
    signal,
    resume,
  });
}

/** At the k-th micro-batch, add sqrt(0 * sum(lm_head)): the loss is unchanged, lm_head's gradient turns NaN. */
function poisonAt(m: CausalLM, k: number): Hook {
  const head = [...m.namedParameters()].find(([n]) => n === "lm_head.weight")?.[1] as Tensor;
  let calls = 0;
  return (rows, base) => {
    const out = base(rows);
    return ++calls === k ? { loss: add(out.loss, sqrt(mul(sum(head), 0))) } : out;
  };
}

/** Capture what the loop writes to stderr (warnings and resume notes) while fn runs. */
async function stderrOf(fn: () => Promise<unknown>): Promise<{ text: string; error: unknown }> {
  const chunks: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  }) as typeof process.stderr.write;
  let error: unknown = null;
  try {
    await fn();
  } catch (e) {
    error = e;
  } finally {
    process.stderr.write = orig;
  }
  return { text: chunks.join(""), error };
}

const steps = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).step as number);

function flipBit(path: string, offsetFromEnd: number): void {
  const b = readFileSync(path);
  b[b.length - offsetFromEnd] ^= 0x01;
  writeFileSync(path, b);
}

describe("checkpoints: checksums, validation, fallback", () => {
  test("a flipped weight bit is detected; resume falls back to the newest good checkpoint, names what it skipped, ends equal", async () => {
    const full = tmp();
    await sft(full, { saveSteps: 2, saveTotalLimit: 3 });
    const dir = tmp();
    await sft(dir, { saveSteps: 2, saveTotalLimit: 3 }, { stopAfterStep: 4 });
    assert.deepEqual(listCheckpoints(dir), [2, 4]);
    flipBit(join(dir, "checkpoint-4", "model.safetensors"), 9);
    assert.throws(
      () => loadCheckpoint(join(dir, "checkpoint-4")),
      (e: Error) => e instanceof CheckpointError && /checkpoint-4\/model\.safetensors does not match its sha256/.test(e.message),
    );
    const run = await stderrOf(() => sft(dir, { saveSteps: 2, saveTotalLimit: 3 }, { resume: true, quiet: false }));
    assert.equal(run.error, null);
    assert.match(run.text, /skipping .*checkpoint-4: .*does not match its sha256/);
    assert.match(run.text, /resumed from .*checkpoint-2 at step 2 \(skipped checkpoint-4\)/);
    // the damaged timeline is gone, and the result is the uninterrupted run's
    assert.ok(
      readFileSync(join(dir, "checkpoint-6", "model.safetensors")).equals(readFileSync(join(full, "checkpoint-6", "model.safetensors"))),
    );
    assert.deepEqual(steps(dir), [1, 2, 3, 4, 5, 6], "metrics.jsonl: records of steps 3-4 from before the fallback dropped");
  });

  test("trainer_state.json is validated: wrong type, out of range, negative, empty, garbage -> errors naming the file", () => {
    const d = tmp();
    const path = join(d, "trainer_state.json");
    const cases: [string, RegExp][] = [
      ['{"step": "abc", "epoch": 0}', /field 'step': .*number/],
      ['{"step": 1000, "epoch": 1, "totalSteps": 60}', /step 1000 is past totalSteps 60/],
      ['{"step": -5, "epoch": 0}', /field 'step'/],
      ['{"step": 2.5, "epoch": 0}', /field 'step'/],
      ['{"step": 2, "epoch": 0, "rng": [1, 2]}', /field 'rng'/],
      ["", /is empty/],
      ["{not json", /is not valid JSON/],
    ];
    for (const [text, want] of cases) {
      writeFileSync(path, text);
      assert.throws(
        () => readTrainerState(path),
        (e: Error) => e instanceof CheckpointError && e.message.includes(path) && want.test(e.message),
        text,
      );
    }
  });

  test("a garbage trainer_state.json with a matching checksum is still refused; no good checkpoint -> an error listing why", async () => {
    const dir = tmp();
    await sft(dir, {}, { stopAfterStep: 2 });
    const ck = join(dir, "checkpoint-2");
    // a damaged state file whose manifest entry was updated too: the checksum passes, the schema does not
    const text = '{"step": "abc", "epoch": 0}';
    writeFileSync(join(ck, "trainer_state.json"), text);
    const manifest = JSON.parse(readFileSync(join(ck, "manifest.json"), "utf8"));
    manifest.files["trainer_state.json"] = { bytes: text.length, sha256: createHash("sha256").update(text).digest("hex") };
    writeFileSync(join(ck, "manifest.json"), JSON.stringify(manifest));
    const r = await stderrOf(() => sft(dir, {}, { resume: true }));
    assert.ok(r.error instanceof RunStateError, String(r.error));
    assert.match((r.error as Error).message, /no usable checkpoint in .*checkpoint-2: .*trainer_state\.json: field 'step'/);
    assert.match((r.error as Error).message, /--overwrite to start over/);
  });

  test("a checkpoint is never written with non-finite values; earlier checkpoints stay", () => {
    const dir = tmp();
    const w = tensor([1, 2, 3]);
    saveCheckpoint(dir, 1, { weights: [["w", w]], optimizer: [], state: { step: 1, epoch: 0 }, config: {} });
    const bad = tensor([1, Number.POSITIVE_INFINITY, 3]);
    assert.throws(
      () => saveCheckpoint(dir, 2, { weights: [["w", bad]], optimizer: [], state: { step: 2, epoch: 0 }, config: {} }),
      /refusing to write checkpoint-2: 'w' holds Infinity at index 1/,
    );
    assert.deepEqual(listCheckpoints(dir), [1]);
    assert.deepEqual(Array.from(loadCheckpoint(join(dir, "checkpoint-1")).weights.get("w") as Float32Array), [1, 2, 3]);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith(".")),
      [],
    );
  });

  test("stale temp folders from a kill during a save are removed when the run starts", async () => {
    const dir = tmp();
    await sft(dir, {}, { stopAfterStep: 2 });
    const dead = join(dir, ".checkpoint-3.tmp-999999999"); // no such process
    mkdirSync(dead);
    writeFileSync(join(dead, "model.safetensors"), "partial");
    const r = await stderrOf(() => sft(dir, {}, { resume: true, quiet: false }));
    assert.equal(r.error, null);
    assert.match(r.text, /removed .*\.checkpoint-3\.tmp-999999999, left by a save that was interrupted/);
    assert.equal(existsSync(dead), false);
  });

  test("a kill during a deletion or a replacement: half-deleted folders are never named checkpoint-N; .old is put back", () => {
    const dir = tmp();
    const w = tensor([1, 2, 3]);
    const part = (step: number) => ({ weights: [["w", w]] as [string, Tensor][], optimizer: [], state: { step, epoch: 0 }, config: {} });
    for (const s of [1, 2, 3]) saveCheckpoint(dir, s, part(s), 2);
    assert.deepEqual(checkpointFolders(dir), [2, 3], "rotation removed checkpoint-1 entirely");
    removeCheckpoint(dir, 2);
    assert.deepEqual(readdirSync(dir).sort(), ["checkpoint-3"]);
    // what a SIGKILL between the steps of a deletion / replacement leaves
    renameSync(join(dir, "checkpoint-3"), join(dir, ".checkpoint-3.old-999999999"));
    mkdirSync(join(dir, ".checkpoint-5.del-999999999"));
    const removed = removeStaleTemps(dir);
    assert.deepEqual(removed, [join(dir, ".checkpoint-5.del-999999999")]);
    assert.deepEqual(listCheckpoints(dir), [3]);
    assert.equal(loadCheckpoint(join(dir, "checkpoint-3")).state.step, 3);
  });
});

describe("resume checks the config and the metrics", () => {
  test("a changed seed or learning rate is refused, naming the keys; allowed with allowConfigChange", async () => {
    const dir = tmp();
    await sft(dir, {}, { stopAfterStep: 2 });
    const r = await stderrOf(() => sft(dir, { seed: 2, learningRate: 5e-3 }, { resume: true }));
    assert.ok(r.error instanceof RunStateError);
    assert.match((r.error as Error).message, /learningRate: 0\.01 -> 0\.005, seed: 1 -> 2/);
    assert.match((r.error as Error).message, /--allow-config-change/);
    // nothing changed on disk by the refusal
    assert.deepEqual(listCheckpoints(dir), [2]);
    const ok = await stderrOf(() => sft(dir, { learningRate: 5e-3 }, { resume: true, allowConfigChange: true, quiet: false }));
    assert.equal(ok.error, null);
    assert.match(ok.text, /resuming with a changed config \(learningRate: 0\.01 -> 0\.005\)/);
    // logging and saving options are not changes of the run
    assert.deepEqual(configChanges({ loggingSteps: 1, saveSteps: 0, seed: 1 }, { loggingSteps: 5, saveSteps: 3, seed: 1 }), []);
  });

  test("resuming with another maxSteps says that the schedule changes", async () => {
    const dir = tmp();
    await sft(dir, {}, { stopAfterStep: 2 });
    const refused = await stderrOf(() => sft(dir, { maxSteps: 9 }, { resume: true }));
    assert.match(
      (refused.error as Error).message,
      /maxSteps: 6 -> 9; the schedule changes: the run was planned for 6 steps and now ends at step 9\); resume with the same settings, or pass --allow-config-change/,
    );
    const r = await stderrOf(() => sft(dir, { maxSteps: 9 }, { resume: true, allowConfigChange: true, quiet: false }));
    assert.equal(r.error, null);
    assert.match(r.text, /the schedule changes: the run was planned for 6 steps and now ends at step 9; from step 3/);
    assert.deepEqual(steps(dir), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("metrics.jsonl drops records past the resumed step (and a line cut by a kill)", async () => {
    const dir = tmp();
    await sft(dir, { saveSteps: 2 }, { stopAfterStep: 3 });
    // as if killed after logging step 3 and half of step 4, before checkpoint-3 was complete
    rmSync(join(dir, "checkpoint-3"), { recursive: true });
    writeFileSync(join(dir, "metrics.jsonl"), `${readFileSync(join(dir, "metrics.jsonl"), "utf8")}{"step":4,"lo`);
    await sft(dir, { saveSteps: 2 }, { resume: true });
    assert.deepEqual(steps(dir), [1, 2, 3, 4, 5, 6]);
  });
});

describe("numerical faults", () => {
  test("stop (default): a NaN gradient at step 3 stops before the update, naming the step and the first bad parameter", async () => {
    const dir = tmp();
    const m = model();
    const before = new Map([...m.namedParameters()].map(([n, t]) => [n, Float32Array.from(t.hostData())]));
    const r = await stderrOf(() => run(m, dir, { saveSteps: 1 }, poisonAt(m, 3)));
    assert.ok(r.error instanceof NonFiniteError, String(r.error));
    // the loss is finite; only lm_head's gradient is NaN (not the first parameter in order: the guard looks)
    assert.match((r.error as Error).message, /^\[train\] non-finite values at step 3: the gradient of 'lm_head\.weight' holds NaN/);
    assert.deepEqual(listCheckpoints(dir), [1, 2]);
    // step 3's update was not applied: the weights are checkpoint-2's
    const ck = loadCheckpoint(join(dir, "checkpoint-2")).weights;
    for (const [n, t] of m.namedParameters()) {
      assert.ok(Buffer.from((t.hostData() as Float32Array).buffer).equals(Buffer.from((ck.get(n) as Float32Array).buffer)), n);
      assert.ok(
        !Buffer.from((t.hostData() as Float32Array).buffer).equals(Buffer.from((before.get(n) as Float32Array).buffer)),
        `${n} moved`,
      );
    }
  });

  test("lr 1e30 with saveSteps 1: every checkpoint on disk is finite and loadable; the error names step and parameter", async () => {
    const dir = tmp();
    const r = await stderrOf(() => sft(dir, { learningRate: 1e30, saveSteps: 1, saveTotalLimit: 10 }));
    assert.ok(r.error instanceof NonFiniteError, String(r.error));
    assert.match((r.error as Error).message, /non-finite values at step \d+: .*'[\w.]+' holds NaN.*no update was applied/);
    const ck = listCheckpoints(dir);
    assert.ok(ck.length >= 1);
    for (const s of ck) {
      const c = loadCheckpoint(join(dir, `checkpoint-${s}`)); // verifies finiteness and checksums
      assert.equal(c.state.step, s);
    }
    const failedAt = Number(/at step (\d+)/.exec((r.error as Error).message)?.[1]);
    assert.equal(ck[ck.length - 1], failedAt - 1, "the last checkpoint is the step before the fault");
    // and the run resumes from it (then stops at the same fault: the data and weights are the same)
    const again = await stderrOf(() => sft(dir, { learningRate: 1e30, saveSteps: 1, saveTotalLimit: 10 }, { resume: true, quiet: false }));
    assert.match(again.text, new RegExp(`resumed from .*checkpoint-${failedAt - 1} at step ${failedAt - 1}`));
    assert.ok(again.error instanceof NonFiniteError);
  });

  test("skip: the faulty steps' updates are dropped, counted and logged; the run finishes with finite weights", async () => {
    const dir = tmp();
    const r = await stderrOf(() => sft(dir, { learningRate: 1e30, onNonfinite: "skip" }));
    assert.equal(r.error, null);
    const records = readFileSync(join(dir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const skipped = records[records.length - 1].nonfinite_skipped as number;
    assert.ok(skipped >= 1 && skipped <= 5, `skipped ${skipped}`);
    assert.match(r.text, /update skipped \(1 so far\)/);
    for (const [name, t] of readSafetensors(join(dir, "model.safetensors")).tensors) {
      assert.ok((t.data as Float32Array).every(Number.isFinite), `${name} is not finite`);
    }
  });

  test(`a collapse (gradient norm 0 for ${COLLAPSE_STEPS} steps, loss at ln(vocab)) is warned about once`, async () => {
    const r = await stderrOf(() => sft(null, { learningRate: 1e6, maxSteps: 10 }));
    assert.equal(r.error, null);
    const warnings = r.text.match(/training has collapsed/g) ?? [];
    assert.equal(warnings.length, 1);
    const loss = Number(/loss ([\d.]+)\)/.exec(r.text)?.[1]);
    assert.ok(Math.abs(loss - Math.log(TOK.vocabSize)) < 1e-3, `loss ${loss} vs ln(V) ${Math.log(TOK.vocabSize)}`);
    // a healthy run is not warned about
    const fine = await stderrOf(() => sft(null, { maxSteps: 10 }));
    assert.doesNotMatch(fine.text, /collapsed/);
  });
});

describe("output folders and interruptions", () => {
  test("a fresh run into another run's folder is refused; overwrite clears only Nexus files; a file path is named", async () => {
    const dir = tmp();
    await sft(dir, { maxSteps: 2 });
    const r = await stderrOf(() => sft(dir, { maxSteps: 3 }));
    assert.ok(r.error instanceof OutputDirError);
    assert.match(
      (r.error as Error).message,
      /already holds another run \(checkpoint-2, metrics\.jsonl, model\.safetensors\): pass --resume/,
    );
    await sft(dir, { maxSteps: 3, saveSteps: 1, saveTotalLimit: 5 }, { overwrite: true });
    assert.deepEqual(listCheckpoints(dir), [1, 2, 3], "the new run's checkpoints, none of the old");
    assert.deepEqual(steps(dir), [1, 2, 3]);
    // a kill during an atomic write leaves <file>.tmp-<pid>: Nexus's own, cleared by overwrite (found by kill_resume
    // on the lab: a judge model killed mid-save could never be retrained); another program's temp file is not
    writeFileSync(join(dir, "config.json.tmp-9595"), "{");
    writeFileSync(join(dir, "model.safetensors.tmp-12"), "");
    prepareOutputDir(dir, { label: "sft", overwrite: true });
    assert.deepEqual(readdirSync(dir), []);
    await sft(dir, { maxSteps: 3, saveSteps: 1, saveTotalLimit: 5 }, { overwrite: true });
    writeFileSync(join(dir, "notes.txt.tmp-1"), "mine");
    assert.throws(() => prepareOutputDir(dir, { label: "sft", overwrite: true }), /files Nexus did not write \(notes\.txt\.tmp-1\)/);
    rmSync(join(dir, "notes.txt.tmp-1"));
    writeFileSync(join(dir, "notes.txt"), "mine");
    assert.throws(() => prepareOutputDir(dir, { label: "sft", overwrite: true }), /files Nexus did not write \(notes\.txt\)/);
    assert.ok(existsSync(join(dir, "checkpoint-3")), "nothing removed when refusing");
    assert.throws(() => prepareOutputDir(join(dir, "notes.txt"), { label: "sft" }), /--output .*notes\.txt is a file, not a folder/);
    assert.throws(
      () => prepareOutputDir(dir, { label: "sft", overwrite: true, protect: [join(dir, "model.safetensors")] }),
      /holds .* that this run reads/,
    );
  });

  test("an aborted signal writes a checkpoint at the step boundary; resuming gives the uninterrupted result", async () => {
    const full = tmp();
    await run(model(), full, {});
    const dir = tmp();
    const ac = new AbortController();
    const m = model();
    let calls = 0;
    const r = await stderrOf(() =>
      run(
        m,
        dir,
        {},
        (rows, base) => {
          if (++calls === 5) ac.abort(); // during step 5 (one micro-batch per step): the run stops after it
          return base(rows);
        },
        ac.signal,
      ),
    );
    assert.ok(r.error instanceof TrainingInterrupted, String(r.error));
    const stoppedAt = (r.error as TrainingInterrupted).step;
    assert.equal(stoppedAt, 5);
    assert.equal((r.error as TrainingInterrupted).checkpoint, join(dir, `checkpoint-${stoppedAt}`));
    assert.deepEqual(listCheckpoints(dir), [stoppedAt]);
    await run(model(), dir, {}, undefined, undefined, true);
    assert.ok(
      readFileSync(join(dir, "checkpoint-6", "model.safetensors")).equals(readFileSync(join(full, "checkpoint-6", "model.safetensors"))),
    );
    assert.deepEqual(steps(dir), [1, 2, 3, 4, 5, 6]);
  });
});
