// `nexus online-dpo`: online DPO on prompt-only JSONL (TRL OnlineDPOTrainer): ONLINE_DPO_SCHEMA flags plus
// --reward-model DIR and/or --reward-funcs / --reward-module to rank each prompt's two samples.
// Writes the trained policy and tokenizer to --output. Not here: training (src/train/online_dpo.ts).

import type { Command } from "commander";
import { loadDataset } from "../data/formats.js";
import { checkTokenizerFitsModel, loadTokenizer, saveTokenizer } from "../io/tokenizer.js";
import { loadCausalLM, saveCausalLM } from "../models/causal_lm.js";
import { ONLINE_DPO_SCHEMA, trainOnlineDpo } from "../train/online_dpo.js";
import type { PromptRow } from "../train/online_policy.js";
import { loadRewardSources, REWARD_MODEL_FIELD } from "./ppo.js";
import { REWARD_CLI_FIELDS, splitRewardConfig } from "./reward_loading.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

export function registerOnlineDpo(program: Command): void {
  registerTrainCommand(program, {
    name: "online-dpo",
    description: "online DPO on prompt-only rows (TRL OnlineDPOTrainer): 2 policy samples per prompt, ranked by rewards",
    schema: ONLINE_DPO_SCHEMA.extend({ ...REWARD_CLI_FIELDS, ...REWARD_MODEL_FIELD }),
    action: async (ctx) => {
      const { config: withPath, rewardFuncs: names, rewardModule } = splitRewardConfig(ctx.config);
      const { rewardModel: rmPath, ...config } = withPath;
      const model = await loadCausalLM(ctx.model);
      const tokenizer = loadTokenizer(ctx.tokenizer);
      checkTokenizerFitsModel(tokenizer, model.config.vocabSize, ctx.model);
      const rows = loadDataset(ctx.data, "prompt_only", { name: ctx.data }) as PromptRow[];
      const sources = await loadRewardSources(rmPath, names, rewardModule, config.maxNewTokens);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainOnlineDpo({ model, tokenizer, rows, config, ...sources, outputDir: ctx.output, resume: ctx.resume });
      saveCausalLM(model, ctx.output);
      saveTokenizer(tokenizer, ctx.output);
      process.stderr.write(`[online-dpo] saved the trained model to ${ctx.output}\n`);
    },
  });
}
