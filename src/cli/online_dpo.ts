// `nexus online-dpo`: online DPO on prompt-only JSONL (TRL OnlineDPOTrainer): ONLINE_DPO_SCHEMA flags plus
// --reward-model DIR and/or --reward-funcs / --reward-module to rank each prompt's two samples. The generation
// budget is --max-completion-length as in every command (TRL's max_new_tokens, accepted in config files).
// Writes the trained policy and tokenizer to --output. Not here: training (src/train/online_dpo.ts).

import type { Command } from "commander";
import type { z } from "zod";
import { loadDataset } from "../data/formats.js";
import { checkTokenizerFitsModel, loadTokenizer, saveTokenizer } from "../io/tokenizer.js";
import { loadCausalLM, saveCausalLM } from "../models/causal_lm.js";
import { ONLINE_DPO_SCHEMA, type OnlineDpoTrainConfig, trainOnlineDpo } from "../train/online_dpo.js";
import type { PromptRow } from "../train/online_policy.js";
import { loadRewardSources, REWARD_MODEL_FIELD } from "./ppo.js";
import { REWARD_CLI_FIELDS, splitRewardConfig } from "./reward_loading.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

const ONLINE_DPO_CLI_SCHEMA = ONLINE_DPO_SCHEMA.omit({ maxNewTokens: true }).extend({
  maxCompletionLength: SHARED.maxCompletionLength,
  ...REWARD_CLI_FIELDS,
  ...REWARD_MODEL_FIELD,
});

function onlineDpoConfig(c: z.output<typeof ONLINE_DPO_CLI_SCHEMA>): OnlineDpoTrainConfig {
  const { maxCompletionLength, rewardFuncs: _f, rewardModule: _m, answerPattern: _a, rewardModel: _r, ...rest } = c;
  return { ...rest, maxNewTokens: maxCompletionLength };
}

export function registerOnlineDpo(program: Command): void {
  registerTrainCommand(program, {
    name: "online-dpo",
    description: "online DPO on prompt-only rows (TRL OnlineDPOTrainer): 2 policy samples per prompt, ranked by rewards",
    schema: ONLINE_DPO_CLI_SCHEMA,
    aliases: { maxNewTokens: "maxCompletionLength" },
    action: async (ctx) => {
      const { rewardFuncs: names, rewardModule, answerPattern } = splitRewardConfig(ctx.config);
      const config = onlineDpoConfig(ctx.config);
      const model = await loadCausalLM(ctx.model);
      const tokenizer = loadTokenizer(ctx.tokenizer);
      checkTokenizerFitsModel(tokenizer, model.config.vocabSize, ctx.model);
      const rows = loadDataset(ctx.data, "prompt_only", { name: ctx.data }) as PromptRow[];
      const sources = await loadRewardSources(ctx.config.rewardModel, names, rewardModule, {
        maxCompletionLength: config.maxNewTokens,
        answerPattern,
      });
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainOnlineDpo({ model, tokenizer, rows, config, ...sources, outputDir: ctx.output, ...ctx.control });
      saveCausalLM(model, ctx.output);
      saveTokenizer(tokenizer, ctx.output);
    },
  });
}
