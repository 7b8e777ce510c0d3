// `nexus grpo`: GRPO / Dr. GRPO / DAPO / GSPO / CISPO / SAPO / REINFORCE++ from the command line (GRPO_SCHEMA flags
// plus the reward sources: --reward-funcs, --reward-module, --reward-model, --prm-model; `--preset dapo` picks a
// variant; --eval-data logs the held-out reward). Data: prompt-only JSONL, extra columns reach the rewards.
// Not here: the trainer (src/train/grpo.ts); process supervision needs a step reward function, so it is API-only.

import type { Command } from "commander";
import { GRPO_SCHEMA, trainGrpo } from "../train/grpo.js";
import { loadRewardSources, REWARD_SOURCE_FIELDS, splitRewardSources } from "./reward_sources.js";
import { registerTrainCommand, writeResolvedConfig } from "./train_command.js";

/** The config values the user set (flags or config file); all of them when the caller cannot tell. */
function given(config: Record<string, unknown>, isGiven?: (key: string) => boolean): Record<string, unknown> {
  return isGiven === undefined ? config : Object.fromEntries(Object.entries(config).filter(([k]) => isGiven(k)));
}

export function registerGrpo(program: Command): void {
  registerTrainCommand(program, {
    name: "grpo",
    description:
      "group relative policy optimization on prompt-only rows (TRL GRPOTrainer; presets dr_grpo, dapo, gspo, cispo, sapo, reinforce_pp)",
    schema: GRPO_SCHEMA.extend(REWARD_SOURCE_FIELDS),
    evalData: true,
    action: async (ctx) => {
      const { config, sources } = splitRewardSources(ctx.config);
      const loaded = await loadRewardSources(sources, config);
      writeResolvedConfig(ctx.output, ctx.resolved);
      await trainGrpo({
        model: ctx.model,
        tokenizer: ctx.tokenizer,
        data: ctx.data,
        evalData: ctx.evalData,
        // only what the user set (flags and config file): a preset fills the rest, never an explicit value
        config: given(config, ctx.run?.given),
        ...loaded,
        outputDir: ctx.output,
        ...ctx.control,
        extraConfig: ctx.resolved,
      });
    },
  });
}
