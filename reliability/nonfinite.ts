// Part nonfinite (issue 13 item 4): numerical faults never reach the weights or a checkpoint.
// - The regression case: `nexus <trainer> --learning-rate 1e30 --save-steps 1` (SFT; DPO, GRPO, PPO too in the full
//   run) leaves only finite, verifiable checkpoints, names the step and parameter when it stops, and `--resume`
//   restarts from the newest one.
// - Seeded faults in the offline loop: a NaN gradient in a random parameter or an infinite loss at a random step.
//   stop: the error names that step (and that parameter) and the weights are the previous checkpoint's, bit for bit;
//   skip: the run finishes, counts exactly the faulty steps and has finite weights.
// - A collapse (learning rate 1e4: loss at ln(vocab), gradient norm 0) is warned about exactly once; at 1e6 the run
//   is warned about or stopped, never silent.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CausalLM, createCausalLM } from "../src/models/index.js";
import { Rng } from "../src/nn/rng.js";
import { add, mul, sqrt, sum, type Tensor } from "../src/tensor/index.js";
import { checkpointFolders, loadCheckpoint } from "../src/train/checkpoint.js";
import { resolveConfig } from "../src/train/config.js";
import { LOOP_SCHEMA, runTraining } from "../src/train/loop.js";
import { NonFiniteError } from "../src/train/nonfinite.js";
import { type SftExample, sftLossSum } from "../src/train/sft.js";
import type { PartOptions, PartResult } from "./common.js";
import { runNexus, TOK, type TrainerName, tinyConfig, trainerArgs, writeFixtures } from "./lifecycle_runs.js";

const TEXTS = ["abc=cba", "bad=dab", "face=ecaf", "head=daeh", "add=dda", "gab=bag", "bed=deb", "ace=eca"];
const EXAMPLES: SftExample[] = TEXTS.map((t) => {
  const ids = TOK.encode(t + TOK.eosToken);
  return { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) };
});

function tinyModel(seed: number): CausalLM {
  return createCausalLM(tinyConfig(), { seed });
}

interface Fault {
  step: number;
  kind: "grad" | "loss";
  param: string;
}

/** The offline loop with `fault` injected: a NaN gradient in one parameter (loss unchanged) or an infinite loss. */
async function faultyRun(seed: number, outputDir: string, faults: Fault[], onNonfinite: "stop" | "skip", steps: number) {
  const model = tinyModel(seed);
  const named = new Map(model.namedParameters());
  let calls = 0;
  const out = { error: null as unknown, warnings: "", model };
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => {
    out.warnings += String(c);
    return true;
  }) as typeof process.stderr.write;
  try {
    await runTraining({
      model,
      task: {
        rowTokens: (r: SftExample) => r.ids.length,
        countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
        lossSum: (rows: SftExample[]) => {
          const step = ++calls; // one micro-batch per step
          const loss = sftLossSum(model, rows, TOK.padTokenId).loss;
          const f = faults.find((x) => x.step === step);
          if (f === undefined) return { loss };
          if (f.kind === "loss") return { loss: mul(loss, Number.POSITIVE_INFINITY) };
          return { loss: add(loss, sqrt(mul(sum(named.get(f.param) as Tensor), 0))) };
        },
      },
      rows: EXAMPLES,
      config: resolveConfig("nonfinite", LOOP_SCHEMA, {
        maxSteps: steps,
        perDeviceTrainBatchSize: 4,
        learningRate: 1e-2,
        saveSteps: 1,
        saveTotalLimit: steps,
        seed,
        onNonfinite,
      }),
      outputDir,
      quiet: true,
      label: "nonfinite",
    });
  } catch (e) {
    out.error = e;
  } finally {
    process.stderr.write = orig;
  }
  return out;
}

/** SFT at a learning rate far too high, in memory; what it wrote to stderr and how it ended. */
async function collapseRun(lr: number, seed: number): Promise<{ text: string; error: unknown }> {
  const orig = process.stderr.write.bind(process.stderr);
  let text = "";
  let error: unknown = null;
  process.stderr.write = ((c: string | Uint8Array) => {
    text += String(c);
    return true;
  }) as typeof process.stderr.write;
  try {
    const model = tinyModel(seed);
    await runTraining({
      model,
      task: {
        rowTokens: (r: SftExample) => r.ids.length,
        countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
        lossSum: (rows: SftExample[]) => ({ loss: sftLossSum(model, rows, TOK.padTokenId).loss }),
      },
      rows: EXAMPLES,
      config: resolveConfig("nonfinite", LOOP_SCHEMA, { maxSteps: 12, perDeviceTrainBatchSize: 4, learningRate: lr, seed }),
      outputDir: null,
      quiet: true,
      label: "collapse",
    });
  } catch (e) {
    error = e;
  } finally {
    process.stderr.write = orig;
  }
  return { text, error };
}

export async function nonfinite(o: PartOptions): Promise<PartResult> {
  const f = writeFixtures(join(o.workDir, "fixtures"), o.seed);
  const rng = new Rng(o.seed);
  let tried = 0;
  let held = 0;
  const failures: string[] = [];
  const verdict = (ok: boolean, what: string) => {
    tried++;
    if (ok) held++;
    else failures.push(what);
  };

  // 1. the regression case from the command line
  const trainers: TrainerName[] = o.quick ? ["sft"] : ["sft", "dpo", "grpo", "ppo"];
  for (const t of trainers) {
    const out = join(o.workDir, `lr1e30-${t}`);
    const args = [...trainerArgs(t, f, out, 8), "--learning-rate", "1e30", "--save-steps", "1", "--save-total-limit", "10"];
    const r = await runNexus(args);
    const problems: string[] = [];
    if (r.code !== 0 && !/non-finite values at step \d+: .*'[\w.]+' holds|loss is -?(NaN|Infinity) at step \d+/.test(r.stderr)) {
      problems.push(`exit ${r.code} without naming step and parameter: ${r.stderr.slice(-300)}`);
    }
    const cks = checkpointFolders(out);
    for (const s of cks) {
      try {
        loadCheckpoint(join(out, `checkpoint-${s}`));
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (cks.length > 0 && r.code !== 0) {
      const again = await runNexus([...args, "--resume"]);
      if (!again.stderr.includes(`resumed from ${join(out, `checkpoint-${cks[cks.length - 1]}`)} at step ${cks[cks.length - 1]}`)) {
        problems.push(`--resume did not restart from checkpoint-${cks[cks.length - 1]}: ${again.stderr.slice(-300)}`);
      }
    }
    verdict(problems.length === 0, `${t} lr 1e30: ${problems.join("; ")}`);
    o.note(`${t} --learning-rate 1e30: exit ${r.code}, ${cks.length} checkpoints, ${problems.length === 0 ? "held" : problems[0]}`);
  }

  // 2. seeded faults, stop mode: the error names the step and parameter; the weights are the previous step's
  const names = [...tinyModel(0).namedParameters()].map(([n]) => n);
  const steps = 8;
  const cases = o.quick ? 3 : 16;
  for (let c = 0; c < cases; c++) {
    const fault: Fault = { step: 2 + rng.int(steps - 1), kind: rng.next() < 0.75 ? "grad" : "loss", param: names[rng.int(names.length)] };
    const dir = join(o.workDir, `stop-${c}`);
    const r = await faultyRun(o.seed + c, dir, [fault], "stop", steps);
    const msg = r.error instanceof NonFiniteError ? r.error.message : String(r.error);
    const want =
      fault.kind === "grad"
        ? `non-finite values at step ${fault.step}: the gradient of '${fault.param}' holds NaN`
        : `non-finite values at step ${fault.step}: the loss is Infinity`;
    let ok = r.error instanceof NonFiniteError && msg.includes(want);
    if (ok) {
      const ck = loadCheckpoint(join(dir, `checkpoint-${fault.step - 1}`)).weights;
      for (const [n, t] of r.model.namedParameters()) {
        if (!Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((ck.get(n) as Float32Array).buffer))) ok = false;
      }
      ok &&= Math.max(...checkpointFolders(dir)) === fault.step - 1;
    }
    verdict(ok, `stop ${JSON.stringify(fault)}: ${msg.slice(0, 200)}`);
  }

  // 3. seeded faults, skip mode: the run finishes, the faulty steps are counted, the weights are finite
  for (let c = 0; c < (o.quick ? 1 : 4); c++) {
    const at = [...new Set(Array.from({ length: 1 + rng.int(3) }, () => 1 + rng.int(steps)))];
    const faults = at.map((step) => ({
      step,
      kind: (rng.next() < 0.5 ? "grad" : "loss") as Fault["kind"],
      param: names[rng.int(names.length)],
    }));
    const dir = join(o.workDir, `skip-${c}`);
    const r = await faultyRun(o.seed + 100 + c, dir, faults, "skip", steps);
    const last = JSON.parse(readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").pop() as string);
    const finite = [...r.model.namedParameters()].every(([, t]) => (t.data as Float32Array).every(Number.isFinite));
    const ok = r.error === null && last.step === steps && last.nonfinite_skipped === at.length && finite;
    verdict(ok, `skip at steps ${at}: error ${String(r.error)}, skipped ${last.nonfinite_skipped}, finite ${finite}`);
  }

  // 4. a collapse is never silent: at lr 1e4 the gradient norm falls to 0 and is warned about exactly once;
  // at lr 1e6 the run either collapses (warned) or overflows (stopped, naming the step)
  const collapseCases: [number, number][] = o.quick
    ? [[1e4, o.seed]]
    : [1e4, 1e6].flatMap((lr) => [0, 1, 2, 3].map((k): [number, number] => [lr, o.seed + k]));
  for (const [lr, seed] of collapseCases) {
    const r = await collapseRun(lr, seed);
    const warnings = (r.text.match(/training has collapsed/g) ?? []).length;
    const stopped = r.error instanceof NonFiniteError && /non-finite values at step \d+/.test(r.error.message);
    const ok = lr === 1e4 ? warnings === 1 && r.error === null : (warnings === 1 && r.error === null) || stopped;
    verdict(ok, `lr ${lr} seed ${seed}: ${warnings} warnings, error ${String(r.error).slice(0, 120)}`);
  }

  return { part: "nonfinite", tried, held, failed: tried - held, detail: { failures: failures.slice(0, 10) } };
}
