// `nexus sft`: supervised fine-tuning from the command line (options from SFT_SCHEMA through the shared
// trainer CLI). Not here: the training itself (src/train/sft.ts).

import type { Command } from "commander";
import { SFT_SCHEMA, trainSft } from "../train/sft.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerSft(program: Command): void {
  registerTrainCommand(program, {
    name: "sft",
    description: "supervised fine-tuning on {text}, {prompt, completion} or {messages} rows (TRL SFTTrainer)",
    evalData: true,
    schema: SFT_SCHEMA,
    action: async (ctx) => {
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainSft({
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
