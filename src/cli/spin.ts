// `nexus spin`: SPIN self-play fine-tuning on {prompt, completion} JSONL (verl recipe): SPIN_SCHEMA flags (every DPO
// loss option, numTrainEpochs self-play iterations, refreshReference). --max-completion-length bounds the sampled
// (rejected) completions and the data's (TRL's max_new_tokens accepted in config files). Writes the final policy
// and tokenizer to --output; --eval-data is not offered (no reward to evaluate). Not here: src/train/spin.ts.

import type { Command } from "commander";
import { SPIN_RULES, SPIN_SCHEMA, trainSpin } from "../train/spin.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";
import { uncorrectedFields, unscoredFields } from "./unused_fields.js";

export function registerSpin(program: Command): void {
  registerTrainCommand(program, {
    name: "spin",
    description: "SPIN self-play: DPO of the data completion over the policy's own sample, reference refreshed per iteration",
    schema: SPIN_SCHEMA.extend({
      maxCompletionLength: SHARED.maxCompletionLength.describe(
        "tokens sampled per rejected completion, and the cap of the data's completions",
      ),
    }),
    rules: SPIN_RULES,
    unused: {
      numGenerations: "SPIN samples one completion per prompt, the rejected one",
      numIterations: "SPIN's iterations are --num-train-epochs",
      ...unscoredFields("SPIN"),
      ...uncorrectedFields("SPIN"),
    },
    aliases: { maxNewTokens: "maxCompletionLength" },
    action: async (ctx) => {
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainSpin({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        config: ctx.config,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
