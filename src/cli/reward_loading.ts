// Reward functions for the online CLIs (grpo, rloo, ppo, online-dpo): chosen by name from the built-ins
// (`--reward-funcs accuracy,format,overlong`) or loaded from a user's .ts/.js module (`--reward-module ./r.ts`,
// dynamic import; .ts works when nexus runs under tsx), weighted by the trainer's `rewardWeights`.
// TRL takes Python callables or Hub model ids; model-based rewards (ORM/PRM) are not loaded here.

import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { accuracyReward, arithmeticFormatReward, formatReward, lengthPenalty, overlongPenalty } from "../rewards/rule.js";
import { RewardError, type RewardFn } from "../rewards/types.js";

/** What a built-in may need from the trainer's config. */
export interface RewardContext {
  maxCompletionLength: number;
  /** DAPO L_cache; default maxCompletionLength / 4. */
  overlongBufferLength?: number | null;
}

/** Built-in rewards by CLI name. */
export const BUILTIN_REWARDS = Object.freeze({
  accuracy: () => accuracyReward(),
  // TRL think_format_reward: <think>...</think> then the answer
  format: () => formatReward(/^<think>(?!.*<think>)(.*?)<\/think>.*$/s, "think_format_reward"),
  arithmetic_format: () => arithmeticFormatReward(),
  digits_format: () => formatReward(/^\s*-?\d+\s*$/, "digits_format_reward"),
  overlong: (c: RewardContext) =>
    overlongPenalty({
      maxCompletionLen: c.maxCompletionLength,
      softPunishCache: c.overlongBufferLength ?? Math.max(1, Math.floor(c.maxCompletionLength / 4)),
    }),
  length: (c: RewardContext) => lengthPenalty({ coef: 1 / c.maxCompletionLength }),
}) satisfies Record<string, (c: RewardContext) => RewardFn>;
export type BuiltinRewardName = keyof typeof BUILTIN_REWARDS;

/** CLI-only config fields every online trainer command adds to its schema (stripped before training). */
export const REWARD_CLI_FIELDS = {
  rewardFuncs: z
    .array(z.string())
    .default([])
    .describe(`Reward functions, comma-separated: built-ins (${Object.keys(BUILTIN_REWARDS).join(", ")}) or exports of --reward-module`),
  rewardModule: z
    .string()
    .nullable()
    .default(null)
    .describe("A .ts/.js module exporting RewardFn(s); with no --reward-funcs, all its function exports are used"),
};

const isRewardFn = (x: unknown): x is RewardFn => typeof x === "function";

/** Import a reward module: named function exports (and `default`: a function or an array of functions). */
export async function importRewardModule(path: string, cwd = process.cwd()): Promise<Map<string, RewardFn>> {
  const abs = isAbsolute(path) ? path : resolve(cwd, path);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    throw new RewardError(`[reward-module] cannot import ${abs}: ${(e as Error).message}`);
  }
  const out = new Map<string, RewardFn>();
  for (const [name, v] of Object.entries(mod)) {
    if (name === "default") {
      const list = Array.isArray(v) ? v : [v];
      for (const f of list) if (isRewardFn(f)) out.set(f.name || "default", f);
    } else if (isRewardFn(v)) out.set(name, v);
  }
  if (out.size === 0) throw new RewardError(`[reward-module] ${abs} exports no function`);
  return out;
}

/**
 * Resolve reward names (module exports first, then built-ins) to functions; with no names, every export of
 * the module. An unknown name is an error that lists what exists.
 */
export async function loadRewardFunctions(names: readonly string[], modulePath: string | null, ctx: RewardContext): Promise<RewardFn[]> {
  const fromModule = modulePath === null ? new Map<string, RewardFn>() : await importRewardModule(modulePath);
  if (names.length === 0) {
    if (fromModule.size === 0) throw new RewardError("[rewards] give --reward-funcs and/or --reward-module");
    return [...fromModule.values()];
  }
  return names.map((n) => {
    const f = fromModule.get(n);
    if (f !== undefined) return f;
    if (n in BUILTIN_REWARDS) return BUILTIN_REWARDS[n as BuiltinRewardName](ctx);
    const known = [...Object.keys(BUILTIN_REWARDS), ...fromModule.keys()].join(", ");
    throw new RewardError(`[rewards] unknown reward function '${n}' (known: ${known})`);
  });
}

/** Split a resolved CLI config into the trainer's config and the reward fields. */
export function splitRewardConfig<C extends { rewardFuncs: string[]; rewardModule: string | null }>(
  c: C,
): { config: Omit<C, "rewardFuncs" | "rewardModule">; rewardFuncs: string[]; rewardModule: string | null } {
  const { rewardFuncs, rewardModule, ...config } = c;
  return { config, rewardFuncs, rewardModule };
}
