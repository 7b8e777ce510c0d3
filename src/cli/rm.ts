// `nexus rm`: reward-model (ORM) training from the command line, options from REWARD_SCHEMA through the
// shared trainer CLI. Not here: the training itself (src/train/reward_trainer.ts).

import type { Command } from "commander";
import { REWARD_SCHEMA, trainRewardModel } from "../train/reward_trainer.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerRm(program: Command): void {
  registerTrainCommand(program, {
    name: "rm",
    description: "train a reward model on {chosen, rejected, margin?} pairs (TRL RewardTrainer, Bradley-Terry)",
    evalData: true,
    schema: REWARD_SCHEMA,
    action: async (ctx) => {
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainRewardModel({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        config: ctx.config,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
