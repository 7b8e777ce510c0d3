// `nexus gkd`: generalized knowledge distillation (TRL GKDTrainer) on {prompt, completion} JSONL: GKD_SCHEMA flags
// (lmbda, beta, seqKd, temperature, ...) plus --teacher DIR, a causal LM with the student's vocabulary. Writes the
// student and tokenizer to --output; --eval-data is refused (no reward to evaluate). Not here: src/train/gkd.ts.

import type { Command } from "commander";
import { z } from "zod";
import { loadCausalLM } from "../models/causal_lm.js";
import { GKD_SCHEMA, trainGkd } from "../train/gkd.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";
import { uncorrectedFields, unscoredFields } from "./unused_fields.js";

export function registerGkd(program: Command): void {
  registerTrainCommand(program, {
    name: "gkd",
    description: "on-policy distillation with the generalized JSD (TRL GKDTrainer): student samples with probability lmbda, else data",
    schema: GKD_SCHEMA.extend({
      maxCompletionLength: SHARED.maxCompletionLength,
      teacher: z.string().describe("Teacher model folder (HF layout; same vocabulary as the student)"),
    }),
    aliases: { maxNewTokens: "maxCompletionLength" },
    unused: {
      numGenerations: "GKD samples one completion per prompt",
      numIterations: "distillation takes one pass per batch",
      ...unscoredFields("GKD"),
      ...uncorrectedFields("GKD"),
    },
    action: async (ctx) => {
      const { teacher: teacherDir, ...config } = ctx.config;
      const teacher = await loadCausalLM(teacherDir);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainGkd({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        config,
        teacher,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
