// The DPO trainer, as TRL's DPOTrainer (v1.9): preference pairs, chosen and rejected scored in one forward pass
// ("concatenated forward"), a reference that is a frozen copy of the starting policy, the base model under LoRA
// (adapters disabled), or log-probs precomputed once before training; every `lossType` of losses/dpo.ts (list =
// weighted sum), ipo / sigmoid_norm on token-averaged scores, and TRL's rewards/* and logps/* metrics.
// Rafailov et al. 2023. Differs from TRL: no TR-DPO reference sync, WPO weighting, LD-DPO or padding-free mode.
// Not here: the loss formulas (losses/dpo.ts), tokenization (preference_data.ts), the loop (loop.ts).

import { z } from "zod";
import type { PreferenceRow } from "../data/formats.js";
import type { Tokenizer } from "../io/tokenizer.js";
import {
  DPO_LOSSES,
  type DpoConfig,
  type DpoLossType,
  dpoLoss,
  F_DIVERGENCES,
  type FDivergenceType,
  resolveDpoConfig,
} from "../losses/dpo.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { LoraModel } from "../models/lora.js";
import { mean, mul, sub, type Tensor, tensor } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { evaluateTask } from "./evaluate.js";
import { LOOP_FIELDS, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import { createReferencePolicy, type ReferenceOptions, resolvePolicy } from "./policy.js";
import {
  PREFERENCE_DATA_FIELDS,
  type PreferencePair,
  type PromptCompletion,
  padIdOf,
  rowsOf,
  scoreSequences,
  tokenizePreference,
} from "./preference_data.js";
import { type RunControl, runControl } from "./run_state.js";

const DPO_LOSS_TYPES = Object.keys(DPO_LOSSES) as [DpoLossType, ...DpoLossType[]];
const F_DIVERGENCE_TYPES = Object.keys(F_DIVERGENCES) as [FDivergenceType, ...FDivergenceType[]];

export const DPO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate"),
  ...PREFERENCE_DATA_FIELDS,
  beta: z.number().positive().default(0.1).describe("Inverse temperature of the implicit reward"),
  lossType: z
    .union([z.enum(DPO_LOSS_TYPES), z.array(z.enum(DPO_LOSS_TYPES)).min(1)])
    .default(["sigmoid"])
    .describe(`Loss variant or JSON list of variants (${DPO_LOSS_TYPES.join(", ")})`),
  lossWeights: z.array(z.number()).nullable().default(null).describe("One weight per lossType entry; null = all 1"),
  labelSmoothing: z.number().min(0).max(1).default(0).describe("cDPO / robust / AOT noise rate, exo_pair epsilon"),
  fDivergenceType: z.enum(F_DIVERGENCE_TYPES).default("reverse_kl").describe("Transform of each log-ratio"),
  fAlphaDivergenceCoef: z.number().default(0.5).describe("alpha of alpha_divergence"),
  discopopTau: z.number().positive().default(0.05).describe("DiscoPOP temperature"),
  precomputeRefLogProbs: z.boolean().default(false).describe("Score the reference once before training, then drop it"),
};
export const DPO_SCHEMA = z.object(DPO_FIELDS).strict();
export type DpoTrainConfig = z.output<typeof DPO_SCHEMA>;
export type DpoTrainInput = Partial<z.input<typeof DPO_SCHEMA>>;

/** The trainer-config fields that configure the DPO loss (shared by DPO and SPIN). */
type DpoLossFields = Pick<
  DpoTrainConfig,
  "lossType" | "lossWeights" | "beta" | "labelSmoothing" | "discopopTau" | "fDivergenceType" | "fAlphaDivergenceCoef"
>;

/** The loss-level part of a trainer config. */
export function dpoLossConfig(c: DpoLossFields): DpoConfig {
  return {
    lossType: c.lossType,
    lossWeights: c.lossWeights,
    beta: c.beta,
    labelSmoothing: c.labelSmoothing,
    discopopTau: c.discopopTau,
    fDivergenceType: c.fDivergenceType,
    fAlphaDivergenceCoef: c.fAlphaDivergenceCoef,
  };
}

/** A config rule: the loss fields must make a valid DPO loss (the resolver's message otherwise). */
export function dpoLossRule(c: DpoLossFields): string | null {
  try {
    resolveDpoConfig(dpoLossConfig(c));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export const DPO_RULES: ((c: DpoTrainConfig) => string | null)[] = [dpoLossRule];

export function resolveDpoTrainConfig(input: DpoTrainInput = {}): DpoTrainConfig {
  return resolveConfig("dpo", DPO_SCHEMA, input as Record<string, unknown>, DPO_RULES);
}

// ---- reference ----------------------------------------------------------------------------------------

/** Summed completion log-probs [N] of sequences under the reference, without gradient. */
export type ReferenceScorer = (seqs: readonly PromptCompletion[]) => Tensor;

/**
 * The reference scorer of a preference trainer: summed completion log-probs under the reference of policy.ts
 * (refModel, else the LoRA base with adapters off, else a frozen copy of the policy as it is now).
 */
export function createReference(model: CausalLM | LoraModel<CausalLM>, padId: number, opts: ReferenceOptions = {}): ReferenceScorer {
  const ref = createReferencePolicy(model, opts);
  return (seqs) => ref.run((m) => scoreSequences(m, seqs, padId).logps);
}

/** Fill refChosenLogps / refRejectedLogps of every pair, `batchSize` pairs per forward pass. */
export function precomputeReference(pairs: PreferencePair[], score: ReferenceScorer, batchSize: number): void {
  for (let i = 0; i < pairs.length; i += batchSize) {
    const chunk = pairs.slice(i, i + batchSize);
    const b = chunk.length;
    const lp = score([...chunk.map((p) => p.chosen), ...chunk.map((p) => p.rejected)]).hostData(); // [2b]
    chunk.forEach((p, j) => {
      p.refChosenLogps = lp[j];
      p.refRejectedLogps = lp[b + j];
    });
  }
}

// ---- task ---------------------------------------------------------------------------------------------

export interface DpoTaskOptions {
  policy: CausalLM;
  config: DpoTrainConfig;
  padId: number;
  /** Live reference; null means every pair carries precomputed reference log-probs. */
  reference: ReferenceScorer | null;
}

/** Reference log-probs of a micro-batch [chosen..., rejected...] from the scorer or the pairs. */
function referenceLogps(pairs: readonly PreferencePair[], seqs: PromptCompletion[], reference: ReferenceScorer | null): Tensor {
  if (reference !== null) return reference(seqs);
  const out = new Float32Array(seqs.length);
  pairs.forEach((p, j) => {
    if (p.refChosenLogps === undefined || p.refRejectedLogps === undefined) {
      throw new Error(`[dpo] pair ${p.index + 1} has no precomputed reference log-probs`);
    }
    out[j] = p.refChosenLogps;
    out[pairs.length + j] = p.refRejectedLogps;
  });
  return tensor(out);
}

/** Metrics TRL logs for a pairwise method, from rewards and policy log-probs of one micro-batch. */
export function pairMetrics(chosenRewards: Tensor, rejectedRewards: Tensor, pc: Tensor, pr: Tensor): Record<string, number> {
  const c = chosenRewards.hostData();
  const r = rejectedRewards.hostData();
  let acc = 0;
  for (let i = 0; i < c.length; i++) if (c[i] > r[i]) acc++;
  return {
    "rewards/chosen": mean(chosenRewards).item(),
    "rewards/rejected": mean(rejectedRewards).item(),
    "rewards/accuracies": acc / Math.max(1, c.length),
    "rewards/margins": mean(sub(chosenRewards, rejectedRewards)).item(),
    "logps/chosen": mean(pc).item(),
    "logps/rejected": mean(pr).item(),
  };
}

/** The loop's view of DPO: units are pairs, the summed loss is B * sum_k w_k mean(L_k). */
export function createDpoTask(o: DpoTaskOptions): TrainingTask<PreferencePair> {
  const lossCfg = dpoLossConfig(o.config);
  return {
    rowTokens: (p) =>
      Math.max(p.chosen.promptIds.length + p.chosen.completionIds.length, p.rejected.promptIds.length + p.rejected.completionIds.length),
    countUnits: (pairs) => pairs.length,
    lossSum: (pairs) => {
      const b = pairs.length;
      const seqs = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
      const pol = scoreSequences(o.policy, seqs, o.padId); // one forward over 2B sequences
      const ref = referenceLogps(pairs, seqs, o.reference);
      const pc = rowsOf(pol.logps, 0, b);
      const pr = rowsOf(pol.logps, b, 2 * b);
      const out = dpoLoss(
        {
          policyChosenLogps: pc,
          policyRejectedLogps: pr,
          refChosenLogps: rowsOf(ref, 0, b),
          refRejectedLogps: rowsOf(ref, b, 2 * b),
          chosenLengths: tensor(pol.lengths.slice(0, b)),
          rejectedLengths: tensor(pol.lengths.slice(b)),
          chosenTokenLogps: rowsOf(pol.tokenLogps, 0, b),
          chosenMask: rowsOf(pol.batch.lossMask, 0, b),
        },
        lossCfg,
      );
      return { loss: mul(out.loss, b), metrics: pairMetrics(out.chosenRewards, out.rejectedRewards, pc, pr) };
    },
  };
}

// ---- entry point --------------------------------------------------------------------------------------

export interface PreferenceTrainOptions<I> extends ReferenceOptions, RunControl {
  /** The policy; with a LoraModel only the adapters train and the reference is the base (adapters off). */
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  rows: readonly PreferenceRow[];
  /** Held-out rows of the same format: the loss and metrics evaluated every evalSteps and at the end (eval_*). */
  evalRows?: readonly PreferenceRow[] | null;
  config?: I;
  /** Checkpoints and metrics.jsonl; null trains in memory. */
  outputDir?: string | null;
  quiet?: boolean;
  /** Names the data in errors (the JSONL path). */
  source?: string;
  /** Names the held-out data in errors. */
  evalSource?: string;
  stopAfterStep?: number;
}

export interface DpoTrainResult extends RunResult {
  config: DpoTrainConfig;
  pairs: PreferencePair[];
}

export async function trainDpo(opts: PreferenceTrainOptions<DpoTrainInput>): Promise<DpoTrainResult> {
  const config = resolveDpoTrainConfig(opts.config);
  const padId = padIdOf(opts.tokenizer);
  const { policy, trainable } = resolvePolicy(opts.model);
  const pairs = tokenizePreference(opts.tokenizer, opts.rows, config, opts.source);
  const evalPairs = opts.evalRows ? tokenizePreference(opts.tokenizer, opts.evalRows, config, opts.evalSource ?? "evalRows") : null;
  let reference: ReferenceScorer | null = createReference(opts.model, padId, opts);
  if (config.precomputeRefLogProbs) {
    precomputeReference(pairs, reference, config.perDeviceTrainBatchSize);
    if (evalPairs !== null) precomputeReference(evalPairs, reference, config.perDeviceTrainBatchSize);
    reference = null; // the frozen copy (if any) is garbage from here on
  }
  const task = createDpoTask({ policy, config, padId, reference });
  if (evalPairs !== null) task.evaluate = () => evaluateTask(task, evalPairs, config.perDeviceTrainBatchSize);
  const run = await runTraining({
    model: trainable,
    task,
    rows: pairs,
    config,
    outputDir: opts.outputDir ?? null,
    ...runControl(opts),
    fullConfig: { trainer: "dpo", ...config },
    label: "dpo",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  return { ...run, config, pairs };
}
