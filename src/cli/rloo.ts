// `nexus rloo`: REINFORCE leave-one-out from the command line (RLOO_SCHEMA flags plus --reward-funcs and
// --reward-module). Data: prompt-only JSONL; extra columns reach the reward functions.
// Not here: the trainer (src/train/rloo.ts).

import type { Command } from "commander";
import { RLOO_RULES, RLOO_SCHEMA, trainRloo } from "../train/rloo.js";
import { loadRewardFunctions, REWARD_CLI_FIELDS, splitRewardConfig } from "./reward_loading.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerRloo(program: Command): void {
  registerTrainCommand(program, {
    name: "rloo",
    description: "REINFORCE leave-one-out on prompt-only rows (TRL RLOOTrainer: k1 KL in the reward, sequence-level clip)",
    schema: RLOO_SCHEMA.extend(REWARD_CLI_FIELDS),
    rules: RLOO_RULES,
    action: async (ctx) => {
      const { config, rewardFuncs, rewardModule, answerPattern } = splitRewardConfig(ctx.config);
      const fns = await loadRewardFunctions(rewardFuncs, rewardModule, { ...config, answerPattern });
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainRloo({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        config,
        rewardFuncs: fns,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
