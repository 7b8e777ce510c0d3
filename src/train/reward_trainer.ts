// Outcome reward model training, as TRL's RewardTrainer: preference rows `{chosen, rejected, margin?}` with
// an implicit or explicit `prompt` (text or messages), EOS appended to text sequences, pairs longer than
// maxLength dropped; a scalar `score` head on the decoder reads the last real token (HF
// *ForSequenceClassification) and the Bradley-Terry loss (margin, centring) is averaged over pairs.
// Not here: LogExp / other pairwise losses, ties, RM ensembles.

import { z } from "zod";
import { collate } from "../data/batch.js";
import { loadDataset } from "../data/formats.js";
import { type RewardPair, tokenizeRewardRow } from "../data/row_tokenize.js";
import { checkTokenizerFitsModel } from "../io/tokenizer.js";
import { bradleyTerryLoss } from "../losses/reward.js";
import type { CausalLM } from "../models/causal_lm.js";
import { resolveClassifier, type SequenceClassifier, saveClassifier } from "../models/heads.js";
import { fromArray, noGrad, slice, type Tensor } from "../tensor/index.js";
import { LOOP_FIELDS, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import type { Metrics } from "./metrics.js";
import { runControl } from "./run_state.js";
import { resolveTokenizer, resolveTrainerConfig, type TrainerOptions, writeOutputExtras } from "./trainer_io.js";

export const REWARD_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-4).describe("Peak learning rate (TRL RewardTrainer default 1e-4)."),
  maxLength: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(1024)
    .describe("Pairs whose chosen or rejected sequence is longer are dropped (TRL); null keeps all."),
  centerRewardsCoefficient: z
    .number()
    .nullable()
    .default(null)
    .describe("Weight of mean((r_c + r_r)^2) that centres rewards on 0 (recommended 0.01); null disables."),
};
export const REWARD_SCHEMA = z.object(REWARD_FIELDS).strict();
export type RewardTrainerConfig = z.output<typeof REWARD_SCHEMA>;

/** Rewards of chosen and rejected sequences [B] each, from one forward over the 2B rows. */
export function pairRewards(model: SequenceClassifier, pairs: readonly RewardPair[], padId: number): { chosen: Tensor; rejected: Tensor } {
  const seqs = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  const batch = collate(
    seqs.map((ids) => ({ ids, lossMask: [] })),
    padId,
  );
  const r = model.rewards({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }); // (2B)
  const b = pairs.length;
  return { chosen: slice(r, 0, 0, b), rejected: slice(r, 0, b, 2 * b) };
}

/** Summed Bradley-Terry loss of a micro-batch plus its accuracy and margin. */
export function rewardLossSum(model: SequenceClassifier, pairs: readonly RewardPair[], padId: number, cfg: RewardTrainerConfig) {
  const { chosen, rejected } = pairRewards(model, pairs, padId);
  const withMargin = pairs.some((p) => p.margin !== null);
  const margin = withMargin ? fromArray(Float32Array.from(pairs.map((p) => p.margin ?? 0)), [pairs.length]) : undefined;
  const out = bradleyTerryLoss(
    { rewardsChosen: chosen, rewardsRejected: rejected, margin },
    { centerRewardsCoefficient: cfg.centerRewardsCoefficient },
  );
  const c = chosen.hostData() as Float32Array;
  const r = rejected.hostData() as Float32Array;
  let correct = 0;
  let gap = 0;
  for (let i = 0; i < pairs.length; i++) {
    if (c[i] > r[i]) correct++;
    gap += c[i] - r[i];
  }
  return { loss: out.loss.mul(pairs.length), correct, gap, meanChosen: mean(c), meanRejected: mean(r) };
}

function mean(a: Float32Array): number {
  let s = 0;
  for (const x of a) s += x;
  return a.length > 0 ? s / a.length : 0;
}

export interface RewardTrainerOptions extends Omit<TrainerOptions<RewardTrainerConfig>, "model"> {
  /** A reward model, a causal LM (its backbone gets a fresh score head), or a folder of either. */
  model: SequenceClassifier | CausalLM | string;
}

export interface RewardTrainerResult {
  model: SequenceClassifier;
  config: RewardTrainerConfig;
  run: RunResult;
  /** Training pairs kept after the maxLength filter. */
  pairs: RewardPair[];
}

/** Pair accuracy (r_c > r_r) and mean margin of `model` on tokenized pairs. */
export function evaluateRewardModel(model: SequenceClassifier, pairs: readonly RewardPair[], padId: number, batchSize = 16): Metrics {
  return noGrad(() => {
    let correct = 0;
    let gap = 0;
    for (let i = 0; i < pairs.length; i += batchSize) {
      const part = pairs.slice(i, i + batchSize);
      const { chosen, rejected } = pairRewards(model, part, padId);
      const c = chosen.hostData();
      const r = rejected.hostData();
      for (let j = 0; j < part.length; j++) {
        if (c[j] > r[j]) correct++;
        gap += c[j] - r[j];
      }
    }
    return { accuracy: pairs.length > 0 ? correct / pairs.length : 0, margin: pairs.length > 0 ? gap / pairs.length : 0 };
  });
}

export async function trainRewardModel(opts: RewardTrainerOptions): Promise<RewardTrainerResult> {
  const cfg = resolveTrainerConfig("rm", REWARD_SCHEMA, opts.config as Record<string, unknown>);
  const model = resolveClassifier(opts.model, "sequence", {
    numLabels: 1,
    seed: cfg.seed,
    tag: "rm",
    role: "reward model",
  }) as SequenceClassifier;
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "rm");
  checkTokenizerFitsModel(tok, model.config.vocabSize, "rm");
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  if (model.config.padTokenId === null) (model.config as { padTokenId: number | null }).padTokenId = padId; // as TRL sets it

  const load = (src: string | readonly unknown[]): RewardPair[] => {
    const rows = loadDataset(src, "preference") as Record<string, unknown>[];
    const pairs = rows.map((r) => tokenizeRewardRow(tok, r));
    const max = cfg.maxLength;
    return max === null ? pairs : pairs.filter((p) => p.chosen.length <= max && p.rejected.length <= max);
  };
  const pairs = load(opts.data);
  if (pairs.length === 0) throw new Error(`[rm] no pair fits maxLength ${cfg.maxLength}`);
  const evalPairs = opts.evalData ? load(opts.evalData) : null;

  const task: TrainingTask<RewardPair> = {
    rowTokens: (p) => 2 * Math.max(p.chosen.length, p.rejected.length),
    countUnits: (rows) => rows.length,
    lossSum: (rows) => {
      const r = rewardLossSum(model, rows, padId, cfg);
      return {
        loss: r.loss,
        metrics: {
          accuracy: r.correct / rows.length,
          margin: r.gap / rows.length,
          "rewards/chosen": r.meanChosen,
          "rewards/rejected": r.meanRejected,
        },
      };
    },
  };
  if (evalPairs !== null && evalPairs.length > 0)
    task.evaluate = () => evaluateRewardModel(model, evalPairs, padId, cfg.perDeviceTrainBatchSize);

  const outputDir = opts.outputDir ?? null;
  const resolved = { ...(opts.extraConfig ?? {}), ...cfg };
  const run = await runTraining({
    model,
    task,
    rows: pairs,
    config: cfg,
    outputDir,
    ...runControl(opts),
    fullConfig: resolved,
    label: "rm",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  if (outputDir !== null && !run.interrupted) {
    saveClassifier(model, outputDir);
    writeOutputExtras(outputDir, tok, resolved);
  }
  return { model, config: cfg, run, pairs };
}
