// SPIN (Self-Play fINe-tuning, Chen et al. 2024) as verl's recipe frames it: iterated DPO on {prompt, completion}
// rows where the chosen completion is the data's and the rejected one is the policy's own sample. Each iteration
// samples every prompt once with the current policy, then trains DPO (any lossType, the shared loop, a fresh
// optimizer) against a reference that is refreshed to the current policy at the start of the iteration
// (`refreshReference`, the paper's θ_t; false keeps the initial policy as the reference throughout).
// TRL has no SPIN trainer. Differs from verl: sampling happens once per iteration, not per step.

import { z } from "zod";
import type { PromptCompletionRow } from "../data/formats.js";
import { encodePromptCompletion } from "../io/chat_encoding.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { LoraModel } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import { resolveConfig } from "./config.js";
import { createDpoTask, DPO_FIELDS, DPO_RULES, resolvePolicy } from "./dpo.js";
import { runTraining, TrainingError } from "./loop.js";
import type { Metrics } from "./metrics.js";
import { createReferencePolicy, type ReferencePolicy } from "./online_dpo.js";
import { type Sample, samplePolicy } from "./online_policy.js";
import { type PreferencePair, type PromptCompletion, padIdOf, truncateSequence } from "./preference_data.js";
import { type RunControl, runControl } from "./run_state.js";

const { precomputeRefLogProbs: _p, ...DPO_FIELDS_LIVE } = DPO_FIELDS;

export const SPIN_FIELDS = {
  ...DPO_FIELDS_LIVE,
  learningRate: z.number().positive().default(5e-7).describe("Peak learning rate (per iteration)"),
  numIterations: z.number().int().positive().default(3).describe("Self-play iterations (sample, then train DPO)"),
  maxNewTokens: z.number().int().positive().default(64).describe("Tokens generated at most per rejected completion"),
  temperature: z.number().min(0).default(1).describe("Sampling temperature of the rejected completions (0: greedy)"),
  topP: z.number().positive().max(1).default(1).describe("Nucleus sampling mass"),
  refreshReference: z.boolean().default(true).describe("Copy the policy into the reference at the start of every iteration"),
};
export const SPIN_SCHEMA = z.object(SPIN_FIELDS).strict();
export type SpinTrainConfig = z.output<typeof SPIN_SCHEMA>;
export type SpinTrainInput = Partial<z.input<typeof SPIN_SCHEMA>>;
export const SPIN_RULES: ((c: SpinTrainConfig) => string | null)[] = DPO_RULES.map((r) => (c) => r({ ...c, precomputeRefLogProbs: false }));

export function resolveSpinConfig(input: SpinTrainInput = {}): SpinTrainConfig {
  return resolveConfig("spin", SPIN_SCHEMA, input as Record<string, unknown>, SPIN_RULES);
}

export interface SpinOptions extends RunControl {
  /** The policy (trained in place). With a LoraModel the base is the reference and cannot be refreshed. */
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  /** {prompt, completion} rows: the completion is the chosen ("real") answer. */
  rows: readonly PromptCompletionRow[];
  config?: SpinTrainInput;
  /**
   * Iteration k writes checkpoints and metrics under `<outputDir>/iteration-<k>`. With `resume`, every iteration
   * resumes from its folder: finished ones only replay their sampling (so the RNG and the opponent are the same)
   * and restore their final weights; the interrupted one continues from its newest checkpoint.
   */
  outputDir?: string | null;
  quiet?: boolean;
  /** Called before each iteration samples (0-based), after any reference refresh. */
  onIterationStart?: (iteration: number, state: { policy: CausalLM; reference: ReferencePolicy }) => void;
  /** Called with each iteration's pairs before it trains. */
  onPairs?: (iteration: number, pairs: PreferencePair[]) => void;
}

export interface SpinIterationMetrics extends Metrics {
  iteration: number;
  first_loss: number;
  last_loss: number;
  /** Fraction of prompts whose sample equals the data completion token for token. */
  frac_sample_equals_data: number;
  "completions/mean_length": number;
}

export interface SpinResult {
  config: SpinTrainConfig;
  iterations: SpinIterationMetrics[];
  history: Metrics[][];
  reference: ReferencePolicy;
}

type Text = string | ChatMessage[];

/** The data side of every pair: prompt and chosen completion ids, truncated as the DPO trainer truncates. */
function encodeRows(tok: Tokenizer, rows: readonly PromptCompletionRow[], c: SpinTrainConfig): PromptCompletion[] {
  return rows.map((r, i) => {
    const enc = encodePromptCompletion(tok, r.prompt as Text, r.completion as Text);
    const s = truncateSequence({ promptIds: enc.ids.slice(0, enc.promptLength), completionIds: enc.ids.slice(enc.promptLength) }, c);
    if (s.completionIds.length === 0) throw new TrainingError(`[spin] row ${i + 1}: the completion has no tokens left after truncation`);
    return s;
  });
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export async function trainSpin(opts: SpinOptions): Promise<SpinResult> {
  const c = resolveSpinConfig(opts.config);
  const tok = opts.tokenizer;
  const padId = padIdOf(tok);
  if (opts.rows.length === 0) throw new TrainingError("[spin] the dataset has no rows");
  const reference = createReferencePolicy(opts.model, padId);
  if (c.refreshReference && reference.model === null && c.numIterations > 1) {
    throw new TrainingError("[spin] refreshReference needs a full model: a LoRA base cannot follow the policy (merge first)");
  }
  const { policy, trainable } = resolvePolicy(opts.model);
  const rng = new Rng(c.seed);
  const eosIds = tok.eosTokenId === null ? [] : [tok.eosTokenId];
  const data = encodeRows(tok, opts.rows, c);
  const iterations: SpinIterationMetrics[] = [];
  const history: Metrics[][] = [];

  for (let it = 0; it < c.numIterations; it++) {
    if (it > 0 && c.refreshReference) reference.sync(1); // θ_t becomes the opponent and the reference
    opts.onIterationStart?.(it, { policy, reference });
    const samples: Sample[] = [];
    const chunk = Math.max(1, c.perDeviceTrainBatchSize * c.gradientAccumulationSteps);
    for (let i = 0; i < data.length; i += chunk) {
      const prompts = data.slice(i, i + chunk).map((d) => d.promptIds);
      samples.push(
        ...samplePolicy(policy, prompts, {
          maxNewTokens: c.maxNewTokens,
          temperature: c.temperature,
          topP: c.topP,
          eosIds,
          rng,
          tokenizer: tok,
        }),
      );
    }
    const pairs: PreferencePair[] = data.map((d, index) => ({
      index,
      chosen: d,
      rejected: truncateSequence({ promptIds: d.promptIds, completionIds: samples[index].completionIds }, c),
    }));
    opts.onPairs?.(it, pairs);
    const task = createDpoTask({
      policy,
      config: { ...c, precomputeRefLogProbs: false },
      padId,
      reference: (seqs) => reference.logps(seqs),
    });
    const run = await runTraining({
      model: trainable,
      task,
      rows: pairs,
      config: c,
      outputDir: opts.outputDir ? `${opts.outputDir}/iteration-${it}` : null,
      fullConfig: { trainer: "spin", iteration: it, ...c },
      label: `spin ${it + 1}/${c.numIterations}`,
      quiet: opts.quiet,
      ...runControl(opts),
    });
    history.push(run.history);
    const train = run.history.filter((h) => typeof h.loss === "number");
    const last = train.at(-1) ?? {};
    iterations.push({
      ...Object.fromEntries(Object.entries(last).filter(([k]) => k.startsWith("rewards/") || k.startsWith("logps/"))),
      iteration: it,
      first_loss: (train[0]?.loss as number) ?? Number.NaN,
      last_loss: (last.loss as number) ?? Number.NaN,
      frac_sample_equals_data: pairs.filter((p) => same(p.chosen.completionIds, p.rejected.completionIds)).length / pairs.length,
      "completions/mean_length": samples.reduce((a, s) => a + s.completionIds.length, 0) / samples.length,
    });
  }
  return { config: c, iterations, history, reference };
}
