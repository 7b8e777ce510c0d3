// The ORPO trainer, as TRL's ORPOTrainer: reference-free, chosen and rejected scored in one forward pass,
// loss = chosen NLL (token mean over the micro-batch) + beta * mean(-log sigmoid(log odds ratio)) on
// length-averaged log-probs. Hong et al. 2024. Differs from TRL: the NLL is averaged over each micro-batch's
// chosen tokens (then pairs-weighted by the loop), not over the whole optimizer step's tokens.
// Not here: the loss formula (losses/orpo.ts), tokenization (preference_data.ts).

import { z } from "zod";
import { orpoLoss } from "../losses/orpo.js";
import type { CausalLM } from "../models/causal_lm.js";
import { div, mean, mul, tensor } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { type PreferenceTrainOptions, pairMetrics } from "./dpo.js";
import { evaluateTask } from "./evaluate.js";
import { LOOP_FIELDS, type LoopConfig, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import { resolvePolicy } from "./policy.js";
import {
  completionNll,
  PREFERENCE_DATA_FIELDS,
  type PreferencePair,
  padIdOf,
  rowsOf,
  scoreSequences,
  type TruncationOptions,
  tokenizePreference,
} from "./preference_data.js";
import { runControl } from "./run_state.js";

export const ORPO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate"),
  ...PREFERENCE_DATA_FIELDS,
  beta: z.number().positive().default(0.1).describe("Weight of the odds-ratio term (the paper's lambda)"),
};
export const ORPO_SCHEMA = z.object(ORPO_FIELDS).strict();
export type OrpoTrainConfig = z.output<typeof ORPO_SCHEMA>;
export type OrpoTrainInput = Partial<z.input<typeof ORPO_SCHEMA>>;

export function resolveOrpoTrainConfig(input: OrpoTrainInput = {}): OrpoTrainConfig {
  return resolveConfig("orpo", ORPO_SCHEMA, input as Record<string, unknown>);
}

/** Pair-level scores shared by the reference-free trainers: one forward over [chosen..., rejected...]. */
export function scorePairs(policy: CausalLM, pairs: readonly PreferencePair[], padId: number) {
  const b = pairs.length;
  const s = scoreSequences(policy, [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], padId);
  const avg = div(s.logps, tensor(s.lengths)); // (2B) length-averaged
  return {
    chosenLogps: rowsOf(s.logps, 0, b),
    rejectedLogps: rowsOf(s.logps, b, 2 * b),
    chosenAvg: rowsOf(avg, 0, b),
    rejectedAvg: rowsOf(avg, b, 2 * b),
    nll: completionNll(s, b),
  };
}

export function createOrpoTask(o: { policy: CausalLM; config: OrpoTrainConfig; padId: number }): TrainingTask<PreferencePair> {
  return {
    rowTokens: (p) =>
      Math.max(p.chosen.promptIds.length + p.chosen.completionIds.length, p.rejected.promptIds.length + p.rejected.completionIds.length),
    countUnits: (pairs) => pairs.length,
    lossSum: (pairs) => {
      const s = scorePairs(o.policy, pairs, o.padId);
      const out = orpoLoss({ chosenAvgLogps: s.chosenAvg, rejectedAvgLogps: s.rejectedAvg, nllLoss: s.nll }, { beta: o.config.beta });
      const metrics = {
        ...pairMetrics(out.chosenRewards, out.rejectedRewards, s.chosenLogps, s.rejectedLogps),
        nll_loss: s.nll.item(),
        log_odds_ratio: mean(out.logOdds).item(),
      };
      return { loss: mul(out.loss, pairs.length), metrics };
    },
  };
}

/** The reference-free preference trainers' entry (ORPO, CPO/SimPO): tokenize the pairs, run the shared loop. */
export async function trainReferenceFree<C extends LoopConfig & TruncationOptions>(
  label: string,
  opts: PreferenceTrainOptions<unknown>,
  config: C,
  makeTask: (o: { policy: CausalLM; config: C; padId: number }) => TrainingTask<PreferencePair>,
): Promise<RunResult & { config: C }> {
  const padId = padIdOf(opts.tokenizer);
  const { policy, trainable } = resolvePolicy(opts.model);
  const pairs = tokenizePreference(opts.tokenizer, opts.rows, config, opts.source);
  const task = makeTask({ policy, config, padId });
  if (opts.evalRows) {
    const evalPairs = tokenizePreference(opts.tokenizer, opts.evalRows, config, opts.evalSource ?? "evalRows");
    task.evaluate = () => evaluateTask(task, evalPairs, config.perDeviceTrainBatchSize);
  }
  const run = await runTraining({
    model: trainable,
    task,
    rows: pairs,
    config,
    outputDir: opts.outputDir ?? null,
    ...runControl(opts),
    fullConfig: { trainer: label, ...(config as Record<string, unknown>) },
    label,
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  return { ...run, config };
}

export async function trainOrpo(opts: PreferenceTrainOptions<OrpoTrainInput>): Promise<RunResult & { config: OrpoTrainConfig }> {
  return trainReferenceFree("orpo", opts, resolveOrpoTrainConfig(opts.config), createOrpoTask);
}
