// Reverse-KL on-policy distillation (Thinking Machines 2025; verl / prime-rl on-policy distillation), an algorithm of
// the one online loop: the student samples, the teacher's log-probs of the sampled tokens give per-token advantages
// log pi_teacher - log pi_student (a per-token reward of -k1, no discounting), trained with the GRPO surrogate of
// losses/grpo.ts. The teacher is a model (scored locally) or any function returning its log-probs (e.g. a server's),
// so it need not fit in memory next to the student. Not here: GKD's full-distribution divergence (gkd.ts).

import { z } from "zod";
import { reverseKlAdvantages, sampledReverseKl } from "../losses/distill.js";
import { GLOBAL_TOKEN_NORMALISED, GRPO_AGGREGATIONS, type GrpoLossType, grpoLoss } from "../losses/grpo.js";
import type { CausalLM } from "../models/causal_lm.js";
import { detach, div } from "../tensor/index.js";
import { checkTeacher, studentVocab } from "./gkd.js";
import { entropySum, groupMicroBatch } from "./grpo.js";
import { TrainingError } from "./loop.js";
import { ONLINE_FIELDS, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import { consecutiveMicroBatches, type MicroLoss, type OnlineAlgorithm } from "./online_loop.js";
import { completionLogprobsNoGrad, padRows, type Rollout } from "./rollout.js";

const LOSS_TYPES = Object.keys(GRPO_AGGREGATIONS) as [GrpoLossType, ...GrpoLossType[]];

export const DISTILL_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Completions per micro-batch."),
  numGenerations: z.number().int().min(1).default(1).describe("Student samples per prompt."),
  lossType: z.enum(LOSS_TYPES).default("dapo").describe("Token aggregation of the surrogate (losses/grpo.ts)."),
  epsilon: z.number().min(0).lt(1).default(0.2).describe("Lower clip of the token ratio (numIterations > 1)."),
  epsilonHigh: z.number().min(0).nullable().default(null).describe("Upper clip; null = epsilon."),
};
export const DISTILL_SCHEMA = z.object(DISTILL_FIELDS).strict();
export type DistillTrainConfig = z.output<typeof DISTILL_SCHEMA>;

/** The teacher's log-probs of each completion's tokens (a model is scored locally; a function may call a server). */
export type TeacherLogprobs = (rollout: Rollout, padId: number) => Float32Array[] | Promise<Float32Array[]>;

export function resolveDistillConfig(input?: Record<string, unknown>): DistillTrainConfig {
  return resolveOnlineConfig("distill", DISTILL_SCHEMA, input, {
    rules: [
      (c) =>
        (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) % c.numGenerations === 0
          ? null
          : `the generation batch must hold whole groups of numGenerations = ${c.numGenerations}`,
    ],
  });
}

export function distillAlgorithm(teacher: TeacherLogprobs): OnlineAlgorithm<DistillTrainConfig, Float32Array[]> {
  return {
    label: "distill",
    scored: false,
    promptsPerBatch: (c) => (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) / c.numGenerations,
    numGenerations: (c) => c.numGenerations,
    stepsPerBatch: (c) => c.numIterations,
    needsOld: () => true,
    needsRef: () => false,
    async prepare(batch, ctx) {
      const r = batch.rollout;
      const t = await teacher(r, ctx.padId);
      if (t.length !== r.completionIds.length || t.some((x, i) => x.length !== r.completionIds[i].length)) {
        throw new TrainingError("[distill] the teacher's log-probs must have one value per completion token");
      }
      const w = Math.max(1, ...r.completionIds.map((x) => x.length));
      const mask = padRows(
        r.completionIds.map((ids, i) => (batch.counts[i] ? (r.tokenMasks?.[i] ?? ids.map(() => 1)) : ids.map(() => 0))),
        w,
      );
      const student = padRows(batch.old as Float32Array[], w);
      const teacherT = padRows(t, w);
      batch.metrics["distill/reverse_kl"] = sampledReverseKl({ studentLogps: student, teacherLogps: teacherT, mask });
      const adv = reverseKlAdvantages({ studentLogps: student, teacherLogps: teacherT, mask });
      return r.completionIds.map((_, i) => Float32Array.from(adv.hostData().subarray(i * w, (i + 1) * w)));
    },
    plan: (batch, _s, c) =>
      Array.from({ length: c.numIterations }, () => [
        consecutiveMicroBatches(batch.rollout.completionIds.length, c.perDeviceTrainBatchSize),
      ]),
    microLoss(batch, adv, rows, ctx): MicroLoss {
      const c = ctx.config;
      const { micro, entropies, isWeights, isSums } = groupMicroBatch(batch, rows, ctx);
      const advantages = padRows(
        rows.map((i) => adv[i]),
        micro.packed.completionWidth,
      );
      const out = grpoLoss(
        {
          perTokenLogps: micro.logps,
          oldPerTokenLogps: micro.old === undefined ? undefined : detach(micro.old),
          advantages,
          completionMask: micro.mask,
          numItemsInBatch: batch.activeTokens,
          importanceSamplingWeights: isWeights,
        },
        { lossType: c.lossType, epsilon: c.epsilon, epsilonHigh: c.epsilonHigh, maxCompletionLength: c.maxCompletionLength },
      );
      const numMicro = Math.ceil(batch.rollout.completionIds.length / c.perDeviceTrainBatchSize);
      const loss = GLOBAL_TOKEN_NORMALISED.has(c.lossType) ? out.loss : div(out.loss, numMicro);
      return { loss, advantages, micro, sums: { entropy: entropySum(entropies, micro.mask), ...isSums } };
    },
  };
}

export interface DistillOptions extends OnlineTrainOptions<DistillTrainConfig> {
  /** The teacher: a model (scored locally at the sampling temperature) or a function returning its log-probs. */
  teacher: CausalLM | TeacherLogprobs;
}

export async function trainDistill(opts: DistillOptions): Promise<OnlineTrainResult<DistillTrainConfig>> {
  const c = resolveDistillConfig(opts.config as Record<string, unknown>);
  let fn: TeacherLogprobs;
  if (typeof opts.teacher === "function") fn = opts.teacher;
  else {
    const t = opts.teacher;
    if (typeof opts.model !== "string") checkTeacher("distill", t, studentVocab(opts.model));
    fn = (r, padId) => completionLogprobsNoGrad(t, r, padId, c.perDeviceTrainBatchSize, c.temperature);
  }
  return trainOnline(opts, c, distillAlgorithm(fn), {
    dataKind: "prompt_only",
    scored: false,
    evalUnsupported: "reverse-KL distillation has no reward to evaluate",
  });
}
