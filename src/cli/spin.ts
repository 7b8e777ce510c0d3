// `nexus spin`: SPIN self-play fine-tuning on {prompt, completion} JSONL (verl recipe): SPIN_SCHEMA flags
// (numIterations, refreshReference, every DPO option). Iteration k checkpoints under <output>/iteration-<k>;
// the final policy and tokenizer go to --output. --max-completion-length is, as in every generating command,
// the tokens sampled per (rejected) completion, and also caps the data's (chosen) completions so that both
// sides of a pair have the same budget (SPIN_SCHEMA's maxNewTokens and maxCompletionLength).
// Not here: training (src/train/spin.ts).

import type { Command } from "commander";
import type { z } from "zod";
import { SPIN_RULES, SPIN_SCHEMA, type SpinTrainConfig, trainSpin } from "../train/spin.js";
import { runPreferenceCommand } from "./dpo.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand } from "./train_command.js";

const SPIN_CLI_SCHEMA = SPIN_SCHEMA.omit({ maxNewTokens: true, maxCompletionLength: true }).extend({
  maxCompletionLength: SHARED.maxCompletionLength.describe("tokens sampled per rejected completion, and the cap of the data's completions"),
});

function spinConfig(c: z.output<typeof SPIN_CLI_SCHEMA>): SpinTrainConfig {
  return { ...c, maxNewTokens: c.maxCompletionLength, maxCompletionLength: c.maxCompletionLength };
}

export function registerSpin(program: Command): void {
  registerTrainCommand(program, {
    name: "spin",
    description: "SPIN self-play: iterated DPO of the data completion over the policy's own sample, reference refreshed per iteration",
    schema: SPIN_CLI_SCHEMA,
    rules: SPIN_RULES.map((rule) => (c: z.output<typeof SPIN_CLI_SCHEMA>) => rule(spinConfig(c))),
    aliases: { maxNewTokens: "maxCompletionLength" },
    action: (ctx) =>
      runPreferenceCommand(ctx, "prompt_completion", ({ model, tokenizer, rows }) =>
        trainSpin({ model, tokenizer, rows, config: spinConfig(ctx.config), outputDir: ctx.output, ...ctx.control }),
      ),
  });
}
