// GRPO and its variants as TRL's GRPOTrainer (v1.9): G sampled completions per prompt, weighted reward functions,
// group-normalised advantages, the clipped surrogate of losses/grpo.ts (token = GRPO, sequence = GSPO; loss types
// grpo / bnpo / dr_grpo / dapo), k3 KL only when beta > 0, numIterations passes with fixed old log-probs.
// Named presets (GRPO_PRESETS) give Dr. GRPO, DAPO and GSPO. Shao et al. 2024; Liu et al. 2025; Yu et al. 2025; Zheng et al. 2025.
// Differs from TRL: DAPO dynamic sampling is here (TRL has none); process supervision (DeepSeekMath per-step
// rewards → processAdvantages) is a config value; no vLLM, cispo/sapo/vespo losses, entropy masks or GDPO.

import { z } from "zod";
import { stepEndOffsets } from "../data/tasks/task.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { checkTokenizerFitsModel } from "../io/tokenizer.js";
import { grpoAdvantages, processAdvantages, REWARD_SCALES, type ScaleRewards } from "../losses/advantages.js";
import { GLOBAL_TOKEN_NORMALISED, GRPO_AGGREGATIONS, type GrpoLossType, grpoLoss, resolveGrpoConfig } from "../losses/grpo.js";
import { type CausalLM, saveCausalLM } from "../models/causal_lm.js";
import { LoraModel, saveLoraAdapter } from "../models/lora.js";
import { overlongPenalty } from "../rewards/rule.js";
import { type RewardArgs, RewardError, type RewardFn } from "../rewards/types.js";
import { div, fromArray, Tensor } from "../tensor/index.js";
import { ConfigError } from "./config.js";
import { LOOP_FIELDS, type RunResult } from "./loop.js";
import type { Metrics } from "./metrics.js";
import { type GenerationBatch, type MicroBatch, type MicroLoss, type OnlineAlgorithm, runOnlineRl } from "./online_loop.js";
import { padRows, rewardArgs, tokenizePrompts } from "./rollout.js";
import { runControl } from "./run_state.js";
import { resolveModel, resolveTokenizer, resolveTrainerConfig, type TrainerOptions, writeOutputExtras } from "./trainer_io.js";

const LOSS_TYPES = Object.keys(GRPO_AGGREGATIONS) as [GrpoLossType, ...GrpoLossType[]];
const SCALES = Object.keys(REWARD_SCALES) as [ScaleRewards, ...ScaleRewards[]];
export type GrpoPreset = "grpo" | "grpo_original" | "dr_grpo" | "dapo" | "gspo";

/** Sampling / rollout fields shared by the group-RL trainers (TRL GRPOConfig names and defaults). */
export const ROLLOUT_FIELDS = {
  maxPromptLength: z.number().int().positive().nullable().default(512).describe("Keep the last N prompt tokens; null keeps all."),
  maxCompletionLength: z.number().int().positive().default(256).describe("Tokens sampled per completion at most."),
  temperature: z.number().positive().default(1).describe("Sampling temperature (log-probs are computed at the same temperature)."),
  topP: z.number().gt(0).max(1).default(1).describe("Nucleus sampling mass; 1 disables."),
  topK: z.number().int().nonnegative().default(0).describe("Keep the k most likely tokens; 0 disables."),
  minP: z.number().min(0).max(1).default(0).describe("Min-p sampling; 0 disables."),
  numIterations: z.number().int().positive().default(1).describe("μ: optimizer steps per generation batch (old log-probs fixed)."),
  maskTruncatedCompletions: z.boolean().default(false).describe("Completions that end without EOS get no loss."),
  rewardWeights: z.array(z.number()).nullable().default(null).describe("One weight per reward function; null = all 1."),
  generatorUrl: z
    .string()
    .nullable()
    .default(null)
    .describe(
      "Sample rollouts from this OpenAI-compatible server (vLLM, SGLang, nexus serve) serving the current policy; null samples locally.",
    ),
};

export const GRPO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate (TRL GRPO default 1e-6)."),
  perDeviceTrainBatchSize: z
    .number()
    .int()
    .positive()
    .default(8)
    .describe("Completions per micro-batch; × gradientAccumulationSteps must hold whole groups of numGenerations."),
  ...ROLLOUT_FIELDS,
  preset: z
    .enum(["grpo", "grpo_original", "dr_grpo", "dapo", "gspo"])
    .nullable()
    .default(null)
    .describe("Named variant (GRPO_PRESETS); it sets fields left at their defaults."),
  numGenerations: z.number().int().min(2).default(8).describe("G: completions sampled per prompt."),
  beta: z.number().min(0).default(0).describe("k3 KL weight; 0 loads no reference model."),
  epsilon: z.number().min(0).lt(1).default(0.2).describe("Lower clip: ratio >= 1 - epsilon."),
  epsilonHigh: z.number().min(0).nullable().default(null).describe("Upper clip 1 + epsilonHigh; null = epsilon (DAPO 0.28)."),
  delta: z.number().nullable().default(null).describe("INTELLECT-2 cap on the unclipped ratio; null disables."),
  lossType: z.enum(LOSS_TYPES).default("dapo").describe("Token aggregation: grpo, bnpo, dr_grpo or dapo (TRL default)."),
  scaleRewards: z.enum(SCALES).default("group").describe("Divide advantages by the group std, batch std, or none (Dr. GRPO)."),
  importanceSamplingLevel: z.enum(["token", "sequence"]).default("token").describe("token = GRPO, sequence = GSPO."),
  overlongPenalty: z.boolean().default(false).describe("Add DAPO's soft overlong punishment as a reward function."),
  overlongBufferLength: z.number().int().positive().nullable().default(null).describe("DAPO L_cache; null = maxCompletionLength / 4."),
  overlongPenaltyFactor: z.number().min(0).default(1).describe("Weight of the overlong punishment."),
  dynamicSampling: z.boolean().default(false).describe("DAPO: drop groups whose rewards are all equal and refill from new prompts."),
  dynamicSamplingMaxRounds: z.number().int().positive().default(3).describe("Generation rounds per step at most when refilling."),
  processSupervision: z.boolean().default(false).describe("DeepSeekMath process supervision: per-step rewards from stepRewardFn."),
  stepSeparator: z.string().default("\n").describe("What ends a step in a completion (process supervision)."),
};
export const GRPO_SCHEMA = z.object(GRPO_FIELDS).strict();
export type GrpoTrainConfig = z.output<typeof GRPO_SCHEMA>;

/** Named variants: each sets the fields a user left at their defaults. */
export const GRPO_PRESETS = Object.freeze({
  /** TRL's current GRPOTrainer defaults. */
  grpo: Object.freeze({}),
  /** DeepSeekMath's GRPO: per-sequence token mean and a k3 KL at 0.04 (TRL before v0.19). */
  grpo_original: Object.freeze({ lossType: "grpo", beta: 0.04 }),
  /** Dr. GRPO: constant normaliser, no std scaling. */
  dr_grpo: Object.freeze({ lossType: "dr_grpo", scaleRewards: "none" }),
  /** DAPO: clip-higher, token-level loss, dynamic sampling, soft overlong punishment (+ TRL's truncation mask). */
  dapo: Object.freeze({
    lossType: "dapo",
    epsilonHigh: 0.28,
    dynamicSampling: true,
    overlongPenalty: true,
    maskTruncatedCompletions: true,
  }),
  /** GSPO as TRL's docs give it: sequence-level ratio, tiny clip range, no KL. */
  gspo: Object.freeze({ importanceSamplingLevel: "sequence", lossType: "grpo", beta: 0, epsilon: 3e-4, epsilonHigh: 4e-4 }),
}) satisfies Record<GrpoPreset, Readonly<Partial<GrpoTrainConfig>>>;

export const GRPO_RULES: ((c: GrpoTrainConfig) => string | null)[] = [
  (c) =>
    (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) % c.numGenerations === 0
      ? null
      : `the generation batch (perDeviceTrainBatchSize ${c.perDeviceTrainBatchSize} × gradientAccumulationSteps ` +
        `${c.gradientAccumulationSteps}) must hold whole groups of numGenerations = ${c.numGenerations}`,
  (c) => {
    try {
      resolveGrpoConfig(grpoLossConfig(c));
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  },
  (c) =>
    c.overlongBufferLength !== null && c.overlongBufferLength > c.maxCompletionLength
      ? `overlongBufferLength (${c.overlongBufferLength}) exceeds maxCompletionLength (${c.maxCompletionLength})`
      : null,
];

export function grpoLossConfig(c: GrpoTrainConfig) {
  return {
    lossType: c.lossType,
    importanceSamplingLevel: c.importanceSamplingLevel,
    beta: c.beta,
    epsilon: c.epsilon,
    epsilonHigh: c.epsilonHigh,
    delta: c.delta,
    maxCompletionLength: c.maxCompletionLength,
  };
}

/**
 * Validate a GRPO config, then apply its preset: a preset value replaces a field only where the field holds its
 * schema default (so an explicit value that equals the default is also replaced; set preset null to avoid that).
 */
export function resolveGrpoTrainConfig(input?: Record<string, unknown>): GrpoTrainConfig {
  const parsed = resolveTrainerConfig("grpo", GRPO_SCHEMA, input ?? {});
  if (parsed.preset !== null) {
    const defaults = GRPO_SCHEMA.parse({}) as Record<string, unknown>;
    const out = parsed as Record<string, unknown>;
    for (const [k, v] of Object.entries(GRPO_PRESETS[parsed.preset])) {
      if (JSON.stringify(out[k]) === JSON.stringify(defaults[k])) out[k] = v;
    }
  }
  for (const rule of GRPO_RULES) {
    const msg = rule(parsed);
    if (msg !== null) throw new ConfigError(`[grpo] ${msg}`);
  }
  return parsed;
}

// ---- process supervision ------------------------------------------------------------------------------------

/** Per-step rewards: for completion i, one number per step of `steps[i]` (null: no opinion, advantage 0). */
export type StepRewardFn = ((args: RewardArgs & { steps: string[][] }) => (number[] | null)[] | Promise<(number[] | null)[]>) & {
  readonly name: string;
};

/**
 * Steps of a completion (split at `separator`, the separator kept in no step) and the token index where each ends.
 * The last step is extended to the last token (so a trailing EOS shares its reward).
 */
export function completionSteps(
  tok: Pick<Tokenizer, "decode">,
  ids: readonly number[],
  separator: string,
): { steps: string[]; ends: number[] } {
  const text = tok.decode(ids, { skipSpecialTokens: true });
  const offsets = stepEndOffsets(text, separator);
  const lens: number[] = [];
  for (let k = 0; k < ids.length; k++) lens.push(tok.decode(ids.slice(0, k + 1), { skipSpecialTokens: true }).length);
  const steps: string[] = [];
  const ends: number[] = [];
  let start = 0;
  for (const off of offsets) {
    const body = text.slice(start, off + 1);
    steps.push(body.endsWith(separator) ? body.slice(0, body.length - separator.length) : body);
    start = off + 1;
    let k = lens.findIndex((l) => l > off);
    if (k < 0) k = ids.length - 1;
    ends.push(k);
  }
  if (ends.length > 0) ends[ends.length - 1] = ids.length - 1;
  return { steps, ends };
}

// ---- the algorithm --------------------------------------------------------------------------------------------

interface GrpoState {
  /** [B] sequence advantages, or per-row token advantages (process supervision). */
  seq: Float32Array | null;
  token: Float32Array[] | null;
}

function grpoAlgorithm(
  tok: Tokenizer,
  stepRewardFn: StepRewardFn | undefined,
): OnlineAlgorithm<GrpoTrainConfig> & { state: WeakMap<GenerationBatch, GrpoState> } {
  const state = new WeakMap<GenerationBatch, GrpoState>();
  return {
    label: "grpo",
    state,
    needsOld: (c) => c.numIterations > 1,
    async prepare(batch, c) {
      const g = c.numGenerations;
      const total = new Tensor(Float32Array.from(batch.rewards.total), [batch.rewards.total.length]);
      if (!c.processSupervision) {
        const adv = grpoAdvantages(total, { numGenerations: g, scaleRewards: c.scaleRewards });
        state.set(batch, { seq: adv.hostData() as Float32Array, token: null });
        return;
      }
      if (stepRewardFn === undefined) throw new RewardError("[grpo] processSupervision needs a stepRewardFn");
      const r = batch.rollout;
      const split = r.completionIds.map((ids) => completionSteps(tok, ids, c.stepSeparator));
      const out = await stepRewardFn({ ...rewardArgs(r), steps: split.map((s) => s.steps) });
      if (!Array.isArray(out) || out.length !== split.length) {
        throw new RewardError(
          `[grpo] step reward ${stepRewardFn.name}: expected ${split.length} rows, got ${Array.isArray(out) ? out.length : typeof out}`,
        );
      }
      const stepRewards = out.map((row, i) => {
        if (row === null) return [];
        if (row.length !== split[i].steps.length || row.some((x) => !Number.isFinite(x))) {
          throw new RewardError(
            `[grpo] step reward ${stepRewardFn.name}: completion ${i} has ${split[i].steps.length} steps, got [${row.join(", ")}]`,
          );
        }
        return row;
      });
      const ends = stepRewards.map((row, i) => (row.length === 0 ? [] : split[i].ends));
      const width = Math.max(1, ...r.completionIds.map((x) => x.length));
      const adv = processAdvantages(stepRewards, ends, { numGenerations: g, completionLength: width });
      const ad = adv.hostData() as Float32Array;
      const rows = Array.from({ length: split.length }, (_, i) => ad.slice(i * width, (i + 1) * width));
      const flat = stepRewards.flat();
      if (flat.length > 0) batch.metrics["step_reward/mean"] = flat.reduce((a, b) => a + b, 0) / flat.length;
      state.set(batch, { seq: null, token: rows });
    },
    microLoss(batch, mb, c): MicroLoss {
      const st = state.get(batch)!;
      const tc = mb.packed.completionWidth;
      const advantages =
        st.seq !== null
          ? fromArray(
              Float32Array.from(mb.rows, (i) => st.seq![i]),
              [mb.rows.length],
            )
          : padRows(
              mb.rows.map((i) => st.token![i]),
              tc,
            );
      const out = grpoLoss(
        {
          perTokenLogps: mb.logps,
          oldPerTokenLogps: mb.old,
          refPerTokenLogps: c.beta !== 0 ? mb.ref : undefined,
          advantages,
          completionMask: mb.mask,
          numItemsInBatch: batch.activeTokens,
        },
        grpoLossConfig(c),
      );
      // TRL divides every loss type but dapo (already normalised by the whole batch's tokens) by the accumulation steps
      const loss = GLOBAL_TOKEN_NORMALISED.has(c.lossType) ? out.loss : div(out.loss, batch.numMicroBatches);
      return { loss, advantages, sums: grpoMetrics(out.importanceWeights, advantages, mb.mask, out.perTokenKl, c) };
    },
  };
}

/** TRL's clip_ratio/{low,high,region}_mean over counted tokens, the mean ratio, and the masked mean KL. */
function grpoMetrics(w: Tensor, adv: Tensor, mask: Tensor, kl: Tensor | undefined, c: GrpoTrainConfig): Record<string, [number, number]> {
  const [b, t] = mask.shape;
  // metrics on the host: one download of the ratios (and the KL); advantages and mask are host-made
  const wd = w.hostData();
  const wt = w.shape[1];
  const ad = adv.hostData();
  const md = mask.hostData();
  const kd = kl?.hostData();
  const lo = 1 - c.epsilon;
  const hi = 1 + (c.epsilonHigh ?? c.epsilon);
  let low = 0;
  let high = 0;
  let n = 0;
  let ratio = 0;
  let klSum = 0;
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < t; j++) {
      const k = i * t + j;
      if (md[k] === 0) continue;
      const wi = wd[i * wt + (wt === 1 ? 0 : j)];
      const a = adv.ndim === 1 ? ad[i] : ad[k];
      if (wi < lo && a < 0) low++;
      if (wi > hi && a > 0) high++;
      ratio += wi;
      if (kd !== undefined) klSum += kd[k];
      n++;
    }
  }
  const sums: Record<string, [number, number]> = {
    "clip_ratio/low_mean": [low, n],
    "clip_ratio/high_mean": [high, n],
    "clip_ratio/region_mean": [low + high, n],
    "ratio/mean": [ratio, n],
  };
  if (c.beta !== 0 && kl !== undefined) sums.kl = [klSum, n];
  return sums;
}

// ---- entry point ----------------------------------------------------------------------------------------------

export interface OnlineTrainOptions<C> extends Omit<TrainerOptions<C>, "model" | "evalData"> {
  /** The policy (a model object, a LoraModel whose adapters train, or an HF folder). */
  model: CausalLM | LoraModel<CausalLM> | string;
  /** Reward functions (weights: config rewardWeights). */
  rewardFuncs: RewardFn[];
  /** Explicit frozen reference for beta > 0 (default: base under LoRA, else a frozen copy). */
  refModel?: CausalLM;
  /** Evaluation hook, logged with an `eval_` prefix every evalSteps and at the end. */
  evaluate?: () => Metrics | Promise<Metrics>;
  onMicroBatch?: (batch: GenerationBatch, mb: MicroBatch, out: MicroLoss) => void;
  onBatch?: (batch: GenerationBatch) => void;
}

export interface GrpoTrainOptions extends OnlineTrainOptions<GrpoTrainConfig> {
  /** Per-step rewards for processSupervision. */
  stepRewardFn?: StepRewardFn;
}

export interface OnlineTrainResult<C> {
  model: CausalLM | LoraModel<CausalLM>;
  config: C;
  run: RunResult;
}

/** Shared by the online entry points: resolve model and tokenizer, tokenize prompts, run, save the output folder. */
export async function trainOnline<C extends GrpoTrainConfig | Record<string, unknown>>(
  label: string,
  opts: OnlineTrainOptions<C>,
  cfg: C & { maxPromptLength: number | null },
  algorithm: OnlineAlgorithm<never>,
  rewardFuncs: RewardFn[],
): Promise<OnlineTrainResult<C>> {
  const model = typeof opts.model === "string" ? await resolveModel(opts.model) : opts.model;
  const tok = resolveTokenizer(opts.tokenizer, opts.model, label);
  const base = model instanceof LoraModel ? model.base : model;
  checkTokenizerFitsModel(tok, base.config.vocabSize, label);
  if (rewardFuncs.length === 0) throw new RewardError(`[${label}] need at least one reward function`);
  const prompts = tokenizePrompts(tok, opts.data, cfg.maxPromptLength, label);
  const resolved = { ...(opts.extraConfig ?? {}), ...cfg };
  const outputDir = opts.outputDir ?? null;
  const run = await runOnlineRl({
    model,
    tokenizer: tok,
    prompts,
    rewardFuncs,
    config: cfg as never,
    algorithm,
    refModel: opts.refModel,
    outputDir,
    ...runControl(opts),
    fullConfig: resolved,
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
    evaluate: opts.evaluate,
    onMicroBatch: opts.onMicroBatch,
    onBatch: opts.onBatch,
  });
  if (outputDir !== null && !run.interrupted) {
    if (model instanceof LoraModel) saveLoraAdapter(model, outputDir);
    else saveCausalLM(model, outputDir);
    writeOutputExtras(outputDir, tok, resolved);
  }
  return { model, config: cfg, run };
}

export async function trainGrpo(opts: GrpoTrainOptions): Promise<OnlineTrainResult<GrpoTrainConfig>> {
  const cfg = resolveGrpoTrainConfig(opts.config as Record<string, unknown>);
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "grpo");
  const fns = [...opts.rewardFuncs];
  let weights = cfg.rewardWeights;
  if (weights !== null && weights.length !== fns.length) {
    throw new ConfigError(`[grpo] rewardWeights has ${weights.length} entries for ${fns.length} reward functions`);
  }
  if (cfg.overlongPenalty) {
    const cache = cfg.overlongBufferLength ?? Math.max(1, Math.floor(cfg.maxCompletionLength / 4));
    fns.push(overlongPenalty({ maxCompletionLen: cfg.maxCompletionLength, softPunishCache: cache }));
    weights = [...(weights ?? opts.rewardFuncs.map(() => 1)), cfg.overlongPenaltyFactor];
  }
  if (cfg.processSupervision && opts.stepRewardFn === undefined) throw new ConfigError("[grpo] processSupervision needs a stepRewardFn");
  const run = { ...cfg, rewardWeights: weights };
  const algo = grpoAlgorithm(tok, opts.stepRewardFn);
  const res = await trainOnline("grpo", { ...opts, tokenizer: tok }, run, algo as OnlineAlgorithm<never>, fns);
  return { ...res, config: cfg };
}
