// Reward functions for the online CLIs (grpo, rloo, ppo, online-dpo): chosen by name from the built-ins
// (`--reward-funcs accuracy,format,overlong`) or loaded from a user's module (`--reward-module ./r.ts`: .ts,
// .mts and .cts through tsx's loader API, so they load on the built CLI; .js and .mjs by plain import), weighted
// by the trainer's `rewardWeights`. A module's function whose signature is not a Nexus reward function's (TRL's
// `(prompts, completions, **kwargs)`) is refused, and one that throws a TypeError is reported, with the right
// signature. TRL takes Python callables or Hub model ids; model-based rewards (ORM/PRM) are not loaded here.

import { existsSync } from "node:fs";
import { extname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import { accuracyReward, arithmeticFormatReward, formatReward, lengthPenalty, overlongPenalty } from "../rewards/rule.js";
import { namedReward, RewardError, type RewardFn } from "../rewards/types.js";
import { SHARED } from "./shared_options.js";

/** What a built-in may need from the trainer's config. */
export interface RewardContext {
  maxCompletionLength: number;
  /** DAPO L_cache; default maxCompletionLength / 4. */
  overlongBufferLength?: number | null;
  /** --answer-pattern: how `accuracy` reads a completion's answer (default: rewards/answer.ts's forms). */
  answerPattern?: string | null;
}

/** Built-in rewards by CLI name. */
export const BUILTIN_REWARDS = Object.freeze({
  accuracy: (c: RewardContext) =>
    accuracyReward({ answer: c.answerPattern ? new AnswerExtractor({ pattern: c.answerPattern }) : DEFAULT_ANSWER }),
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
    .describe("A .ts/.js module exporting reward functions; with no --reward-funcs, all its function exports are used"),
  answerPattern: SHARED.answerPattern.describe(
    'How the accuracy reward reads a completion\'s answer: a regex whose first group is the answer (default: \\boxed{x}, "#### x", "answer is x", else the last number)',
  ),
};

/** The signature a reward function must have, shown when a module's function does not fit. */
export const REWARD_SIGNATURE = [
  "a reward function takes ONE object and returns one number (or null) per completion:",
  "  export function myReward({ prompts, completions, ...columns }: RewardArgs): (number | null)[]",
  "  (prompts[i], completions[i] and every extra dataset column's entry i belong to completion i; it may be async)",
  "TRL's `def f(prompts, completions, **kwargs)` becomes `({ prompts, completions, ...kwargs }) => ...`",
].join("\n");

type ModuleFn = (...args: unknown[]) => unknown;
const isFunction = (x: unknown): x is ModuleFn => typeof x === "function";

/** Check a user function's arity and wrap it so that a TypeError inside names the expected signature. */
function checkedReward(name: string, fn: ModuleFn, file: string): RewardFn {
  if (fn.length >= 2) {
    throw new RewardError(`[reward-module] ${file}: export '${name}' takes ${fn.length} parameters, not one object;\n${REWARD_SIGNATURE}`);
  }
  return namedReward(name, async (args) => {
    try {
      return (await fn(args)) as (number | null)[];
    } catch (e) {
      if (e instanceof TypeError) {
        throw new RewardError(`[reward ${name}] ${file}: ${e.message}; is its signature right? ${REWARD_SIGNATURE}`);
      }
      throw e;
    }
  });
}

const TS_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx"]);

/** Import a module by path: TypeScript through tsx's API (works on the built CLI), JavaScript directly. */
async function importModule(abs: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(abs).href;
  if (!TS_EXTENSIONS.has(extname(abs))) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import("tsx/esm/api");
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

/**
 * Import a reward module: its named function exports (and `default`: a function or an array of functions), not
 * yet checked (a helper export need not be a reward function; loadRewardFunctions checks the ones it uses).
 */
export async function importRewardModule(path: string, cwd = process.cwd()): Promise<Map<string, ModuleFn>> {
  const abs = isAbsolute(path) ? path : resolve(cwd, path);
  if (!existsSync(abs)) throw new RewardError(`[reward-module] ${abs} does not exist`);
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(abs);
  } catch (e) {
    throw new RewardError(`[reward-module] cannot import ${abs}: ${(e as Error).message}`);
  }
  const out = new Map<string, ModuleFn>();
  for (const [name, v] of Object.entries(mod)) {
    if (name === "default") {
      const list = Array.isArray(v) ? v : [v];
      for (const f of list) if (isFunction(f)) out.set(f.name || "default", f);
    } else if (isFunction(v)) out.set(name, v);
  }
  if (out.size === 0) throw new RewardError(`[reward-module] ${abs} exports no function;\n${REWARD_SIGNATURE}`);
  return out;
}

/**
 * Resolve reward names (module exports first, then built-ins) to functions; with no names, every export of
 * the module. An unknown name is an error that lists what exists.
 */
export async function loadRewardFunctions(names: readonly string[], modulePath: string | null, ctx: RewardContext): Promise<RewardFn[]> {
  const fromModule = modulePath === null ? new Map<string, ModuleFn>() : await importRewardModule(modulePath);
  if (names.length === 0) {
    if (fromModule.size === 0) throw new RewardError("[rewards] give --reward-funcs and/or --reward-module");
    return [...fromModule].map(([n, f]) => checkedReward(n, f, modulePath!));
  }
  return names.map((n) => {
    const f = fromModule.get(n);
    if (f !== undefined) return checkedReward(n, f, modulePath!);
    if (n in BUILTIN_REWARDS) return BUILTIN_REWARDS[n as BuiltinRewardName](ctx);
    const known = [...Object.keys(BUILTIN_REWARDS), ...fromModule.keys()].join(", ");
    throw new RewardError(`[rewards] unknown reward function '${n}' (known: ${known})`);
  });
}

/** Split a resolved CLI config into the trainer's config and the reward fields. */
export function splitRewardConfig<C extends { rewardFuncs: string[]; rewardModule: string | null; answerPattern: string | null }>(
  c: C,
): {
  config: Omit<C, "rewardFuncs" | "rewardModule" | "answerPattern">;
  rewardFuncs: string[];
  rewardModule: string | null;
  answerPattern: string | null;
} {
  const { rewardFuncs, rewardModule, answerPattern, ...config } = c;
  return { config, rewardFuncs, rewardModule, answerPattern };
}
