// GKD as TRL's GKDTrainer (Agarwal et al. 2306.13649), an algorithm of the one online loop: per micro-batch, with
// probability lmbda the completions are the student's own samples (on-policy), else the teacher's (seqKd) or the
// data's; the loss is the generalized JSD (losses/distill.ts gkdLoss, beta) between the student's and the
// teacher's next-token distributions on the completion tokens, normalised by the batch's token count.
// Differs from TRL: the loss temperature is an option (TRL's loss always uses 1; its `temperature` only samples).
// Not here: reverse-KL distillation against a teacher's log-probs (distill.ts).

import { z } from "zod";
import { gkdLoss } from "../losses/distill.js";
import type { CausalLM } from "../models/causal_lm.js";
import { LoraModel } from "../models/lora.js";
import { linear, noGrad, slice, type Tensor } from "../tensor/index.js";
import { ConfigError } from "./config.js";
import { TrainingError } from "./loop.js";
import { ONLINE_FIELDS, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import { consecutiveMicroBatches, type MicroLoss, type OnlineAlgorithm } from "./online_loop.js";
import { type PackedRollout, type PromptExample, packRows, type Rollout, rolloutFromSamples } from "./rollout.js";
import { sampleCompletions } from "./sampling.js";

export const GKD_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(2e-5).describe("Peak learning rate (TRL SFT default)."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Prompts per micro-batch."),
  numGenerations: z.number().int().min(1).max(1).default(1).describe("One completion per prompt."),
  maxCompletionLength: z.number().int().positive().default(128).describe("Tokens per sampled completion (TRL max_new_tokens)."),
  temperature: z.number().positive().default(0.9).describe("Sampling temperature (student and teacher samples)."),
  lmbda: z.number().min(0).max(1).default(0.5).describe("Probability that a micro-batch uses the student's own samples (on-policy)."),
  beta: z.number().min(0).max(1).default(0.5).describe("JSD interpolation: 0 = KL(teacher || student), 1 = KL(student || teacher)."),
  seqKd: z.boolean().default(false).describe("Off-policy micro-batches use the teacher's samples instead of the data's."),
  lossTemperature: z.number().positive().default(1).describe("Both logits are divided by it in the loss (TRL: 1)."),
};
export const GKD_SCHEMA = z.object(GKD_FIELDS).strict();
export type GkdTrainConfig = z.output<typeof GKD_SCHEMA>;

const oneStep: ((c: { numIterations: number }) => string | null)[] = [
  (c) => (c.numIterations !== 1 ? "distillation takes one pass per batch; leave numIterations at 1" : null),
];

export function resolveGkdTrainConfig(input?: Record<string, unknown>): GkdTrainConfig {
  return resolveOnlineConfig("gkd", GKD_SCHEMA, input, {
    rules: [...oneStep, (c) => (c.dynamicSampling ? "dynamicSampling needs rewards; GKD has none" : null)],
  });
}

/** Logits [b, Tc, V] at the positions that predict the completion tokens of packed rows. */
function completionLogits(model: CausalLM, packed: PackedRollout): Tensor {
  const { promptWidth: p, completionWidth: tc } = packed;
  const hidden = model.forwardHidden({ inputIds: packed.inputIds, attentionMask: packed.attentionMask }); // (b, P + Tc, D)
  return linear(slice(hidden, 1, p - 1, p - 1 + tc), model.lmHeadWeight); // (b, Tc, V)
}

/** Where a micro-batch's completions came from (TRL GKD: student with probability lmbda). */
export type GkdSource = "student" | "teacher" | "data";

export function gkdAlgorithm(teacher: CausalLM, onSources?: (sources: GkdSource[]) => void): OnlineAlgorithm<GkdTrainConfig, null> {
  return {
    label: "gkd",
    scored: false,
    promptsPerBatch: (c) => c.perDeviceTrainBatchSize * c.gradientAccumulationSteps,
    numGenerations: () => 1,
    stepsPerBatch: () => 1,
    needsOld: () => false,
    needsRef: () => false,
    async collect(prompts, ctx) {
      const c = ctx.config;
      const parts: Rollout[] = [];
      const sources: GkdSource[] = [];
      for (let s = 0; s < prompts.length; s += c.perDeviceTrainBatchSize) {
        const chunk = prompts.slice(s, s + c.perDeviceTrainBatchSize);
        const u = ctx.rng.next();
        if (u <= c.lmbda) {
          sources.push("student");
          parts.push(await ctx.sample(chunk, 1));
        } else if (c.seqKd) {
          sources.push("teacher");
          const samples = await sampleCompletions(
            { kind: "local", model: teacher },
            chunk.map((p) => p.promptIds),
            { ...c, rng: ctx.rng, tokenizer: ctx.tokenizer },
          );
          parts.push(rolloutFromSamples(chunk, 1, samples));
        } else {
          sources.push("data");
          parts.push(dataRollout(chunk, c.maxCompletionLength, ctx.tokenizer.decode.bind(ctx.tokenizer)));
        }
      }
      onSources?.(sources);
      return {
        prompts: parts.flatMap((r) => r.prompts),
        numGenerations: 1,
        promptIds: parts.flatMap((r) => r.promptIds),
        completionIds: parts.flatMap((r) => r.completionIds),
        completions: parts.flatMap((r) => r.completions),
        finishReasons: parts.flatMap((r) => r.finishReasons),
        samplingLogprobs: parts.flatMap((r) => r.samplingLogprobs),
        tokenMasks: null,
        envRewards: null,
        envInfos: null,
      };
    },
    prepare: () => null,
    plan: (batch, _s, c) => [[consecutiveMicroBatches(batch.rollout.completionIds.length, c.perDeviceTrainBatchSize)]],
    microLoss(batch, _s, rows, ctx): MicroLoss {
      const c = ctx.config;
      const packed = packRows(batch.rollout, rows, ctx.padId);
      const student = completionLogits(ctx.policy, packed);
      const teacherLogits = noGrad(() => completionLogits(teacher, packed));
      const out = gkdLoss(
        { studentLogits: student, teacherLogits, mask: packed.completionMask, numItemsInBatch: Math.max(1, batch.activeTokens) },
        { beta: c.beta, temperature: c.lossTemperature },
      );
      let n = 0;
      for (const x of packed.completionMask.hostData()) n += x;
      return { loss: out.loss, sums: { jsd: [out.loss.item() * Math.max(1, batch.activeTokens), n] } };
    },
  };
}

/** The data's own completions as a rollout (GKD's off-policy micro-batches). */
function dataRollout(prompts: readonly PromptExample[], maxLen: number, decode: (ids: number[]) => string): Rollout {
  const ids = prompts.map((p) => {
    if (p.completionIds === undefined) throw new TrainingError(`[gkd] row ${p.index + 1} has no completion`);
    return p.completionIds.slice(0, maxLen);
  });
  return {
    prompts: [...prompts],
    numGenerations: 1,
    promptIds: prompts.map((p) => p.promptIds),
    completionIds: ids,
    completions: ids.map((x) => decode(x)),
    finishReasons: ids.map(() => "eos"),
    samplingLogprobs: ids.map((x) => x.map(() => 0)),
    tokenMasks: null,
    envRewards: null,
    envInfos: null,
  };
}

export interface GkdOptions extends OnlineTrainOptions<GkdTrainConfig> {
  /** The teacher (same tokenizer / vocabulary as the student), used frozen. */
  teacher: CausalLM;
  /** Called with each batch's per-micro-batch sources (tests). */
  onSources?: (sources: GkdSource[]) => void;
}

export const studentVocab = (m: CausalLM | LoraModel<CausalLM>) => (m instanceof LoraModel ? m.base : m).config.vocabSize;

export function checkTeacher(label: string, teacher: CausalLM, vocab: number): void {
  if (teacher.config.vocabSize !== vocab) {
    throw new ConfigError(`[${label}] the teacher's vocabulary (${teacher.config.vocabSize}) differs from the student's (${vocab})`);
  }
  teacher.to();
  teacher.requiresGrad(false);
  teacher.eval();
}

export async function trainGkd(opts: GkdOptions): Promise<OnlineTrainResult<GkdTrainConfig>> {
  const c = resolveGkdTrainConfig(opts.config as Record<string, unknown>);
  if (typeof opts.model !== "string") checkTeacher("gkd", opts.teacher, studentVocab(opts.model));
  return trainOnline(opts, c, gkdAlgorithm(opts.teacher, opts.onSources), {
    dataKind: "prompt_completion",
    scored: false,
    evalUnsupported: "GKD has no reward to evaluate",
  });
}
