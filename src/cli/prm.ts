// `nexus prm`: process-reward-model training from the command line, options from PRM_SCHEMA through the
// shared trainer CLI. Not here: the training itself (src/train/prm_trainer.ts) or step labelling.

import type { Command } from "commander";
import { PRM_SCHEMA, trainPrm } from "../train/prm_trainer.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerPrm(program: Command): void {
  registerTrainCommand(program, {
    name: "prm",
    description: "train a process reward model on {prompt, completions, labels} rows (TRL PRMTrainer)",
    evalData: true,
    schema: PRM_SCHEMA,
    action: async (ctx) => {
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainPrm({
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
