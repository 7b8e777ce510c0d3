// The KTO trainer, as TRL's KTOTrainer: unpaired {prompt, completion, label} rows, a frozen reference (copy,
// LoRA base or explicit model), and the KL reference point z0 from mismatched pairs built inside each
// micro-batch: prompt i with completion i-1 (rotate by +1, the first wraps), scored without gradient.
// Ethayarajh et al. 2024. Differs from TRL: the rotation happens per micro-batch of the loop's shuffled order
// (TRL rotates per batch of its sequential order at preprocessing); no precomputed reference log-probs.

import { z } from "zod";
import type { UnpairedPreferenceRow } from "../data/formats.js";
import { KTO_LOSSES, type KtoLossType, ktoLoss } from "../losses/kto.js";
import type { CausalLM } from "../models/causal_lm.js";
import { fromArray, gather, mean, mul, noGrad } from "../tensor/index.js";
import { resolveConfig } from "./config.js";
import { createReference, type PreferenceTrainOptions, type ReferenceScorer } from "./dpo.js";
import { evaluateTask } from "./evaluate.js";
import { LOOP_FIELDS, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import { resolvePolicy } from "./policy.js";
import {
  PREFERENCE_DATA_FIELDS,
  type PromptCompletion,
  padIdOf,
  rowsOf,
  scoreSequences,
  tokenizeUnpaired,
  truncateSequence,
  type UnpairedExample,
} from "./preference_data.js";
import { runControl } from "./run_state.js";

const KTO_LOSS_TYPES = Object.keys(KTO_LOSSES) as [KtoLossType, ...KtoLossType[]];

export const KTO_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-6).describe("Peak learning rate"),
  ...PREFERENCE_DATA_FIELDS,
  beta: z.number().positive().default(0.1).describe("Inverse temperature of the implicit reward"),
  lossType: z.enum(KTO_LOSS_TYPES).default("kto").describe("kto, or apo_zero_unpaired (no KL term)"),
  desirableWeight: z.number().positive().default(1).describe("Weight of desirable examples' losses"),
  undesirableWeight: z.number().positive().default(1).describe("Weight of undesirable examples' losses"),
};
export const KTO_SCHEMA = z.object(KTO_FIELDS).strict();
export type KtoTrainConfig = z.output<typeof KTO_SCHEMA>;
export type KtoTrainInput = Partial<z.input<typeof KTO_SCHEMA>>;

export const KTO_RULES: ((c: KtoTrainConfig) => string | null)[] = [
  (c) =>
    c.lossType === "kto" && c.perDeviceTrainBatchSize < 2
      ? "lossType 'kto' estimates its KL term from mismatched pairs in a micro-batch: perDeviceTrainBatchSize must be >= 2"
      : null,
];

export function resolveKtoTrainConfig(input: KtoTrainInput = {}): KtoTrainConfig {
  return resolveConfig("kto", KTO_SCHEMA, input as Record<string, unknown>, KTO_RULES);
}

/** The mismatched KL sequences of a micro-batch: prompt i with completion i-1 (TRL's rotation by +1). */
export function klSequences(rows: readonly UnpairedExample[], c: KtoTrainConfig): PromptCompletion[] {
  const n = rows.length;
  return rows.map((r, i) => truncateSequence({ promptIds: r.seq.promptIds, completionIds: rows[(i - 1 + n) % n].seq.completionIds }, c));
}

const indices = (rows: readonly UnpairedExample[], label: boolean) => {
  const idx = rows.flatMap((r, i) => (r.label === label ? [i] : []));
  return fromArray(Int32Array.from(idx), [idx.length]);
};

export function createKtoTask(o: {
  policy: CausalLM;
  config: KtoTrainConfig;
  padId: number;
  reference: ReferenceScorer;
}): TrainingTask<UnpairedExample> {
  const c = o.config;
  return {
    rowTokens: (r) => r.seq.promptIds.length + r.seq.completionIds.length,
    countUnits: (rows) => rows.length,
    lossSum: (rows) => {
      const n = rows.length;
      const seqs = rows.map((r) => r.seq);
      const kl = c.lossType === "kto" ? klSequences(rows, c) : [];
      const pol = scoreSequences(o.policy, seqs, o.padId).logps; // [n], with gradient
      const ref = o.reference([...seqs, ...kl]); // [n + n_kl]
      // TRL scores the KL pairs under no_grad for the policy as well: z0 is detached anyway
      const polKl = kl.length > 0 ? noGrad(() => scoreSequences(o.policy, kl, o.padId).logps) : undefined;
      const d = indices(rows, true);
      const u = indices(rows, false);
      const refDone = rowsOf(ref, 0, n);
      const out = ktoLoss(
        {
          policyChosenLogps: gather(pol, 0, d),
          refChosenLogps: gather(refDone, 0, d),
          policyRejectedLogps: gather(pol, 0, u),
          refRejectedLogps: gather(refDone, 0, u),
          policyKlLogps: polKl,
          refKlLogps: kl.length > 0 ? rowsOf(ref, n, 2 * n) : undefined,
        },
        { lossType: c.lossType, beta: c.beta, desirableWeight: c.desirableWeight, undesirableWeight: c.undesirableWeight },
      );
      const metrics: Record<string, number> = { kl: out.kl.item() };
      // TRL logs each group's mean over its own examples; here weighted by micro-batch size (groups may be empty)
      if (d.size > 0) {
        metrics["rewards/chosen"] = mean(out.chosenRewards).item();
        metrics["logps/chosen"] = mean(gather(pol, 0, d)).item();
      }
      if (u.size > 0) {
        metrics["rewards/rejected"] = mean(out.rejectedRewards).item();
        metrics["logps/rejected"] = mean(gather(pol, 0, u)).item();
      }
      return { loss: mul(out.loss, n), metrics };
    },
  };
}

export interface KtoTrainOptions extends Omit<PreferenceTrainOptions<KtoTrainInput>, "rows" | "evalRows"> {
  rows: readonly UnpairedPreferenceRow[];
  /** Held-out rows: loss and metrics evaluated every evalSteps and at the end (eval_*). */
  evalRows?: readonly UnpairedPreferenceRow[] | null;
}

export async function trainKto(opts: KtoTrainOptions): Promise<RunResult & { config: KtoTrainConfig }> {
  const config = resolveKtoTrainConfig(opts.config);
  const padId = padIdOf(opts.tokenizer);
  const { policy, trainable } = resolvePolicy(opts.model);
  const rows = tokenizeUnpaired(opts.tokenizer, opts.rows, config, opts.source);
  const task = createKtoTask({ policy, config, padId, reference: createReference(opts.model, padId, opts) });
  if (opts.evalRows) {
    const evalRows = tokenizeUnpaired(opts.tokenizer, opts.evalRows, config, opts.evalSource ?? "evalRows");
    task.evaluate = () => evaluateTask(task, evalRows, config.perDeviceTrainBatchSize);
  }
  const run = await runTraining({
    model: trainable,
    task,
    rows,
    config,
    outputDir: opts.outputDir ?? null,
    ...runControl(opts),
    fullConfig: { trainer: "kto", ...config },
    label: "kto",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  return { ...run, config };
}
