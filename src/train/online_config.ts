// The one config schema of the online loop (TRL GRPOConfig names where TRL has the option): the shared
// TrainingArguments fields, sampling, scoring, rollout/training mismatch correction and asynchronous rollouts.
// Every online trainer's schema is ONLINE_FIELDS plus its own algorithm fields (each may override a default,
// e.g. numGenerations 2 for RLOO), resolved by `resolveOnlineConfig`, which also applies a named preset to the
// fields the user did not set (an explicit value equal to the default is kept).
// Not here: the loop (online_loop.ts), the algorithms' own fields (grpo.ts, rloo.ts, ppo.ts, ...).

import { z } from "zod";
import type { ImportanceSamplingCorrection } from "../losses/rollout_correction.js";
import { ConfigError, resolveConfig } from "./config.js";
import { LOOP_FIELDS } from "./loop.js";

const IS_MODES = [
  "none",
  "token_truncate",
  "token_mask",
  "sequence_truncate",
  "sequence_mask",
] as const satisfies readonly ImportanceSamplingCorrection[];

const { maxTokensPerBatch: _tokenBudget, ...LOOP_ONLINE } = LOOP_FIELDS;

export const ONLINE_FIELDS = {
  ...LOOP_ONLINE,
  // ---- sampling ----
  maxPromptLength: z.number().int().positive().nullable().default(512).describe("Keep the last N prompt tokens; null keeps all."),
  maxCompletionLength: z
    .number()
    .int()
    .positive()
    .default(256)
    .describe("Tokens per completion at most (policy and environment tokens together in multi-turn rollouts)."),
  temperature: z.number().positive().default(1).describe("Sampling temperature; log-probs are computed on logits / temperature (TRL)."),
  topP: z.number().gt(0).max(1).default(1).describe("Nucleus sampling mass; 1 disables."),
  topK: z.number().int().nonnegative().default(0).describe("Keep the k most likely tokens; 0 disables."),
  minP: z.number().min(0).max(1).default(0).describe("Min-p sampling; 0 disables."),
  numGenerations: z.number().int().min(1).default(8).describe("G: completions sampled per prompt."),
  numIterations: z.number().int().positive().default(1).describe("mu: optimizer passes over each generation batch (old log-probs fixed)."),
  maskTruncatedCompletions: z.boolean().default(false).describe("Completions that end without EOS get no loss."),
  generatorUrl: z
    .string()
    .nullable()
    .default(null)
    .describe("Sample from this OpenAI-compatible server (vLLM, SGLang, nexus serve) serving the policy; null samples locally."),
  generatorModel: z.string().nullable().default(null).describe("The served model or LoRA adapter to request; null: the server's first."),
  maxOffPolicySteps: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe("Asynchronous rollouts: generation runs up to N generation batches ahead of the update (0: synchronous)."),
  importanceSamplingCorrection: z
    .enum(IS_MODES)
    .default("sequence_mask")
    .describe(
      "Rollout/training mismatch correction (TRL vllm_importance_sampling_mode); applies with a generatorUrl or maxOffPolicySteps > 0.",
    ),
  importanceSamplingCap: z.number().positive().nullable().default(3).describe("Upper bound C_max of the correction weights (TRL 3.0)."),
  importanceSamplingFloor: z.number().min(0).nullable().default(null).describe("Lower bound C_min of the correction weights; null: none."),
  // ---- scoring ----
  rewardWeights: z
    .array(z.number())
    .nullable()
    .default(null)
    .describe("One weight per reward source (reward functions, then reward model, PRM, judge); null = all 1."),
  missingEosPenalty: z.number().nullable().default(null).describe("Subtracted from the reward of a completion without EOS (TRL)."),
  dynamicSampling: z.boolean().default(false).describe("DAPO: drop groups whose rewards are all equal and refill from new prompts."),
  dynamicSamplingMaxRounds: z.number().int().positive().default(3).describe("Generation rounds per batch at most when refilling."),
  evalNumGenerations: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("Completions per evaluation prompt (held-out reward); null = numGenerations."),
};
export const ONLINE_SCHEMA = z.object(ONLINE_FIELDS).strict();
/** The loop's resolved config: what every online algorithm's config extends. */
export type OnlineConfig = z.output<typeof ONLINE_SCHEMA>;

/** Cross-field rules every online trainer shares. */
export const ONLINE_RULES: ((c: OnlineConfig) => string | null)[] = [
  (c) =>
    c.importanceSamplingCap !== null && c.importanceSamplingFloor !== null && c.importanceSamplingFloor > c.importanceSamplingCap
      ? `importanceSamplingFloor (${c.importanceSamplingFloor}) exceeds importanceSamplingCap (${c.importanceSamplingCap})`
      : null,
  (c) => (c.maxPromptLength !== null && c.maxPromptLength < 1 ? "maxPromptLength must be >= 1" : null),
];

/** Whether completions may come from another engine or an older policy, so the loss needs correction weights. */
export const correctionApplies = (c: OnlineConfig): boolean =>
  c.importanceSamplingCorrection !== "none" && (c.generatorUrl !== null || c.maxOffPolicySteps > 0);

/**
 * Resolve an online trainer's config: unknown keys are errors, presets fill only the keys the user did not
 * give (a given value equal to the default is kept), then the shared and the trainer's rules run.
 */
export function resolveOnlineConfig<S extends z.ZodObject>(
  where: string,
  schema: S,
  input: Record<string, unknown> | undefined,
  opts: { presets?: Record<string, Readonly<Record<string, unknown>>>; rules?: ((c: z.output<S>) => string | null)[] } = {},
): z.output<S> {
  const given = { ...(input ?? {}) };
  const name = given.preset;
  if (name !== undefined && name !== null && opts.presets !== undefined) {
    const preset = opts.presets[name as string];
    if (preset === undefined)
      throw new ConfigError(`[${where}] unknown preset '${String(name)}'; known: ${Object.keys(opts.presets).join(", ")}`);
    for (const [k, v] of Object.entries(preset)) if (!(k in given) || given[k] === undefined) given[k] = v;
  }
  const rules = [...(ONLINE_RULES as ((c: z.output<S>) => string | null)[]), ...(opts.rules ?? [])];
  return resolveConfig(where, schema, given, rules);
}
