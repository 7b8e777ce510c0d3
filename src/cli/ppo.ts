// `nexus ppo`: PPO with a value model on prompt-only JSONL (TRL PPOTrainer): PPO_SCHEMA flags plus --reward-model
// DIR (a *ForSequenceClassification folder), --reward-funcs / --reward-module (summed with the reward model),
// and --value-model DIR (else copied from the reward model or the policy per --value-model-init). The generation
// budget is --max-completion-length as in every command (TRL PPO's response_length, accepted in config files).
// Writes the policy (and tokenizer) to --output and the value model to <output>/value_model. Not here: training.

import type { Command } from "commander";
import { z } from "zod";
import { loadDataset } from "../data/formats.js";
import { expectFolderKind } from "../io/folder_kind.js";
import { checkTokenizerFitsModel, loadTokenizer, saveTokenizer } from "../io/tokenizer.js";
import { loadCausalLM, saveCausalLM } from "../models/causal_lm.js";
import { loadClassifier, SequenceClassifier, saveClassifier } from "../models/heads.js";
import type { RewardFn } from "../rewards/types.js";
import type { PromptRow } from "../train/online_policy.js";
import { PPO_RULES, PPO_SCHEMA, type PpoTrainConfig, trainPpo } from "../train/ppo.js";
import { cliErr } from "./output.js";
import { loadRewardFunctions, REWARD_CLI_FIELDS, type RewardContext, splitRewardConfig } from "./reward_loading.js";
import { SHARED } from "./shared_options.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

/** CLI-only model paths of the online commands. */
export const REWARD_MODEL_FIELD = {
  rewardModel: z.string().nullable().default(null).describe("Reward model folder (HF *ForSequenceClassification, num_labels 1)"),
};

/** Load the reward model (if a folder is given) and the reward functions (if names or a module are given). */
export async function loadRewardSources(
  rewardModel: string | null,
  names: string[],
  module: string | null,
  ctx: RewardContext,
): Promise<{ rewardModel: SequenceClassifier | null; rewardFuncs: RewardFn[] }> {
  if (rewardModel !== null) expectFolderKind(rewardModel, ["sequence-classifier"], "ppo", "--reward-model");
  const rm = rewardModel === null ? null : loadClassifier(rewardModel, { kind: "sequence" });
  if (rm !== null && !(rm instanceof SequenceClassifier)) throw new Error(`[cli] ${rewardModel} is not a sequence classifier`);
  const wantFns = names.length > 0 || module !== null;
  if (rm === null && !wantFns) throw new Error("[cli] give --reward-model and/or --reward-funcs / --reward-module");
  const rewardFuncs = wantFns ? await loadRewardFunctions(names, module, ctx) : [];
  return { rewardModel: rm, rewardFuncs };
}

const PPO_CLI_SCHEMA = PPO_SCHEMA.omit({ responseLength: true }).extend({
  maxCompletionLength: SHARED.maxCompletionLength,
  ...REWARD_CLI_FIELDS,
  ...REWARD_MODEL_FIELD,
  valueModel: z.string().nullable().default(null).describe("Value model folder (else initialised per valueModelInit)"),
});

function ppoConfig(c: z.output<typeof PPO_CLI_SCHEMA>): PpoTrainConfig {
  const { maxCompletionLength, rewardFuncs: _f, rewardModule: _m, answerPattern: _a, rewardModel: _r, valueModel: _v, ...rest } = c;
  return { ...rest, responseLength: maxCompletionLength };
}

export function registerPpo(program: Command): void {
  registerTrainCommand(program, {
    name: "ppo",
    description: "PPO with a value model on prompt-only rows (TRL PPOTrainer): KL-penalised reward-model score, GAE, clipped losses",
    schema: PPO_CLI_SCHEMA,
    rules: PPO_RULES.map((rule) => (c: z.output<typeof PPO_CLI_SCHEMA>) => rule(ppoConfig(c))),
    aliases: { responseLength: "maxCompletionLength" },
    action: async (ctx) => {
      const { rewardFuncs: names, rewardModule, answerPattern } = splitRewardConfig(ctx.config);
      const config = ppoConfig(ctx.config);
      const model = await loadCausalLM(ctx.model);
      const tokenizer = loadTokenizer(ctx.tokenizer);
      checkTokenizerFitsModel(tokenizer, model.config.vocabSize, ctx.model);
      const rows = loadDataset(ctx.data, "prompt_only", { name: ctx.data }) as PromptRow[];
      const sources = await loadRewardSources(ctx.config.rewardModel, names, rewardModule, {
        maxCompletionLength: config.responseLength,
        answerPattern,
      });
      const vmPath = ctx.config.valueModel;
      const valueModel = vmPath === null ? undefined : (loadClassifier(vmPath, { kind: "sequence" }) as SequenceClassifier);
      writeResolvedConfig(ctx.output, ctx.resolved);
      const res = await trainPpo({ model, tokenizer, rows, config, ...sources, valueModel, outputDir: ctx.output, ...ctx.control });
      saveCausalLM(model, ctx.output);
      saveTokenizer(tokenizer, ctx.output);
      saveClassifier(res.valueModel, `${ctx.output}/value_model`);
      cliErr(`[ppo] saved the value model to ${ctx.output}/value_model\n`);
    },
  });
}
