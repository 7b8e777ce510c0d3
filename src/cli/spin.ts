// `nexus spin`: SPIN self-play fine-tuning on {prompt, completion} JSONL (verl recipe): SPIN_SCHEMA flags
// (numIterations, refreshReference, every DPO option). Iteration k checkpoints under <output>/iteration-<k>;
// the final policy and tokenizer go to --output. Not here: training (src/train/spin.ts).

import type { Command } from "commander";
import { SPIN_RULES, SPIN_SCHEMA, trainSpin } from "../train/spin.js";
import { runPreferenceCommand } from "./dpo.js";
import { registerTrainCommand } from "./train_command.js";

export function registerSpin(program: Command): void {
  registerTrainCommand(program, {
    name: "spin",
    description: "SPIN self-play: iterated DPO of the data completion over the policy's own sample, reference refreshed per iteration",
    schema: SPIN_SCHEMA,
    rules: SPIN_RULES,
    action: (ctx) =>
      runPreferenceCommand("spin", ctx, "prompt_completion", ({ model, tokenizer, rows }) =>
        trainSpin({ model, tokenizer, rows, config: ctx.config, outputDir: ctx.output }),
      ),
  });
}
