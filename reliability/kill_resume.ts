// Part kill_resume (issue 13 item 1): for SFT, DPO, GRPO, PPO and the lab's staged pipeline, a reference run,
// then the same run killed with SIGKILL at seeded random moments (during training, checkpoint writes, rotation,
// metrics appends) and resumed each time, then finished. Holds when after every kill each checkpoint on disk is
// complete and verifies, every resume starts from the newest checkpoint and says so, and the finished run's weights,
// optimizer state, trainer state and metrics equal the reference's byte for byte (the lab: every stage's metrics).
// Attempts: one per kill, plus one per target for the final comparison.

import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { deterministicResults } from "../src/lab/deterministic.js";
import { Rng } from "../src/nn/rng.js";
import { checkpointFolders, loadCheckpoint } from "../src/train/checkpoint.js";
import type { PartOptions, PartResult } from "./common.js";
import {
  compareRuns,
  type Fixtures,
  runNexus,
  spawnNexus,
  type TrainerName,
  trainerArgs,
  WORKING,
  writeFixtures,
} from "./lifecycle_runs.js";

interface Target {
  name: TrainerName | "lab";
  kills: number;
  steps: number;
}

/** Every folder holding checkpoints under root (a trainer's output, or the lab's stage folders). */
function checkpointRoots(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    const entries = readdirSync(d, { withFileTypes: true });
    if (entries.some((e) => e.isDirectory() && /^checkpoint-\d+$/.test(e.name))) out.push(d);
    for (const e of entries) if (e.isDirectory() && !/^checkpoint-\d+$/.test(e.name) && !e.name.startsWith(".")) walk(join(d, e.name));
  };
  walk(root);
  return out;
}

/** Problems with what a kill left: a checkpoint that does not load and verify, or an unreadable stage result. */
function checkAfterKill(root: string): string[] {
  const bad: string[] = [];
  for (const dir of checkpointRoots(root)) {
    for (const s of checkpointFolders(dir)) {
      try {
        loadCheckpoint(join(dir, `checkpoint-${s}`));
      } catch (e) {
        bad.push((e as Error).message);
      }
    }
  }
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === "result.json") {
        try {
          JSON.parse(readFileSync(join(d, e.name), "utf8"));
        } catch (err) {
          bad.push(`${join(d, e.name)}: ${(err as Error).message}`);
        }
      }
    }
  };
  if (existsSync(root)) walk(root);
  return bad;
}

function countFiles(root: string, name: string): number {
  if (!existsSync(root)) return 0;
  let n = 0;
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(root, e.name), name);
    else if (e.name === name) n++;
  }
  return n;
}

function tempFolders(root: string): number {
  return checkpointRoots(root).reduce((n, d) => n + readdirSync(d).filter((x) => /^\.checkpoint-\d+\.(tmp|del)-\d+$/.test(x)).length, 0);
}

function argsOf(t: Target, f: Fixtures, work: string, out: string, seed: number): string[] {
  if (t.name === "lab") return ["lab", "--profile", "tiny", "--seed", String(seed), "--runs-dir", work, "--name", out];
  return [...trainerArgs(t.name, f, join(work, out), t.steps), "--save-steps", "1"];
}

/** Seconds of each lab stage in a finished run, in stage order. */
function labStageSeconds(dir: string): number[] {
  const r = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as { timings: Record<string, { seconds: number }> };
  return Object.values(r.timings).map((t) => t.seconds);
}

/** The lab's deterministic results: every stage's metrics and the claims, measured costs left out. */
function labStages(dir: string): string {
  return JSON.stringify(deterministicResults(readFileSync(join(dir, "results.json"), "utf8")));
}

export async function killResume(o: PartOptions): Promise<PartResult> {
  const f = writeFixtures(join(o.workDir, "fixtures"), o.seed);
  const targets: Target[] = o.quick
    ? [
        { name: "sft", kills: 3, steps: 12 },
        { name: "grpo", kills: 2, steps: 6 },
      ]
    : [
        { name: "sft", kills: 20, steps: 40 },
        { name: "dpo", kills: 20, steps: 40 },
        { name: "grpo", kills: 20, steps: 24 },
        { name: "ppo", kills: 20, steps: 24 },
        { name: "lab", kills: 20, steps: 0 },
      ];
  const rng = new Rng(o.seed);
  let tried = 0;
  let held = 0;
  const failures: string[] = [];
  const perTarget: Record<string, Record<string, unknown>> = {};
  for (const t of targets) {
    const work = join(o.workDir, t.name);
    const ref = await runNexus(argsOf(t, f, work, "reference", o.seed));
    if (ref.code !== 0) throw new Error(`[kill_resume] the reference ${t.name} run failed: ${ref.stderr.slice(-400)}`);
    const out = join(work, "killed");
    // kill moments, counted from the first line of work (a trainer's first step or its resume, the lab's first
    // stage): a trainer's over a share of the training time so that the kills walk through the run; the lab's
    // within its stages (a killed stage restarts): about kills/stages kills in each stage, uniform over the stage's
    // reference duration, then an attempt lets the stage finish and is killed inside the next one
    const stageSeconds = t.name === "lab" ? labStageSeconds(join(work, "reference")) : [];
    const perStage = Math.ceil(t.kills / Math.max(1, stageSeconds.length));
    const killsInStage = stageSeconds.map(() => 0);
    const killDelay = (): number => {
      if (t.name !== "lab") return (rng.next() * 1.5 * ref.workSeconds) / t.kills;
      const i = Math.min(countFiles(out, "result.json"), stageSeconds.length - 1);
      if (killsInStage[i]! < perStage || i === stageSeconds.length - 1) {
        killsInStage[i]!++;
        return rng.next() * stageSeconds[i]!;
      }
      killsInStage[i + 1]!++;
      return stageSeconds[i]! + rng.next() * stageSeconds[i + 1]!;
    };
    let kills = 0;
    let duringSave = 0;
    let resumesChecked = 0;
    const stagesDoneAtKill: number[] = []; // the lab: stages finished when each kill landed
    let finishedEarly = false;
    let earlyExit: string | null = null; // an attempt that ended by itself with an error
    for (let k = 0; k < t.kills; k++) {
      const present = checkpointFolders(out);
      const newest = present.length === 0 ? -1 : present[present.length - 1];
      const args = [...argsOf(t, f, work, "killed", o.seed), ...(k > 0 && t.name !== "lab" ? ["--resume"] : [])];
      const run = spawnNexus(args);
      await run.waitFor(WORKING); // the process is up and working (not only announcing its backend)
      const delay = killDelay() * 1000;
      const exited = await Promise.race([run.done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), delay))]);
      if (exited) {
        finishedEarly = true;
        const r = await run.done;
        if (r.code !== 0) earlyExit = `attempt ${k + 1} exited ${r.code}: ${r.stderr.slice(-600)}`;
        break;
      }
      run.child.kill("SIGKILL");
      const r = await run.done;
      kills++;
      tried++;
      if (tempFolders(out) > 0) duringSave++;
      if (t.name === "lab") stagesDoneAtKill.push(countFiles(out, "result.json"));
      const problems = checkAfterKill(t.name === "lab" ? join(work, "killed") : out);
      // the resume (if it got that far before the kill) must name the newest checkpoint
      const m = /resumed from (\S+) at step (\d+)/.exec(r.stderr);
      if (m !== null) {
        resumesChecked++;
        if (Number(m[2]) !== newest) problems.push(`resumed from ${m[1]}, the newest checkpoint was ${newest}`);
      } else if (/no checkpoint in/.test(r.stderr) && newest >= 0) problems.push(`said no checkpoint, but checkpoint-${newest} was there`);
      if (problems.length === 0) held++;
      else failures.push(`${t.name} kill ${kills}: ${problems.join("; ")}`);
    }
    // finish the run (unless an attempt already did), then compare with the reference
    let diff: string | null = earlyExit;
    if (!finishedEarly) {
      const last = await runNexus([...argsOf(t, f, work, "killed", o.seed), ...(t.name !== "lab" && kills > 0 ? ["--resume"] : [])]);
      if (last.code !== 0) diff = `the final resume exited ${last.code}: ${last.stderr.slice(-300)}`;
    }
    tried++;
    if (diff === null) {
      if (t.name === "lab") diff = labStages(join(work, "killed")) === labStages(join(work, "reference")) ? null : "stage metrics differ";
      else diff = compareRuns(join(work, "reference"), out);
    }
    if (diff === null) held++;
    else failures.push(`${t.name} final: ${diff}`);
    perTarget[t.name] = {
      kills,
      killsDuringSaveOrRotation: duringSave,
      resumesChecked,
      finishedEarly,
      ...(t.name === "lab" ? { stagesDoneAtKill } : {}),
      equal: diff === null,
      referenceSeconds: Number(ref.workSeconds.toFixed(2)),
    };
    o.note(
      `${t.name}: ${kills} kills (${duringSave} during a checkpoint write or removal), final run ${diff === null ? "equal" : `DIFFERS: ${diff}`}`,
    );
    rmSync(work, { recursive: true, force: true });
  }
  return { part: "kill_resume", tried, held, failed: tried - held, detail: { targets: perTarget, failures: failures.slice(0, 10) } };
}
