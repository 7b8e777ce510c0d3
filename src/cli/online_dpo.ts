// `nexus online-dpo`: online DPO on prompt-only JSONL (TRL OnlineDPOTrainer): ONLINE_DPO_SCHEMA flags plus the
// reward sources (--reward-model, --prm-model, --reward-funcs / --reward-module) that rank each prompt's two
// samples; --eval-data logs the held-out reward. The generation budget is --max-completion-length as in every
// command (TRL's max_new_tokens, accepted in config files). Writes the trained policy and tokenizer to --output.
// Not here: training (src/train/online_dpo.ts).

import type { Command } from "commander";
import { ONLINE_DPO_RULES, ONLINE_DPO_SCHEMA, trainOnlineDpo } from "../train/online_dpo.js";
import { loadRewardSources, REWARD_SOURCE_FIELDS, splitRewardSources } from "./reward_sources.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";
import { uncorrectedFields } from "./unused_fields.js";

export function registerOnlineDpo(program: Command): void {
  registerTrainCommand(program, {
    name: "online-dpo",
    description: "online DPO on prompt-only rows (TRL OnlineDPOTrainer): 2 policy samples per prompt, ranked by rewards",
    schema: ONLINE_DPO_SCHEMA.extend({ maxCompletionLength: SHARED.maxCompletionLength, ...REWARD_SOURCE_FIELDS }),
    rules: ONLINE_DPO_RULES,
    evalData: true,
    unused: {
      numGenerations: "online DPO samples two completions per prompt (TRL)",
      numIterations: "online DPO takes one step per batch",
      dynamicSampling: "dynamic sampling applies to group-RL trainers (GRPO, RLOO, PPO)",
      dynamicSamplingMaxRounds: "dynamic sampling applies to group-RL trainers (GRPO, RLOO, PPO)",
      ...uncorrectedFields("online DPO"),
    },
    aliases: { maxNewTokens: "maxCompletionLength" },
    action: async (ctx) => {
      const { config, sources } = splitRewardSources(ctx.config);
      const loaded = await loadRewardSources(sources, config);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainOnlineDpo({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        config,
        ...loaded,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
