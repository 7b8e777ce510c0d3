// `nexus ppo`: PPO with a value model on prompt-only JSONL (TRL PPOTrainer): PPO_SCHEMA flags plus the reward
// sources (--reward-model DIR, --prm-model DIR, --reward-funcs / --reward-module, mixed by --reward-weights) and
// --value-model DIR (else copied from the reward model or the policy per --value-model-init); --eval-data logs the
// held-out reward. The generation budget is --max-completion-length as in every command (TRL's response_length,
// accepted in config files). Writes the policy, tokenizer and <output>/value_model. Not here: src/train/ppo.ts.

import type { Command } from "commander";
import { z } from "zod";
import { loadClassifier, SequenceClassifier } from "../models/heads.js";
import { PPO_RULES, PPO_SCHEMA, trainPpo } from "../train/ppo.js";
import { cliErr } from "./output.js";
import { loadRewardSources, REWARD_SOURCE_FIELDS, splitRewardSources } from "./reward_sources.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

const PPO_CLI_SCHEMA = PPO_SCHEMA.extend({
  maxCompletionLength: SHARED.maxCompletionLength,
  ...REWARD_SOURCE_FIELDS,
  valueModel: z.string().nullable().default(null).describe("Value model folder (else initialised per valueModelInit)"),
});

export function registerPpo(program: Command): void {
  registerTrainCommand(program, {
    name: "ppo",
    description: "PPO with a value model on prompt-only rows (TRL PPOTrainer): KL-penalised reward-model score, GAE, clipped losses",
    schema: PPO_CLI_SCHEMA,
    rules: PPO_RULES,
    evalData: true,
    unused: { numIterations: "PPO's passes over a batch are --num-ppo-epochs" },
    aliases: { responseLength: "maxCompletionLength" },
    action: async (ctx) => {
      const { config: withValue, sources } = splitRewardSources(ctx.config);
      const { valueModel: vmPath, ...config } = withValue;
      const loaded = await loadRewardSources(sources, config);
      const vm = vmPath === null ? undefined : loadClassifier(vmPath, { kind: "sequence" });
      if (vm !== undefined && !(vm instanceof SequenceClassifier)) throw new Error(`[cli] ${vmPath} is not a sequence classifier`);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainPpo({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        config,
        ...loaded,
        valueModel: vm,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
      cliErr(`[ppo] saved the value model to ${ctx.output}/value_model\n`);
    },
  });
}
