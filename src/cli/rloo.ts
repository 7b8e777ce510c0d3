// `nexus rloo`: REINFORCE leave-one-out from the command line (RLOO_SCHEMA flags plus the reward sources:
// --reward-funcs, --reward-module, --reward-model, --prm-model; --eval-data logs the held-out reward).
// Data: prompt-only JSONL; extra columns reach the reward functions. Not here: the trainer (src/train/rloo.ts).

import type { Command } from "commander";
import { RLOO_RULES, RLOO_SCHEMA, trainRloo } from "../train/rloo.js";
import { loadRewardSources, REWARD_SOURCE_FIELDS, splitRewardSources } from "./reward_sources.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerRloo(program: Command): void {
  registerTrainCommand(program, {
    name: "rloo",
    description: "REINFORCE leave-one-out on prompt-only rows (TRL RLOOTrainer: k1 KL in the reward, sequence-level clip)",
    schema: RLOO_SCHEMA.extend(REWARD_SOURCE_FIELDS),
    rules: RLOO_RULES,
    evalData: true,
    action: async (ctx) => {
      const { config, sources } = splitRewardSources(ctx.config);
      const loaded = await loadRewardSources(sources, config);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainRloo({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        config,
        ...loaded,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
