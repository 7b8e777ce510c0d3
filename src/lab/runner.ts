// The lab's stage runner: runs named stages in order, each writing `<run>/<stage>/result.json` atomically
// when it finishes, so an interrupted lab resumes from its last finished stage. Timing and RSS go to a
// separate record: everything else a stage returns must be a deterministic function of (profile, seed).

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CharTokenizer } from "../io/char_tokenizer.js";
import type { LabProfile } from "./profiles.js";

export class LabError extends Error {
  override name = "LabError";
}

export type StageMetrics = Record<string, unknown>;

export interface StageTiming {
  seconds: number;
  /** Peak resident memory of the process up to the end of the stage. */
  peakRssMB: number;
  /** Wall seconds of named parts of the stage (e.g. each alignment method). */
  parts: Record<string, number>;
}

export interface LabContext {
  /** runs/<name> */
  dir: string;
  profile: LabProfile;
  seed: number;
  quiet: boolean;
  tokenizer: CharTokenizer;
  /** Metrics of the stages finished so far (this run or resumed). */
  results: Record<string, StageMetrics>;
  stageDir(stage: string): string;
  log(message: string): void;
  /** Record the wall time of a named part of the current stage (kept apart from the deterministic metrics). */
  timePart(part: string, seconds: number): void;
  /** An outside OpenAI-compatible judge for the step labels (--judge-url); absent: the lab trains its own (stages/judge.ts). */
  judge?: RemoteJudgeSpec;
}

/** Where the lab asks for judge replies instead of its local judge. */
export interface RemoteJudgeSpec {
  /** Base URL, e.g. http://localhost:8000/v1. */
  url: string;
  model: string;
  apiKey?: string;
}

export interface Stage {
  name: string;
  title: string;
  run(ctx: LabContext): Promise<StageMetrics>;
}

export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

interface StageRecord {
  stage: string;
  profile: string;
  seed: number;
  metrics: StageMetrics;
  timing: StageTiming;
}

/** Run every stage not already finished under ctx.dir; returns metrics and timings per stage. */
export async function runStages(
  ctx: LabContext,
  stages: readonly Stage[],
): Promise<{ metrics: Record<string, StageMetrics>; timings: Record<string, StageTiming> }> {
  const timings: Record<string, StageTiming> = {};
  for (const [i, stage] of stages.entries()) {
    const dir = ctx.stageDir(stage.name);
    const done = join(dir, "result.json");
    if (existsSync(done)) {
      const rec = JSON.parse(readFileSync(done, "utf8")) as StageRecord;
      if (rec.profile !== ctx.profile.name || rec.seed !== ctx.seed) {
        throw new LabError(
          `[lab] ${done} was made with profile ${rec.profile} seed ${rec.seed}, this run is ${ctx.profile.name} seed ${ctx.seed}: use another --name`,
        );
      }
      ctx.results[stage.name] = rec.metrics;
      timings[stage.name] = rec.timing;
      ctx.log(`[lab] stage ${i + 1}/${stages.length} ${stage.name}: already finished, resuming after it`);
      continue;
    }
    mkdirSync(dir, { recursive: true });
    ctx.log(`[lab] stage ${i + 1}/${stages.length} ${stage.name}: ${stage.title}`);
    const start = Date.now();
    const parts: Record<string, number> = {};
    ctx.timePart = (part, seconds) => {
      parts[part] = Math.round(seconds * 10) / 10;
    };
    const metrics = await stage.run(ctx);
    // process-wide peak so far (ru_maxrss); a stage's own peak is at most this
    const peak = process.resourceUsage().maxRSS * 1024;
    const timing = { seconds: Math.round((Date.now() - start) / 100) / 10, peakRssMB: Math.round(peak / 2 ** 20), parts };
    writeJsonAtomic(done, { stage: stage.name, profile: ctx.profile.name, seed: ctx.seed, metrics, timing } satisfies StageRecord);
    ctx.results[stage.name] = metrics;
    timings[stage.name] = timing;
    ctx.log(`[lab] stage ${stage.name} done in ${timing.seconds}s`);
  }
  return { metrics: ctx.results, timings };
}
