// `nexus orpo`: ORPO (reference-free) on a preference JSONL through the shared trainer CLI.
// Not here: training logic (src/train/orpo.ts) or the load/save plumbing (cli/dpo.ts).

import type { Command } from "commander";
import { ORPO_SCHEMA, trainOrpo } from "../train/orpo.js";
import { runPreferenceCommand, sources } from "./dpo.js";
import { registerTrainCommand } from "./train_command.js";

export function registerOrpo(program: Command): Command {
  return registerTrainCommand(program, {
    name: "orpo",
    description: "Odds Ratio Preference Optimization on {prompt?, chosen, rejected} rows (TRL ORPOTrainer)",
    schema: ORPO_SCHEMA,
    evalData: true,
    action: (ctx) =>
      runPreferenceCommand(ctx, "preference", ({ model, tokenizer, rows, evalRows }) =>
        trainOrpo({ model, tokenizer, rows, evalRows, config: ctx.config, outputDir: ctx.output, ...ctx.control, ...sources(ctx) }),
      ),
  });
}
