// Online DPO as TRL's experimental OnlineDPOTrainer (v1.9), an algorithm of the one online loop: per prompt, two
// completions sampled from the current policy (temperature 0.9, 64 tokens), ranked by the reward mix (missing-EOS
// penalty applied) or a pairwise judge, chosen = the higher score (ties: the first sample), then a DPO update
// (sigmoid or ipo on summed log-probs, scored at temperature 1 as TRL does) against a frozen reference (a copy, or
// the LoRA base with adapters off), refreshed with TR-DPO's syncRefModel when asked (TRL's names).
// Guo et al. 2024. Differs from TRL: beta is one number (no per-epoch list).

import { z } from "zod";
import { type DpoConfig, dpoLoss } from "../losses/dpo.js";
import { fromArray, maskedSum, mean, mul, noGrad, slice, sub } from "../tensor/index.js";
import { pairMetrics } from "./dpo.js";
import { TrainingError } from "./loop.js";
import { ONLINE_FIELDS, type OnlineConfig, resolveOnlineConfig } from "./online_config.js";
import { type OnlineTrainOptions, type OnlineTrainResult, trainOnline } from "./online_entry.js";
import type { GenerationBatch, MicroLoss, OnlineAlgorithm, OnlineContext } from "./online_loop.js";
import { completionLogprobs, packRows } from "./rollout.js";

export const ONLINE_DPO_FIELDS = {
  ...ONLINE_FIELDS,
  learningRate: z.number().positive().default(5e-7).describe("Peak learning rate."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Prompts (pairs) per micro-batch."),
  numGenerations: z.number().int().min(2).max(2).default(2).describe("Two samples per prompt (TRL)."),
  maxCompletionLength: z.number().int().positive().default(64).describe("Tokens generated at most per completion (TRL max_new_tokens)."),
  temperature: z.number().positive().default(0.9).describe("Sampling temperature."),
  beta: z.number().positive().default(0.1).describe("Inverse temperature of the implicit reward."),
  lossType: z.enum(["sigmoid", "ipo"]).default("sigmoid").describe("DPO loss on the sampled pair."),
  syncRefModel: z.boolean().default(false).describe("TR-DPO: mix the policy into the reference every refModelSyncSteps."),
  refModelSyncSteps: z.number().int().positive().default(512).describe("Optimizer steps between reference syncs."),
  refModelMixupAlpha: z.number().min(0).max(1).default(0.6).describe("ref = alpha * policy + (1 - alpha) * ref at a sync."),
};
export const ONLINE_DPO_SCHEMA = z.object(ONLINE_DPO_FIELDS).strict();
export type OnlineDpoTrainConfig = z.output<typeof ONLINE_DPO_SCHEMA>;

export const ONLINE_DPO_RULES: ((c: OnlineDpoTrainConfig) => string | null)[] = [
  (c) => (c.numIterations !== 1 ? "online DPO takes one step per batch; leave numIterations at 1" : null),
  (c) => (c.dynamicSampling ? "dynamicSampling applies to group-RL trainers (GRPO, RLOO), not online DPO" : null),
];

export function resolveOnlineDpoConfig(input?: Record<string, unknown>): OnlineDpoTrainConfig {
  return resolveOnlineConfig("online-dpo", ONLINE_DPO_SCHEMA, input, { rules: ONLINE_DPO_RULES });
}

/** A pairwise judge: for each prompt and its two completions, the index (0 or 1) of the better one. */
export type PairJudge = (args: { prompts: string[]; completions: [string, string][] }) => number[] | Promise<number[]>;

/** Chosen / rejected per prompt from scores of [first samples..., second samples...]: first wins ties (TRL `>=`). */
export function orderPairs(scores: readonly number[]): { firstChosen: boolean[]; chosenScores: number[]; rejectedScores: number[] } {
  const n = scores.length / 2;
  if (!Number.isInteger(n)) throw new TrainingError(`[online-dpo] ${scores.length} scores do not split into pairs`);
  const firstChosen = Array.from({ length: n }, (_, i) => scores[i] >= scores[n + i]);
  return {
    firstChosen,
    chosenScores: firstChosen.map((f, i) => (f ? scores[i] : scores[n + i])),
    rejectedScores: firstChosen.map((f, i) => (f ? scores[n + i] : scores[i])),
  };
}

/** One ranked pair, for hooks and logging of samples. */
export interface OnlinePair {
  prompt: string;
  chosen: { completionIds: number[]; text: string };
  rejected: { completionIds: number[]; text: string };
  chosenScore: number;
  rejectedScore: number;
}

interface PairState {
  /** Per prompt k: the rows of its chosen and rejected completions. */
  chosen: number[];
  rejected: number[];
  scores: number[];
}

export function onlineDpoAlgorithm(
  judge?: PairJudge,
  onPairs?: (pairs: OnlinePair[]) => void,
): OnlineAlgorithm<OnlineDpoTrainConfig, PairState> {
  return {
    label: "online-dpo",
    scored: judge === undefined,
    promptsPerBatch: (c) => c.perDeviceTrainBatchSize * c.gradientAccumulationSteps,
    numGenerations: () => 2,
    stepsPerBatch: () => 1,
    scoringTemperature: () => 1,
    needsOld: () => false,
    needsRef: () => true,
    syncsReference: (c) => c.syncRefModel,
    async prepare(batch: GenerationBatch, ctx): Promise<PairState> {
      const c = ctx.config;
      const r = batch.rollout;
      const n = r.prompts.length;
      let scores: number[];
      if (judge !== undefined) {
        const pick = await judge({
          prompts: r.prompts.map((p) => p.promptText),
          completions: r.prompts.map((_, k) => [r.completions[2 * k], r.completions[2 * k + 1]]),
        });
        // the judged winner gets 1, the loser 0; the EOS penalty still applies
        scores = pick
          .flatMap((p) => (p === 0 ? [1, 0] : [0, 1]))
          .map((s, i) => (c.missingEosPenalty !== null && r.finishReasons[i] === "length" ? s - c.missingEosPenalty : s));
      } else scores = (batch.rewards as NonNullable<GenerationBatch["rewards"]>).total;
      const halves = [...Array.from({ length: n }, (_, k) => scores[2 * k]), ...Array.from({ length: n }, (_, k) => scores[2 * k + 1])];
      const { firstChosen, chosenScores, rejectedScores } = orderPairs(halves);
      const chosen = firstChosen.map((f, k) => (f ? 2 * k : 2 * k + 1));
      const rejected = firstChosen.map((f, k) => (f ? 2 * k + 1 : 2 * k));
      onPairs?.(
        chosen.map((ci, k) => ({
          prompt: r.prompts[k].promptText,
          chosen: { completionIds: r.completionIds[ci], text: r.completions[ci] },
          rejected: { completionIds: r.completionIds[rejected[k]], text: r.completions[rejected[k]] },
          chosenScore: chosenScores[k],
          rejectedScore: rejectedScores[k],
        })),
      );
      const scoreMean = scores.reduce((a, s) => a + s, 0) / scores.length;
      batch.metrics["objective/scores"] = scoreMean;
      batch.metrics["objective/scores_margin"] = chosenScores.reduce((a, s, k) => a + s - rejectedScores[k], 0) / n;
      batch.metrics["val/contain_eos_token"] = r.finishReasons.filter((f) => f !== "length").length / r.finishReasons.length;
      return { chosen, rejected, scores };
    },
    plan(batch, _s, c) {
      // micro-batches of perDeviceTrainBatchSize prompts: rows are prompt indices (each brings its pair)
      const n = batch.rollout.prompts.length;
      const micro: number[][] = [];
      for (let s = 0; s < n; s += c.perDeviceTrainBatchSize)
        micro.push(Array.from({ length: Math.min(c.perDeviceTrainBatchSize, n - s) }, (_, j) => s + j));
      return [[micro]];
    },
    microLoss(batch, st, prompts, ctx): MicroLoss {
      const c = ctx.config;
      return pairDpoLoss(
        batch,
        prompts.map((k) => st.chosen[k]),
        prompts.map((k) => st.rejected[k]),
        ctx,
        { lossType: c.lossType, beta: c.beta },
        batch.rollout.prompts.length,
      );
    },
    afterOptimizerStep(n, ctx) {
      const c = ctx.config;
      if (c.syncRefModel && n % c.refModelSyncSteps === 0) (ctx.reference as NonNullable<typeof ctx.reference>).sync(c.refModelMixupAlpha);
    },
  };
}

export interface OnlineDpoOptions extends OnlineTrainOptions<OnlineDpoTrainConfig> {
  /** Rank each pair with a judge instead of the reward mix. */
  pairJudge?: PairJudge;
  /** Called with every batch's ranked pairs (tests, logging of samples). */
  onPairs?: (pairs: OnlinePair[]) => void;
}

export async function trainOnlineDpo(opts: OnlineDpoOptions): Promise<OnlineTrainResult<OnlineDpoTrainConfig>> {
  const c = resolveOnlineDpoConfig(opts.config as Record<string, unknown>);
  return trainOnline(opts, c, onlineDpoAlgorithm(opts.pairJudge, opts.onPairs), {
    dataKind: "prompt_only",
    scored: opts.pairJudge === undefined,
  });
}

/**
 * The DPO loss of pairs of rollout rows (chosen[j], rejected[j]) under the policy and the reference, scored at
 * temperature 1 on summed completion log-probs (policy tokens only), scaled to its share of a step of
 * `pairsPerStep` pairs; with TRL's pair metrics and online DPO's objective/* metrics. Shared with SPIN.
 */
export function pairDpoLoss<C extends OnlineConfig>(
  batch: GenerationBatch,
  chosen: readonly number[],
  rejected: readonly number[],
  ctx: OnlineContext<C>,
  lossConfig: Partial<DpoConfig>,
  pairsPerStep: number,
): MicroLoss {
  const b = chosen.length;
  const rows = [...chosen, ...rejected];
  const packed = packRows(batch.rollout, rows, ctx.padId);
  const tokenLogps = completionLogprobs(ctx.policy, packed, { temperature: 1 }).logps; // (2b, Tc)
  const seq = maskedSum(tokenLogps, packed.completionMask, 1); // (2b)
  const masks = batch.rollout.tokenMasks;
  const refRows = batch.ref as Float32Array[];
  const refSeq = rows.map((i) => refRows[i].reduce((a, x, t) => a + (masks === null || masks[i][t] !== 0 ? x : 0), 0));
  const tc = packed.completionWidth;
  const maskData = packed.completionMask.hostData();
  const lengths = rows.map((_, r) => {
    let n = 0;
    for (let t = 0; t < tc; t++) n += maskData[r * tc + t];
    return n;
  });
  const pc = slice(seq, 0, 0, b);
  const pr = slice(seq, 0, b, 2 * b);
  const out = dpoLoss(
    {
      policyChosenLogps: pc,
      policyRejectedLogps: pr,
      refChosenLogps: fromArray(Float32Array.from(refSeq.slice(0, b)), [b]),
      refRejectedLogps: fromArray(Float32Array.from(refSeq.slice(b)), [b]),
      chosenLengths: fromArray(Float32Array.from(lengths.slice(0, b)), [b]),
      rejectedLengths: fromArray(Float32Array.from(lengths.slice(b)), [b]),
      chosenTokenLogps: slice(tokenLogps, 0, 0, b),
      chosenMask: slice(packed.completionMask, 0, 0, b),
    },
    lossConfig,
  );
  const beta = lossConfig.beta ?? 0.1;
  const m = noGrad(() => {
    const kl = mean(sub(seq, fromArray(Float32Array.from(refSeq), [2 * b]))).item(); // summed over tokens, mean over the 2b sequences
    return {
      ...pairMetrics(out.chosenRewards, out.rejectedRewards, pc, pr),
      "objective/kl": kl,
      "objective/entropy": -mean(seq).item(),
      "objective/non_score_reward": -beta * kl,
    };
  });
  const sums: Record<string, [number, number]> = {};
  for (const [k, v] of Object.entries(m)) sums[k] = [v * b, b];
  return { loss: mul(out.loss, b / pairsPerStep), sums };
}
