// Online DPO as TRL's experimental OnlineDPOTrainer (v1.9) runs it: per prompt, two completions sampled from the
// current policy (temperature 0.9, maxNewTokens 64), ranked by reward functions / a reward model (missing-EOS
// penalty applied) or a pairwise judge, chosen = the higher score (ties: the first sample), then a DPO update
// (sigmoid or ipo on summed log-probs) against a frozen reference (a copy, or the LoRA base with adapters off).
// Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback". Differs from TRL: beta is one
// number (no per-epoch list); the reference can be refreshed with TR-DPO's syncRefModel (TRL's names).

import { z } from "zod";
import type { Tokenizer } from "../io/tokenizer.js";
import { dpoLoss } from "../losses/dpo.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { SequenceClassifier } from "../models/heads.js";
import { type LoraModel, withAdaptersDisabled } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import type { RewardFn } from "../rewards/types.js";
import { add, mean, mul, noGrad, sub, type Tensor } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { frozenCopy, pairMetrics, resolvePolicy } from "./dpo.js";
import { TrainingError } from "./loop.js";
import type { Metrics } from "./metrics.js";
import {
  encodePrompt,
  epochOrders,
  ONLINE_LOOP_FIELDS,
  type OnlineRunResult,
  type PromptRow,
  promptText,
  rowsOfStep,
  runOnline,
  type Sample,
  samplePolicy,
  scoreSamples,
} from "./online_policy.js";
import { padIdOf, rowsOf, scoreSequences } from "./preference_data.js";
import { type RunControl, runControl } from "./run_state.js";

export const ONLINE_DPO_FIELDS = {
  ...ONLINE_LOOP_FIELDS,
  learningRate: z.number().positive().default(5e-7).describe("Peak learning rate"),
  beta: z.number().positive().default(0.1).describe("Inverse temperature of the implicit reward"),
  lossType: z.enum(["sigmoid", "ipo"]).default("sigmoid").describe("DPO loss on the sampled pair"),
  maxNewTokens: z.number().int().positive().default(64).describe("Tokens generated at most per completion"),
  temperature: z.number().positive().default(0.9).describe("Sampling temperature"),
  topP: z.number().positive().max(1).default(1).describe("Nucleus sampling mass"),
  topK: z.number().int().nonnegative().default(0).describe("Top-k sampling; 0 disables"),
  missingEosPenalty: z.number().nullable().default(null).describe("Subtracted from the score of a completion without EOS"),
  syncRefModel: z.boolean().default(false).describe("TR-DPO: mix the policy into the reference every refModelSyncSteps"),
  refModelSyncSteps: z.number().int().positive().default(512).describe("Steps between reference syncs"),
  refModelMixupAlpha: z.number().min(0).max(1).default(0.6).describe("ref = alpha * policy + (1 - alpha) * ref at a sync"),
  rewardWeights: z.array(z.number()).nullable().default(null).describe("One weight per reward function; null = all 1"),
};
export const ONLINE_DPO_SCHEMA = z.object(ONLINE_DPO_FIELDS).strict();
export type OnlineDpoTrainConfig = z.output<typeof ONLINE_DPO_SCHEMA>;
export type OnlineDpoTrainInput = Partial<z.input<typeof ONLINE_DPO_SCHEMA>>;

export function resolveOnlineDpoConfig(input: OnlineDpoTrainInput = {}): OnlineDpoTrainConfig {
  return resolveConfig("online-dpo", ONLINE_DPO_SCHEMA, input as Record<string, unknown>);
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

/** Reference log-probs of sequences [N] (no gradient), with a refresh for TR-DPO or SPIN. */
export interface ReferencePolicy {
  logps(seqs: readonly { promptIds: number[]; completionIds: number[] }[]): Tensor;
  /** ref = alpha * policy + (1 - alpha) * ref (alpha 1: a plain copy); an error for the LoRA base. */
  sync(alpha: number): void;
  /** The frozen copy, when there is one. */
  readonly model: CausalLM | null;
}

/** A frozen reference: `refModel`, else the LoRA base (adapters disabled), else a frozen copy of the policy now. */
export function createReferencePolicy(model: CausalLM | LoraModel<CausalLM>, padId: number, refModel?: CausalLM): ReferencePolicy {
  const { policy, lora } = resolvePolicy(model);
  if (refModel === undefined && lora !== null) {
    return {
      logps: (seqs) => noGrad(() => withAdaptersDisabled(lora, () => scoreSequences(policy, seqs, padId).logps)),
      sync: () => {
        throw new TrainingError("[online] the reference is the LoRA base; it cannot be synced (pass a refModel)");
      },
      model: null,
    };
  }
  const ref = refModel ?? frozenCopy(policy);
  return {
    logps: (seqs) => noGrad(() => scoreSequences(ref, seqs, padId).logps),
    sync: (alpha) => {
      const own = policy.stateDict();
      for (const [name, p] of ref.namedParameters()) {
        const src = own.get(name);
        if (src === undefined) throw new TrainingError(`[online] reference parameter ${name} is missing from the policy`);
        noGrad(() => p.assign(alpha === 1 ? src : add(mul(src, alpha), mul(p, 1 - alpha))));
      }
    },
    model: ref,
  };
}

export interface OnlineDpoOptions extends RunControl {
  /** The policy (trained in place); with a LoraModel only adapters train and the base is the reference. */
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  /** Prompt-only rows; extra columns reach the reward functions. */
  rows: readonly PromptRow[];
  config?: OnlineDpoTrainInput;
  refModel?: CausalLM;
  /** Scorers, summed (reward model weight 1, functions by rewardWeights); or a judge instead. */
  rewardModel?: SequenceClassifier | null;
  rewardFuncs?: readonly RewardFn[];
  judge?: PairJudge;
  outputDir?: string | null;
  quiet?: boolean;
  stopAfterStep?: number;
  /** Called with every step's pairs (tests, logging of samples). */
  onPairs?: (pairs: OnlinePair[]) => void;
}

export interface OnlinePair {
  prompt: string;
  chosen: Sample;
  rejected: Sample;
  chosenScore: number;
  rejectedScore: number;
}

export interface OnlineDpoResult extends OnlineRunResult {
  config: OnlineDpoTrainConfig;
  reference: ReferencePolicy;
}

export async function trainOnlineDpo(opts: OnlineDpoOptions): Promise<OnlineDpoResult> {
  const c = resolveOnlineDpoConfig(opts.config);
  const tok = opts.tokenizer;
  const { policy, trainable } = resolvePolicy(opts.model);
  const padId = padIdOf(tok);
  const rng = new Rng(c.seed);
  const eosIds = tok.eosTokenId === null ? [] : [tok.eosTokenId];
  const reference = createReferencePolicy(opts.model, padId, opts.refModel);
  if (c.syncRefModel && reference.model === null)
    throw new TrainingError("[online-dpo] syncRefModel needs a reference copy, not the LoRA base");
  if (!opts.judge && !opts.rewardModel && (opts.rewardFuncs?.length ?? 0) === 0) {
    throw new TrainingError("[online-dpo] give reward functions, a reward model or a judge");
  }
  const rows = opts.rows;
  if (rows.length === 0) throw new TrainingError("[online-dpo] the dataset has no rows");
  const perMicro = c.perDeviceTrainBatchSize;
  const perStep = perMicro * c.gradientAccumulationSteps;
  const totalSteps = c.maxSteps > 0 ? c.maxSteps : Math.ceil((c.numTrainEpochs * rows.length) / perStep);
  const order = epochOrders(rows.length, c.seed);

  /** One micro-batch: sample 2 per prompt, rank, DPO loss scaled to its share of the step; returns metrics. */
  const micro = async (batch: PromptRow[]): Promise<Record<string, number>> => {
    const b = batch.length;
    const ids = batch.map((r) => encodePrompt(tok, r.prompt));
    const texts = batch.map((r) => promptText(tok, r.prompt));
    // TRL repeats the prompt batch: samples [0, b) are the first of each pair, [b, 2b) the second
    const samples = samplePolicy(policy, [...ids, ...ids], {
      maxNewTokens: c.maxNewTokens,
      temperature: c.temperature,
      topK: c.topK,
      topP: c.topP,
      eosIds,
      rng,
      tokenizer: tok,
    });
    let scores: number[];
    let perSource: Record<string, number> = {};
    if (opts.judge) {
      const pick = await opts.judge({ prompts: texts, completions: texts.map((_, i) => [samples[i].text, samples[b + i].text]) });
      // the judged winner gets 1, the loser 0; the EOS penalty still applies
      scores = [...pick.map((p) => (p === 0 ? 1 : 0)), ...pick.map((p) => (p === 0 ? 0 : 1))];
      const eos = samples.map((s) => s.hasEos);
      scores = scores.map((s, i) => (c.missingEosPenalty !== null && !eos[i] ? s - c.missingEosPenalty : s));
    } else {
      const scored = await scoreSamples(
        { rewardModel: opts.rewardModel, rewardFuncs: opts.rewardFuncs, rewardWeights: c.rewardWeights },
        samples,
        [...texts, ...texts],
        [...batch, ...batch],
        padId,
        c.missingEosPenalty,
      );
      scores = scored.scores;
      perSource = scored.perSource;
    }
    const { firstChosen, chosenScores, rejectedScores } = orderPairs(scores);
    const chosen = firstChosen.map((f, i) => (f ? samples[i] : samples[b + i]));
    const rejected = firstChosen.map((f, i) => (f ? samples[b + i] : samples[i]));
    opts.onPairs?.(
      chosen.map((s, i) => ({
        prompt: texts[i],
        chosen: s,
        rejected: rejected[i],
        chosenScore: chosenScores[i],
        rejectedScore: rejectedScores[i],
      })),
    );

    const seqs = [...chosen, ...rejected];
    const pol = scoreSequences(policy, seqs, padId); // one forward over 2b sequences
    const ref = reference.logps(seqs);
    const pc = rowsOf(pol.logps, 0, b);
    const pr = rowsOf(pol.logps, b, 2 * b);
    const out = dpoLoss(
      { policyChosenLogps: pc, policyRejectedLogps: pr, refChosenLogps: rowsOf(ref, 0, b), refRejectedLogps: rowsOf(ref, b, 2 * b) },
      { lossType: c.lossType, beta: c.beta },
    );
    mul(out.loss, b / perStep).backward(); // the step's loss is the mean over all its pairs
    return noGrad(() => {
      const kl = mean(sub(pol.logps, ref)).item(); // summed over tokens, mean over the 2b sequences
      const scoreMean = scores.reduce((a, s) => a + s, 0) / scores.length;
      return {
        loss: out.loss.item(),
        ...pairMetrics(out.chosenRewards, out.rejectedRewards, pc, pr),
        ...perSource,
        "objective/kl": kl,
        "objective/entropy": -mean(pol.logps).item(),
        "objective/non_score_reward": -c.beta * kl,
        "objective/rlhf_reward": scoreMean - c.beta * kl,
        "objective/scores": scoreMean,
        "objective/scores_margin": chosenScores.reduce((a, s, i) => a + s - rejectedScores[i], 0) / b,
        "val/contain_eos_token": samples.filter((s) => s.hasEos).length / samples.length,
        "completions/mean_length": samples.reduce((a, s) => a + s.completionIds.length, 0) / samples.length,
      };
    });
  };

  const run = await runOnline({
    trainable,
    config: c,
    totalSteps,
    rng,
    // TR-DPO changes the reference during the run: it is part of the run's state
    trainerTensors: c.syncRefModel && reference.model !== null ? [...reference.model.namedParameters()] : undefined,
    outputDir: opts.outputDir ?? null,
    ...runControl(opts),
    fullConfig: { trainer: "online-dpo", ...c },
    label: "online-dpo",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
    step: async ({ step, optimizerStep }) => {
      const stepRows = rowsOfStep(rows, perStep, step, order);
      const sums: Record<string, number> = {};
      for (let k = 0; k < stepRows.length; k += perMicro) {
        const part = stepRows.slice(k, k + perMicro);
        const m = await micro(part);
        for (const [key, v] of Object.entries(m)) sums[key] = (sums[key] ?? 0) + (v * part.length) / stepRows.length;
      }
      optimizerStep();
      if (c.syncRefModel && (step + 1) % c.refModelSyncSteps === 0) reference.sync(c.refModelMixupAlpha);
      const metrics: Metrics = { ...sums, beta: c.beta };
      return metrics;
    },
  });
  return { ...run, config: c, reference };
}
