// `nexus grpo`: GRPO / Dr. GRPO / DAPO / GSPO from the command line (GRPO_SCHEMA flags plus --reward-funcs and
// --reward-module; `--preset dapo` picks a variant). Data: prompt-only JSONL, extra columns reach the rewards.
// Not here: the trainer (src/train/grpo.ts); process supervision needs a step reward function, so it is API-only.

import type { Command } from "commander";
import { GRPO_SCHEMA, trainGrpo } from "../train/grpo.js";
import { loadRewardFunctions, REWARD_CLI_FIELDS, splitRewardConfig } from "./reward_loading.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerGrpo(program: Command): void {
  registerTrainCommand(program, {
    name: "grpo",
    description: "group relative policy optimization on prompt-only rows (TRL GRPOTrainer; presets dr_grpo, dapo, gspo)",
    schema: GRPO_SCHEMA.extend(REWARD_CLI_FIELDS),
    action: async (ctx) => {
      const { config, rewardFuncs, rewardModule, answerPattern } = splitRewardConfig(ctx.config);
      const fns = await loadRewardFunctions(rewardFuncs, rewardModule, { ...config, answerPattern });
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainGrpo({
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
