// `nexus kto`: KTO on an unpaired-preference JSONL ({prompt, completion, label}) through the shared trainer CLI.
// Not here: training logic (src/train/kto.ts) or the load/save plumbing (cli/dpo.ts).

import type { Command } from "commander";
import { KTO_RULES, KTO_SCHEMA, trainKto } from "../train/kto.js";
import { runPreferenceCommand, sources } from "./dpo.js";
import { registerTrainCommand } from "./train_command.js";

export function registerKto(program: Command): Command {
  return registerTrainCommand(program, {
    name: "kto",
    description: "Kahneman-Tversky Optimization on {prompt, completion, label} rows (TRL KTOTrainer)",
    schema: KTO_SCHEMA,
    evalData: true,
    rules: KTO_RULES,
    action: (ctx) =>
      runPreferenceCommand(ctx, "unpaired_preference", ({ model, tokenizer, rows, evalRows }) =>
        trainKto({ model, tokenizer, rows, evalRows, config: ctx.config, outputDir: ctx.output, ...ctx.control, ...sources(ctx) }),
      ),
  });
}
