// GRPO and its variants as TRL's GRPOTrainer (v1.9), an algorithm of the one online loop: G sampled completions per
// prompt, the weighted reward mix, group-normalised advantages (or REINFORCE++ / -baseline returns, or DeepSeekMath
// process supervision), the per-token objectives of losses/grpo.ts (grpo / bnpo / dr_grpo / dapo clipped surrogate,
// cispo, sapo; token = GRPO, sequence = GSPO), k3 KL when beta > 0, the entropy bonus, rollout-correction weights
// for completions from another engine or an older policy, and numIterations passes with fixed old log-probs.
// Named presets (GRPO_PRESETS) give Dr. GRPO, DAPO, GSPO, CISPO, SAPO and REINFORCE++. Shao et al. 2024; Liu et al.
// 2025; Yu et al. 2025; Zheng et al. 2025; Hu 2025. Differs from TRL: DAPO dynamic sampling is here; no vespo,
// luspo, entropy masks or GDPO.

import { z } from "zod";
import { stepEndOffsets } from "../data/tasks/task.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { grpoAdvantages, processAdvantages, REWARD_SCALES, reinforcePlusPlusAdvantages, type ScaleRewards } from "../losses/advantages.js";
import { GLOBAL_TOKEN_NORMALISED, GRPO_AGGREGATIONS, type GrpoLossType, grpoLoss, resolveGrpoConfig } from "../losses/grpo.js";
import { rolloutCorrection } from "../losses/rollout_correction.js";
import { overlongPenalty } from "../rewards/rule.js";
import { type RewardArgs, RewardError, type RewardFn } from "../rewards/types.js";
import { div, fromArray, Tensor } from "../tensor/index.js";
import { ConfigError } from "./config.js";
import { ONLINE_FIELDS, type OnlineConfig, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, rewardSourceCount, trainOnline } from "./online_entry.js";
import {
  consecutiveMicroBatches,
  type GenerationBatch,
  type MicroBatch,
  type MicroLoss,
  type OnlineAlgorithm,
  type OnlineContext,
} from "./online_loop.js";
import { completionLogprobs, packRows, padRows, rewardArgs } from "./rollout.js";
import { resolveTokenizer } from "./trainer_io.js";

const LOSS_TYPES = Object.keys(GRPO_AGGREGATIONS) as [GrpoLossType, ...GrpoLossType[]];
const SCALES = Object.keys(REWARD_SCALES) as [ScaleRewards, ...ScaleRewards[]];
export type GrpoPreset =
  | "grpo"
  | "grpo_original"
  | "dr_grpo"
  | "dapo"
  | "gspo"
  | "cispo"
  | "sapo"
  | "reinforce_pp"
  | "reinforce_pp_baseline";
const PRESETS = ["grpo", "grpo_original", "dr_grpo", "dapo", "gspo", "cispo", "sapo", "reinforce_pp", "reinforce_pp_baseline"] as const;

/** The group-RL fields shared by GRPO and RLOO on top of the loop's (TRL GRPOConfig names and defaults). */
export const GROUP_RL_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate (TRL GRPO / RLOO default 1e-6)."),
  perDeviceTrainBatchSize: z
    .number()
    .int()
    .positive()
    .default(8)
    .describe("Completions per micro-batch; x gradientAccumulationSteps must hold whole groups of numGenerations."),
  numGenerations: z.number().int().min(2).default(8).describe("G: completions sampled per prompt."),
  epsilon: z.number().min(0).lt(1).default(0.2).describe("Lower clip: ratio >= 1 - epsilon."),
  epsilonHigh: z
    .number()
    .min(0)
    .nullable()
    .default(null)
    .describe("Upper clip 1 + epsilonHigh; null = epsilon (DAPO 0.28; CISPO's cap, 5)."),
};

export const GRPO_FIELDS = {
  ...GROUP_RL_FIELDS,
  preset: z.enum(PRESETS).nullable().default(null).describe("Named variant (GRPO_PRESETS); it sets the fields you did not set."),
  beta: z.number().min(0).default(0).describe("k3 KL weight in the loss; 0 loads no reference model."),
  delta: z.number().nullable().default(null).describe("INTELLECT-2 cap on the unclipped ratio; null disables."),
  lossType: z.enum(LOSS_TYPES).default("dapo").describe("grpo, bnpo, dr_grpo, dapo (TRL default), cispo or sapo."),
  scaleRewards: z.enum(SCALES).default("group").describe("Divide advantages by the group std, batch std, or none (Dr. GRPO)."),
  importanceSamplingLevel: z.enum(["token", "sequence"]).default("token").describe("token = GRPO, sequence = GSPO."),
  sapoTemperaturePos: z.number().positive().default(1).describe("SAPO gate temperature for positive advantages."),
  sapoTemperatureNeg: z.number().positive().default(1.05).describe("SAPO gate temperature for non-positive advantages."),
  entropyCoef: z.number().default(0).describe("Entropy bonus: loss -= entropyCoef * mean token entropy (TRL entropy_coef)."),
  advantageEstimator: z
    .enum(["grpo", "reinforce_pp", "reinforce_pp_baseline"])
    .default("grpo")
    .describe("grpo: group-normalised; reinforce_pp(_baseline): OpenRLHF REINFORCE++ returns, whitened over the batch."),
  rewardKlCoef: z.number().min(0).default(0).describe("REINFORCE++: k1 KL to the reference subtracted per token from the reward."),
  overlongPenalty: z.boolean().default(false).describe("Add DAPO's soft overlong punishment as a reward function."),
  overlongBufferLength: z.number().int().positive().nullable().default(null).describe("DAPO L_cache; null = maxCompletionLength / 4."),
  overlongPenaltyFactor: z.number().min(0).default(1).describe("Weight of the overlong punishment."),
  processSupervision: z.boolean().default(false).describe("DeepSeekMath process supervision: per-step rewards from stepRewardFn."),
  stepSeparator: z.string().default("\n").describe("What ends a step in a completion (process supervision)."),
};
export const GRPO_SCHEMA = z.object(GRPO_FIELDS).strict();
export type GrpoTrainConfig = z.output<typeof GRPO_SCHEMA>;

/** Named variants: each sets the fields a user did not set. */
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
  /** CISPO (MiniMax-M1) with ScaleRL's recommended weight cap. */
  cispo: Object.freeze({ lossType: "cispo", epsilonHigh: 5 }),
  /** SAPO: soft gating with TRL's temperatures. */
  sapo: Object.freeze({ lossType: "sapo" }),
  /** REINFORCE++ (OpenRLHF): batch-whitened returns, the clipped token loss. */
  reinforce_pp: Object.freeze({ advantageEstimator: "reinforce_pp", lossType: "dapo" }),
  /** REINFORCE++-baseline: group-mean baseline, then batch whitening. */
  reinforce_pp_baseline: Object.freeze({ advantageEstimator: "reinforce_pp_baseline", lossType: "dapo" }),
}) satisfies Record<GrpoPreset, Readonly<Partial<GrpoTrainConfig>>>;

export const GRPO_RULES: ((c: GrpoTrainConfig) => string | null)[] = [
  (c) =>
    (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) % c.numGenerations === 0
      ? null
      : `the generation batch (perDeviceTrainBatchSize ${c.perDeviceTrainBatchSize} x gradientAccumulationSteps ` +
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
  (c) =>
    c.processSupervision && c.advantageEstimator !== "grpo"
      ? `processSupervision needs advantageEstimator grpo, not ${c.advantageEstimator}`
      : null,
  (c) => (c.rewardKlCoef > 0 && c.advantageEstimator === "grpo" ? "rewardKlCoef applies to the reinforce_pp estimators only" : null),
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
    sapoTemperaturePos: c.sapoTemperaturePos,
    sapoTemperatureNeg: c.sapoTemperatureNeg,
    entropyCoef: c.entropyCoef,
  };
}

/** Validate a GRPO config; a preset sets the fields the input does not set (explicit values win, even defaults). */
export function resolveGrpoTrainConfig(input?: Record<string, unknown>): GrpoTrainConfig {
  return resolveOnlineConfig("grpo", GRPO_SCHEMA, input, { presets: GRPO_PRESETS, rules: GRPO_RULES });
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

async function processSupervisionAdvantages(
  batch: GenerationBatch,
  c: GrpoTrainConfig,
  tok: Tokenizer,
  fn: StepRewardFn,
): Promise<Float32Array[]> {
  const r = batch.rollout;
  const split = r.completionIds.map((ids) => completionSteps(tok, ids, c.stepSeparator));
  const out = await fn({ ...rewardArgs(r), steps: split.map((s) => s.steps) });
  if (!Array.isArray(out) || out.length !== split.length) {
    throw new RewardError(
      `[grpo] step reward ${fn.name}: expected ${split.length} rows, got ${Array.isArray(out) ? out.length : typeof out}`,
    );
  }
  const stepRewards = out.map((row, i) => {
    if (row === null) return [];
    if (row.length !== split[i].steps.length || row.some((x) => !Number.isFinite(x))) {
      throw new RewardError(`[grpo] step reward ${fn.name}: completion ${i} has ${split[i].steps.length} steps, got [${row.join(", ")}]`);
    }
    return row;
  });
  const ends = stepRewards.map((row, i) => (row.length === 0 ? [] : split[i].ends));
  const width = Math.max(1, ...r.completionIds.map((x) => x.length));
  const adv = processAdvantages(stepRewards, ends, { numGenerations: c.numGenerations, completionLength: width });
  const flat = stepRewards.flat();
  if (flat.length > 0) batch.metrics["step_reward/mean"] = flat.reduce((a, b) => a + b, 0) / flat.length;
  return Array.from({ length: split.length }, (_, i) => (adv.hostData() as Float32Array).slice(i * width, (i + 1) * width));
}

// ---- the algorithm --------------------------------------------------------------------------------------------

/** Sequence advantages [B], or per-row token advantages (process supervision, REINFORCE++). */
export type GroupAdvantages = { seq: Float32Array; token: null } | { seq: null; token: Float32Array[] };

/** TRL's GRPO advantages, or the REINFORCE++ ones, of a prepared batch. */
function advantagesOf(batch: GenerationBatch, c: GrpoTrainConfig): GroupAdvantages {
  const total = (batch.rewards as NonNullable<GenerationBatch["rewards"]>).total;
  if (c.advantageEstimator === "grpo") {
    // advantages are host arithmetic: their inputs are host tensors (float64 where it matters)
    const adv = grpoAdvantages(new Tensor(Float32Array.from(total), [total.length]), {
      numGenerations: c.numGenerations,
      scaleRewards: c.scaleRewards,
    });
    return { seq: adv.hostData() as Float32Array, token: null };
  }
  const r = batch.rollout;
  const width = Math.max(1, ...r.completionIds.map((x) => x.length));
  const mask = padRows(
    r.completionIds.map((ids, i) => (batch.counts[i] ? (r.tokenMasks?.[i] ?? ids.map(() => 1)) : ids.map(() => 0))),
    width,
  );
  let kl: Tensor | undefined;
  if (c.rewardKlCoef > 0) {
    const old = batch.old as Float32Array[];
    const ref = batch.ref as Float32Array[];
    kl = padRows(
      old.map((o, i) => o.map((x, t) => x - ref[i][t])),
      width,
    );
  }
  const adv = reinforcePlusPlusAdvantages(
    {
      rewards: new Tensor(Float64Array.from(total), [total.length]),
      mask,
      kl: kl ? new Tensor(Float64Array.from(kl.hostData()), kl.shape) : undefined,
    },
    {
      baseline: c.advantageEstimator === "reinforce_pp_baseline" ? "group_mean" : "none",
      numGenerations: c.numGenerations,
      klCoef: c.rewardKlCoef,
    },
  );
  return { seq: null, token: r.completionIds.map((_, i) => Float32Array.from(adv.hostData().subarray(i * width, (i + 1) * width))) };
}

/** The policy side of a group-RL micro-batch: packed rows, log-probs (and entropies), old / reference / IS weights. */
export function groupMicroBatch<C extends OnlineConfig>(
  batch: GenerationBatch,
  rows: number[],
  ctx: OnlineContext<C>,
  o: { entropyGrad?: boolean } = {},
): { micro: MicroBatch; entropies: Tensor; isWeights?: Tensor; isSums: Record<string, [number, number]> } {
  const packed = packRows(batch.rollout, rows, ctx.padId);
  const tc = packed.completionWidth;
  if (rows.some((i) => !batch.counts[i])) {
    const maskData = Float32Array.from(packed.completionMask.hostData());
    rows.forEach((i, r) => {
      if (!batch.counts[i]) maskData.fill(0, r * tc, (r + 1) * tc);
    });
    packed.completionMask = fromArray(maskData, packed.completionMask.shape);
  }
  const { logps, entropies } = completionLogprobs(ctx.policy, packed, {
    temperature: ctx.config.temperature,
    entropies: true,
    entropyGrad: o.entropyGrad,
  });
  const pad = (xs: Float32Array[] | null) =>
    xs === null
      ? undefined
      : padRows(
          rows.map((i) => xs[i]),
          tc,
        );
  const micro: MicroBatch = { rows, packed, mask: packed.completionMask, logps, old: pad(batch.old), ref: pad(batch.ref) };
  const isSums: Record<string, [number, number]> = {};
  let isWeights: Tensor | undefined;
  if (batch.corrected && micro.old !== undefined) {
    const cfg = ctx.config;
    const samp = padRows(
      rows.map((i) => batch.rollout.samplingLogprobs[i]),
      tc,
    );
    const out = rolloutCorrection(
      { trainLogps: micro.old, samplingLogps: samp, mask: micro.mask },
      { mode: cfg.importanceSamplingCorrection, cap: cfg.importanceSamplingCap, floor: cfg.importanceSamplingFloor },
    );
    isWeights = out.weights;
    for (const [k, v] of Object.entries(out.metrics)) isSums[k] = [v, 1];
  }
  return { micro, entropies: entropies as Tensor, isWeights, isSums };
}

/** Mean token entropy of the counted tokens of a micro-batch, as a metric sum. */
export function entropySum(entropies: Tensor, mask: Tensor): [number, number] {
  let e = 0;
  let n = 0;
  const md = mask.hostData();
  const ed = entropies.hostData();
  for (let k = 0; k < mask.size; k++) {
    if (md[k] === 0) continue;
    e += ed[k];
    n++;
  }
  return [e, n];
}

export function grpoAlgorithm(tok: Tokenizer, stepRewardFn?: StepRewardFn): OnlineAlgorithm<GrpoTrainConfig, GroupAdvantages> {
  return {
    label: "grpo",
    scored: true,
    promptsPerBatch: (c) => (c.perDeviceTrainBatchSize * c.gradientAccumulationSteps) / c.numGenerations,
    numGenerations: (c) => c.numGenerations,
    stepsPerBatch: (c) => c.numIterations,
    needsOld: (c) => c.numIterations > 1 || c.rewardKlCoef > 0,
    needsRef: (c) => c.beta !== 0 || c.rewardKlCoef > 0,
    async prepare(batch, ctx) {
      const c = ctx.config;
      if (!c.processSupervision) return advantagesOf(batch, c);
      if (stepRewardFn === undefined) throw new RewardError("[grpo] processSupervision needs a stepRewardFn");
      return { seq: null, token: await processSupervisionAdvantages(batch, c, tok, stepRewardFn) };
    },
    plan: (batch, _state, c) => {
      const micro = consecutiveMicroBatches(batch.rollout.completionIds.length, c.perDeviceTrainBatchSize);
      return Array.from({ length: c.numIterations }, () => [micro]);
    },
    microLoss(batch, state, rows, ctx): MicroLoss {
      const c = ctx.config;
      const { micro, entropies, isWeights, isSums } = groupMicroBatch(batch, rows, ctx, { entropyGrad: c.entropyCoef !== 0 });
      const tc = micro.packed.completionWidth;
      const advantages =
        state.seq !== null
          ? fromArray(
              Float32Array.from(rows, (i) => (state.seq as Float32Array)[i]),
              [rows.length],
            )
          : padRows(
              rows.map((i) => (state.token as Float32Array[])[i]),
              tc,
            );
      const out = grpoLoss(
        {
          perTokenLogps: micro.logps,
          oldPerTokenLogps: micro.old,
          refPerTokenLogps: c.beta !== 0 ? micro.ref : undefined,
          advantages,
          completionMask: micro.mask,
          numItemsInBatch: batch.activeTokens,
          importanceSamplingWeights: isWeights,
          entropies: c.entropyCoef !== 0 ? entropies : undefined,
        },
        grpoLossConfig(c),
      );
      // TRL divides every loss type but the globally normalised ones (dapo, cispo) by the accumulation steps
      const numMicro = Math.ceil(batch.rollout.completionIds.length / c.perDeviceTrainBatchSize);
      const loss = GLOBAL_TOKEN_NORMALISED.has(c.lossType) ? out.loss : div(out.loss, numMicro);
      const sums = { ...grpoMetrics(out.importanceWeights, advantages, micro.mask, out.perTokenKl, c), ...isSums };
      sums.entropy = entropySum(entropies, micro.mask);
      sums.policy_loss = [out.policyLoss.item(), 1];
      return { loss, advantages, micro, sums };
    },
  };
}

/** TRL's clip_ratio/* (or cispo_clip_ratio) over counted tokens, the mean ratio, and the masked mean KL. */
function grpoMetrics(w: Tensor, adv: Tensor, mask: Tensor, kl: Tensor | undefined, c: GrpoTrainConfig): Record<string, [number, number]> {
  const [b, t] = mask.shape;
  // metrics on the host: one download each of the ratios and the KL; advantages and mask are host-made
  const wd = w.hostData();
  const wt = w.shape[1];
  const ad = adv.hostData();
  const md = mask.hostData();
  const kd = kl?.hostData();
  const lo = 1 - c.epsilon;
  const hiEps = c.epsilonHigh ?? c.epsilon;
  const hi = 1 + hiEps;
  let low = 0;
  let high = 0;
  let cispo = 0;
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
      if (wi > hiEps && a > 0) cispo++;
      ratio += wi;
      if (kd !== undefined) klSum += kd[k];
      n++;
    }
  }
  const sums: Record<string, [number, number]> = { "ratio/mean": [ratio, n] };
  if (c.lossType === "cispo") sums.cispo_clip_ratio = [cispo, n];
  else if (c.lossType !== "sapo") {
    sums["clip_ratio/low_mean"] = [low, n];
    sums["clip_ratio/high_mean"] = [high, n];
    sums["clip_ratio/region_mean"] = [low + high, n];
  }
  if (c.beta !== 0 && kl !== undefined) sums.kl = [klSum, n];
  return sums;
}

// ---- entry point ----------------------------------------------------------------------------------------------

export interface GrpoTrainOptions extends OnlineTrainOptions<GrpoTrainConfig> {
  /** Per-step rewards for processSupervision. */
  stepRewardFn?: StepRewardFn;
}

export async function trainGrpo(opts: GrpoTrainOptions): Promise<OnlineTrainResult<GrpoTrainConfig>> {
  const cfg = resolveGrpoTrainConfig(opts.config as Record<string, unknown>);
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "grpo");
  if (cfg.processSupervision && opts.stepRewardFn === undefined) throw new ConfigError("[grpo] processSupervision needs a stepRewardFn");
  let run = cfg;
  const extraRewards: RewardFn[] = [];
  if (cfg.overlongPenalty) {
    // DAPO's punishment is one more reward source after the user's, weighted by overlongPenaltyFactor
    const n = rewardSourceCount(opts);
    if (cfg.rewardWeights !== null && cfg.rewardWeights.length !== n) {
      throw new ConfigError(`[grpo] rewardWeights has ${cfg.rewardWeights.length} entries for ${n} reward sources`);
    }
    const cache = cfg.overlongBufferLength ?? Math.max(1, Math.floor(cfg.maxCompletionLength / 4));
    extraRewards.push(overlongPenalty({ maxCompletionLen: cfg.maxCompletionLength, softPunishCache: cache }));
    run = { ...cfg, rewardWeights: [...(cfg.rewardWeights ?? Array.from({ length: n }, () => 1)), cfg.overlongPenaltyFactor] };
  }
  const res = await trainOnline({ ...opts, tokenizer: tok }, run, grpoAlgorithm(tok, opts.stepRewardFn), {
    dataKind: "prompt_only",
    scored: true,
    extraRewards,
  });
  return { ...res, config: cfg };
}
