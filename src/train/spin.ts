// SPIN (Self-Play fINe-tuning, Chen et al. 2024) as verl's recipe runs it, an algorithm of the one online loop:
// DPO on {prompt, completion} rows where the chosen completion is the data's and the rejected one is the policy's
// own sample, drawn each step. A self-play iteration is an epoch over the prompts; at the start of each one the
// reference is refreshed to the current policy (`refreshReference`, the paper's theta_t; false keeps the initial
// policy as the reference). Every DPO lossType works (losses/dpo.ts). TRL has no SPIN trainer. Differs from the
// paper: samples are drawn per step with the current policy (verl), not once per iteration.

import { z } from "zod";
import { DPO_LOSSES, type DpoLossType, F_DIVERGENCES, type FDivergenceType } from "../losses/dpo.js";
import { dpoLossConfig, dpoLossRule } from "./dpo.js";
import { TrainingError } from "./loop.js";
import { ONLINE_FIELDS, resolveOnlineConfig } from "./online_config.js";
import { pairDpoLoss } from "./online_dpo.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import type { OnlineAlgorithm } from "./online_loop.js";
import type { PromptExample, Rollout } from "./rollout.js";

const DPO_LOSS_TYPES = Object.keys(DPO_LOSSES) as [DpoLossType, ...DpoLossType[]];
const F_DIVERGENCE_TYPES = Object.keys(F_DIVERGENCES) as [FDivergenceType, ...FDivergenceType[]];

export const SPIN_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(5e-7).describe("Peak learning rate."),
  numTrainEpochs: z
    .number()
    .positive()
    .default(3)
    .describe("Self-play iterations: passes over the prompts, each against a refreshed reference."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Prompts (pairs) per micro-batch."),
  numGenerations: z.number().int().min(1).max(1).default(1).describe("One policy sample (the rejected completion) per prompt."),
  maxCompletionLength: z
    .number()
    .int()
    .positive()
    .default(64)
    .describe("Tokens per sampled completion (and per data completion, truncated)."),
  refreshReference: z.boolean().default(true).describe("Copy the policy into the reference at the start of every iteration."),
  beta: z.number().positive().default(0.1).describe("Inverse temperature of the implicit reward."),
  lossType: z
    .union([z.enum(DPO_LOSS_TYPES), z.array(z.enum(DPO_LOSS_TYPES)).min(1)])
    .default(["sigmoid"])
    .describe(`DPO loss variant or list (${DPO_LOSS_TYPES.join(", ")}).`),
  lossWeights: z.array(z.number()).nullable().default(null).describe("One weight per lossType entry; null = all 1."),
  labelSmoothing: z.number().min(0).max(1).default(0).describe("cDPO / robust / AOT noise rate, exo_pair epsilon."),
  fDivergenceType: z.enum(F_DIVERGENCE_TYPES).default("reverse_kl").describe("Transform of each log-ratio."),
  fAlphaDivergenceCoef: z.number().default(0.5).describe("alpha of alpha_divergence."),
  discopopTau: z.number().positive().default(0.05).describe("DiscoPOP temperature."),
};
export const SPIN_SCHEMA = z.object(SPIN_FIELDS).strict();
export type SpinTrainConfig = z.output<typeof SPIN_SCHEMA>;

export const SPIN_RULES: ((c: SpinTrainConfig) => string | null)[] = [
  dpoLossRule,
  (c) => (c.numIterations !== 1 ? "SPIN's iterations are numTrainEpochs; leave numIterations at 1" : null),
  (c) => (c.dynamicSampling ? "dynamicSampling applies to group-RL trainers (GRPO, RLOO), not SPIN" : null),
];

export function resolveSpinConfig(input?: Record<string, unknown>): SpinTrainConfig {
  return resolveOnlineConfig("spin", SPIN_SCHEMA, input, { rules: SPIN_RULES });
}

/** Rows 2k (the data completion, chosen) and 2k + 1 (the policy's sample, rejected) for each prompt k. */
export function interleaveData(prompts: readonly PromptExample[], samples: Rollout, maxCompletionLength: number): Rollout {
  const data = prompts.map((p) => (p.completionIds ?? []).slice(0, maxCompletionLength));
  const both = <T>(mine: (k: number) => T, theirs: T[]) => prompts.flatMap((_, k) => [mine(k), theirs[k]]);
  return {
    prompts: [...prompts],
    numGenerations: 2,
    promptIds: prompts.flatMap((p) => [p.promptIds, p.promptIds]),
    completionIds: both((k) => data[k], samples.completionIds),
    completions: both((k) => prompts[k].columns.completion as string, samples.completions).map((x) => (typeof x === "string" ? x : "")),
    finishReasons: both(() => "eos" as const, samples.finishReasons),
    samplingLogprobs: both((k) => data[k].map(() => 0), samples.samplingLogprobs),
    tokenMasks: null,
    envRewards: null,
    envInfos: null,
  };
}

export function spinAlgorithm(onPairs?: (rollout: Rollout) => void): OnlineAlgorithm<SpinTrainConfig, null> {
  let perBatch = 0;
  return {
    label: "spin",
    scored: false,
    promptsPerBatch: (c) => (perBatch = c.perDeviceTrainBatchSize * c.gradientAccumulationSteps),
    numGenerations: () => 1,
    stepsPerBatch: () => 1,
    scoringTemperature: () => 1,
    needsOld: () => false,
    needsRef: () => true,
    syncsReference: (c) => c.refreshReference,
    beforeBatch(cursor, n, ctx) {
      // a new iteration starts with the first batch that begins in a new epoch (derived from the cursor alone,
      // so a resumed run refreshes exactly where the uninterrupted one did)
      if (!ctx.config.refreshReference || cursor === 0) return;
      if (Math.floor(cursor / n) > Math.floor((cursor - perBatch) / n)) (ctx.reference as NonNullable<typeof ctx.reference>).sync(1);
    },
    async collect(prompts, ctx) {
      for (const p of prompts) if (p.completionIds === undefined) throw new TrainingError(`[spin] row ${p.index + 1} has no completion`);
      return interleaveData(prompts, await ctx.sample(prompts, 1), ctx.config.maxCompletionLength);
    },
    prepare(batch) {
      const r = batch.rollout;
      const n = r.prompts.length;
      let same = 0;
      for (let k = 0; k < n; k++) {
        const a = r.completionIds[2 * k];
        const b = r.completionIds[2 * k + 1];
        if (a.length === b.length && a.every((x, i) => x === b[i])) same++;
      }
      batch.metrics.frac_sample_equals_data = same / n;
      batch.metrics["completions/mean_length"] = r.prompts.reduce((a, _, k) => a + r.completionIds[2 * k + 1].length, 0) / n;
      onPairs?.(r);
      return null;
    },
    plan(batch, _s, c) {
      const n = batch.rollout.prompts.length;
      const micro: number[][] = [];
      for (let s = 0; s < n; s += c.perDeviceTrainBatchSize)
        micro.push(Array.from({ length: Math.min(c.perDeviceTrainBatchSize, n - s) }, (_, j) => s + j));
      return [[micro]];
    },
    microLoss(batch, _s, prompts, ctx) {
      return pairDpoLoss(
        batch,
        prompts.map((k) => 2 * k),
        prompts.map((k) => 2 * k + 1),
        ctx,
        dpoLossConfig(ctx.config),
        batch.rollout.prompts.length,
      );
    },
  };
}

export interface SpinOptions extends OnlineTrainOptions<SpinTrainConfig> {
  /** Called with every batch's pairs (rows 2k: data, 2k + 1: sample). */
  onPairs?: (rollout: Rollout) => void;
}

export async function trainSpin(opts: SpinOptions): Promise<OnlineTrainResult<SpinTrainConfig>> {
  const c = resolveSpinConfig(opts.config as Record<string, unknown>);
  return trainOnline(opts, c, spinAlgorithm(opts.onPairs), {
    dataKind: "prompt_completion",
    scored: false,
    evalUnsupported: "SPIN has no reward to evaluate (its pairs come from the data)",
  });
}
