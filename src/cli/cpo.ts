// `nexus cpo`: CPO, or SimPO with --loss-type simpo --cpo-alpha 0, on a preference JSONL through the shared
// trainer CLI. Not here: training logic (src/train/cpo.ts) or the load/save plumbing (cli/dpo.ts).

import type { Command } from "commander";
import { CPO_RULES, CPO_SCHEMA, trainCpo } from "../train/cpo.js";
import { runPreferenceCommand, sources } from "./dpo.js";
import { registerTrainCommand } from "./train_command.js";

export function registerCpo(program: Command): Command {
  return registerTrainCommand(program, {
    name: "cpo",
    description: "Contrastive Preference Optimization / SimPO on {prompt?, chosen, rejected} rows (TRL CPOTrainer)",
    schema: CPO_SCHEMA,
    evalData: true,
    rules: CPO_RULES,
    action: (ctx) =>
      runPreferenceCommand(ctx, "preference", ({ model, tokenizer, rows, evalRows }) =>
        trainCpo({ model, tokenizer, rows, evalRows, config: ctx.config, outputDir: ctx.output, ...ctx.control, ...sources(ctx) }),
      ),
  });
}
