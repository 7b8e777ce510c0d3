// The CPO trainer (and SimPO as lossType "simpo"), as TRL's CPOTrainer: reference-free, one forward pass over
// chosen and rejected, a pairwise loss on summed log-probs (length-averaged for ipo and simpo) plus cpoAlpha
// times the chosen NLL. Xu et al. 2024 (CPO); Meng et al. 2024 (SimPO: lossType simpo, cpoAlpha 0).
// Differs from TRL: no AlphaPO transform; the NLL is a per-micro-batch token mean, as in orpo.ts.
// Not here: the loss formulas (losses/cpo.ts).

import { z } from "zod";
import { CPO_LOSSES, type CpoLossType, cpoLoss } from "../losses/cpo.js";
import type { CausalLM } from "../models/causal_lm.js";
import { mul } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { type PreferenceTrainOptions, pairMetrics } from "./dpo.js";
import { LOOP_FIELDS, type RunResult, type TrainingTask } from "./loop.js";
import { scorePairs, trainReferenceFree } from "./orpo.js";
import { PREFERENCE_DATA_FIELDS, type PreferencePair } from "./preference_data.js";

const CPO_LOSS_TYPES = Object.keys(CPO_LOSSES) as [CpoLossType, ...CpoLossType[]];
/** Variants scored on length-averaged log-probs (TRL: ipo and simpo). */
const AVERAGED: ReadonlySet<CpoLossType> = new Set(["ipo", "simpo"]);

export const CPO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate"),
  ...PREFERENCE_DATA_FIELDS,
  beta: z.number().positive().default(0.1).describe("Inverse temperature"),
  lossType: z
    .enum(CPO_LOSS_TYPES)
    .default("sigmoid")
    .describe(`Pairwise loss (${CPO_LOSS_TYPES.join(", ")})`),
  labelSmoothing: z.number().min(0).max(0.5).default(0).describe("Smoothed-logistic noise rate (sigmoid, simpo)"),
  simpoGamma: z.number().default(0.5).describe("SimPO's absolute target margin gamma"),
  cpoAlpha: z.number().min(0).default(1).describe("Weight of the chosen NLL (0 for pure SimPO)"),
};
export const CPO_SCHEMA = z.object(CPO_FIELDS).strict();
export type CpoTrainConfig = z.output<typeof CPO_SCHEMA>;
export type CpoTrainInput = Partial<z.input<typeof CPO_SCHEMA>>;

export const CPO_RULES: ((c: CpoTrainConfig) => string | null)[] = [
  (c) => (c.labelSmoothing >= 0.5 ? `labelSmoothing must be < 0.5, got ${c.labelSmoothing}` : null),
];

export function resolveCpoTrainConfig(input: CpoTrainInput = {}): CpoTrainConfig {
  return resolveConfig("cpo", CPO_SCHEMA, input as Record<string, unknown>, CPO_RULES);
}

export function createCpoTask(o: { policy: CausalLM; config: CpoTrainConfig; padId: number }): TrainingTask<PreferencePair> {
  const c = o.config;
  const averaged = AVERAGED.has(c.lossType);
  return {
    rowTokens: (p) =>
      Math.max(p.chosen.promptIds.length + p.chosen.completionIds.length, p.rejected.promptIds.length + p.rejected.completionIds.length),
    countUnits: (pairs) => pairs.length,
    lossSum: (pairs) => {
      const s = scorePairs(o.policy, pairs, o.padId);
      const out = cpoLoss(
        {
          chosenLogps: averaged ? s.chosenAvg : s.chosenLogps,
          rejectedLogps: averaged ? s.rejectedAvg : s.rejectedLogps,
          nllLoss: c.cpoAlpha !== 0 ? s.nll : undefined,
        },
        { lossType: c.lossType, beta: c.beta, labelSmoothing: c.labelSmoothing, simpoGamma: c.simpoGamma, cpoAlpha: c.cpoAlpha },
      );
      const metrics = { ...pairMetrics(out.chosenRewards, out.rejectedRewards, s.chosenLogps, s.rejectedLogps), nll_loss: s.nll.item() };
      return { loss: mul(out.loss, pairs.length), metrics };
    },
  };
}

export async function trainCpo(opts: PreferenceTrainOptions<CpoTrainInput>): Promise<RunResult & { config: CpoTrainConfig }> {
  return trainReferenceFree("cpo", opts, resolveCpoTrainConfig(opts.config), createCpoTask);
}
