// `nexus lab`: the end-to-end main job on the built-in arithmetic task. Runs the stages in order (resuming
// after the last finished one), then writes runs/<name>/results.json, report.html and prints the claims
// table. Everything but timing is a function of (profile, seed).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeReport } from "../report/html.js";
import { formatClaimsTable } from "../report/results.js";
import { evaluateClaims } from "./claims.js";
import { labTokenizer } from "./common.js";
import { LAB_PROFILES, type LabProfileName } from "./profiles.js";
import { compareRanking } from "./ranking.js";
import { buildLabReport, buildMultiSeedReport, type LabResults } from "./report.js";
import { type LabContext, LabError, type RemoteJudgeSpec, runStages, type Stage, writeJsonAtomic } from "./runner.js";
import { alignStage } from "./stages/align.js";
import { judgeStage } from "./stages/judge.js";
import { labelsStage } from "./stages/labels.js";
import { rewardModelsStage } from "./stages/reward_models.js";
import { searchStage } from "./stages/search.js";
import { sftStage } from "./stages/sft.js";

export const LAB_STAGES: readonly Stage[] = [sftStage, judgeStage, labelsStage, rewardModelsStage, alignStage, searchStage];

export interface LabOptions {
  profile?: LabProfileName;
  seed?: number;
  /** Folder under `runsDir`; default `<profile>-seed<seed>`. */
  name?: string;
  runsDir?: string;
  quiet?: boolean;
  /** Run only the stages up to and including this one. */
  until?: string;
  /** An OpenAI-compatible server that judges the step labels instead of the lab's local judge. */
  judge?: RemoteJudgeSpec;
}

export async function runLab(opts: LabOptions = {}): Promise<LabResults & { dir: string }> {
  const profileName = opts.profile ?? "quick";
  const profile = LAB_PROFILES[profileName];
  if (profile === undefined)
    throw new LabError(`[lab] unknown profile '${profileName}' (expected ${Object.keys(LAB_PROFILES).join(", ")})`);
  const seed = opts.seed ?? 0;
  const dir = join(opts.runsDir ?? "runs", opts.name ?? `${profileName}-seed${seed}`);
  mkdirSync(dir, { recursive: true });
  const start = Date.now();
  const quiet = opts.quiet ?? false;
  const ctx: LabContext = {
    dir,
    profile,
    seed,
    quiet,
    tokenizer: labTokenizer(),
    results: {},
    stageDir: (s) => join(dir, s),
    log: (m) => {
      if (!quiet) process.stderr.write(`${m}\n`);
    },
    timePart: () => {},
    judge: opts.judge,
  };
  let stages = LAB_STAGES;
  if (opts.until !== undefined) {
    const i = stages.findIndex((s) => s.name === opts.until);
    if (i < 0) throw new LabError(`[lab] unknown stage '${opts.until}' (stages: ${stages.map((s) => s.name).join(", ")})`);
    stages = stages.slice(0, i + 1);
  }
  const { metrics, timings } = await runStages(ctx, stages);
  const results: LabResults = {
    profile: profileName,
    seed,
    wallSeconds: Math.round((Date.now() - start) / 100) / 10,
    stages: metrics,
    timings,
    claims: evaluateClaims(metrics),
    ranking: compareRanking([metrics]),
  };
  writeJsonAtomic(join(dir, "results.json"), results);
  writeReport(join(dir, "report.html"), buildLabReport(results));
  return { ...results, dir };
}

export interface MultiSeedResults {
  profile: string;
  seeds: number[];
  wallSeconds: number;
  /** Each seed's run folder (its own results.json and report). */
  runs: Record<string, string>;
  /** Claims over all seeds: two-stage paired bootstrap (seeds, then units within each seed). */
  claims: LabResults["claims"];
  ranking: LabResults["ranking"];
}

/** The lab at several seeds (each its own run folder, resumable), then claims and ranking over all of them. */
export async function runLabSeeds(opts: LabOptions & { seeds: readonly number[] }): Promise<MultiSeedResults & { dir: string }> {
  const profileName = opts.profile ?? "quick";
  if (opts.seeds.length === 0) throw new LabError("[lab] --seeds needs at least one seed");
  if (new Set(opts.seeds).size !== opts.seeds.length) throw new LabError(`[lab] --seeds repeats a seed: ${opts.seeds.join(",")}`);
  const start = Date.now();
  const per: LabResults[] = [];
  const runs: Record<string, string> = {};
  for (const seed of opts.seeds) {
    const r = await runLab({ ...opts, seed, name: opts.name === undefined ? undefined : `${opts.name}-seed${seed}` });
    per.push(r);
    runs[String(seed)] = r.dir;
  }
  const dir = join(opts.runsDir ?? "runs", `${opts.name ?? profileName}-seeds${opts.seeds.join("-")}`);
  mkdirSync(dir, { recursive: true });
  const stages = per.map((r) => r.stages);
  const results: MultiSeedResults = {
    profile: profileName,
    seeds: [...opts.seeds],
    wallSeconds: Math.round((Date.now() - start) / 100) / 10,
    runs,
    claims: evaluateClaims(stages),
    ranking: compareRanking(stages),
  };
  writeJsonAtomic(join(dir, "results.json"), results);
  writeReport(join(dir, "report.html"), buildMultiSeedReport(results));
  return { ...results, dir };
}

export function claimsText(results: { claims: LabResults["claims"] }): string {
  return formatClaimsTable(results.claims);
}
