// Process reward model training, as TRL's PRMTrainer: stepwise rows `{prompt, completions[], labels[]}`; each
// step is tokenized with `stepSeparator` appended and its label sits on the last token of that span (others
// -100); BOS before the prompt when the tokenizer has one; 2-label token classification head (`score.weight`
// [2, D] + `score.bias`), cross-entropy over labelled tokens. Eval adds ProcessBench-style first-error F1.
// Not here: soft (MC) labels, special step tags, per-step generation or labelling (src/rewards/).

import { z } from "zod";
import { collate } from "../data/batch.js";
import { loadDataset } from "../data/formats.js";
import { type PrmExample, tokenizePrmRow } from "../data/row_tokenize.js";
import { checkTokenizerFitsModel } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { resolveClassifier, saveClassifier, type TokenClassifier } from "../models/heads.js";
import { crossEntropy, fromArray, noGrad, type Tensor as TensorT } from "../tensor/index.js";
import { LOOP_FIELDS, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import type { Metrics } from "./metrics.js";
import { runControl } from "./run_state.js";
import { resolveTokenizer, resolveTrainerConfig, type TrainerOptions, writeOutputExtras } from "./trainer_io.js";

export const PRM_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(1e-5).describe("Peak learning rate (TRL PRMTrainer default 1e-5)."),
  stepSeparator: z.string().default("\n").describe("Text appended to every step; its last token carries the step's label."),
  trainOnLastStepOnly: z.boolean().default(false).describe("Train on the last step's label only (evaluation keeps all)."),
  maxLength: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(1024)
    .describe("Truncate prompt + completion to this many tokens; null keeps all."),
  maxPromptLength: z.number().int().positive().nullable().default(512).describe("Keep the last N prompt tokens; null keeps all."),
  maxCompletionLength: z.number().int().positive().nullable().default(null).describe("Truncate the steps to N tokens; null keeps all."),
};
export const PRM_SCHEMA = z.object(PRM_FIELDS).strict();
export type PrmTrainerConfig = z.output<typeof PRM_SCHEMA>;

function labelled(e: PrmExample): number[] {
  const out: number[] = [];
  e.labels.forEach((l, i) => {
    if (l !== -100) out.push(i);
  });
  return out;
}

/** Logits [N, 2] at the labelled tokens of a micro-batch, with their labels (row order, token order). */
export function prmLogits(model: TokenClassifier, rows: readonly PrmExample[], padId: number): { logits: TensorT; labels: number[] } {
  const batch = collate(
    rows.map((r) => ({ ids: r.ids, lossMask: [] })),
    padId,
  );
  const positions = rows.map(labelled);
  const logits = model.logitsAt({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }, positions);
  const labels = rows.flatMap((r, i) => positions[i].map((p) => r.labels[p]));
  return { logits, labels };
}

/** P(step correct) = softmax(logits)[1] per row of [N, 2] logits. */
function probCorrect(logits: TensorT): number[] {
  const d = logits.hostData();
  const out: number[] = [];
  for (let i = 0; i < logits.shape[0]; i++) out.push(1 / (1 + Math.exp(d[2 * i] - d[2 * i + 1])));
  return out;
}

/** Index of the first step with label 0 (or P < 0.5), -1 when there is none: ProcessBench's target. */
export function firstError(correct: readonly boolean[]): number {
  const i = correct.indexOf(false);
  return i;
}

/** ProcessBench scoring: accuracy on erroneous samples (exact first-error index), on correct ones (-1), F1. */
export function processBenchF1(
  gold: readonly number[],
  pred: readonly number[],
): { errorAccuracy: number; correctAccuracy: number; f1: number } {
  let errN = 0;
  let errHit = 0;
  let okN = 0;
  let okHit = 0;
  gold.forEach((g, i) => {
    if (g === -1) {
      okN++;
      if (pred[i] === -1) okHit++;
    } else {
      errN++;
      if (pred[i] === g) errHit++;
    }
  });
  const errorAccuracy = errN > 0 ? errHit / errN : 0;
  const correctAccuracy = okN > 0 ? okHit / okN : 0;
  const f1 = errorAccuracy + correctAccuracy > 0 ? (2 * errorAccuracy * correctAccuracy) / (errorAccuracy + correctAccuracy) : 0;
  return { errorAccuracy, correctAccuracy, f1 };
}

/** Step accuracy over all labelled steps, and ProcessBench first-error F1 (threshold 0.5). */
export function evaluatePrm(model: TokenClassifier, rows: readonly PrmExample[], padId: number, batchSize = 16): Metrics {
  return noGrad(() => {
    let hits = 0;
    let n = 0;
    const gold: number[] = [];
    const pred: number[] = [];
    for (let i = 0; i < rows.length; i += batchSize) {
      const part = rows.slice(i, i + batchSize);
      const { logits, labels } = prmLogits(model, part, padId);
      const p = probCorrect(logits);
      let k = 0;
      for (const r of part) {
        const m = labelled(r).length;
        const rowLabels = labels.slice(k, k + m);
        const rowP = p.slice(k, k + m);
        k += m;
        rowLabels.forEach((l, j) => {
          n++;
          if ((rowP[j] >= 0.5 ? 1 : 0) === l) hits++;
        });
        gold.push(firstError(rowLabels.map((l) => l === 1)));
        pred.push(firstError(rowP.map((q) => q >= 0.5)));
      }
    }
    const pb = processBenchF1(gold, pred);
    return {
      step_accuracy: n > 0 ? hits / n : 0,
      error_accuracy: pb.errorAccuracy,
      correct_accuracy: pb.correctAccuracy,
      processbench_f1: pb.f1,
    };
  });
}

export interface PrmTrainerOptions extends Omit<TrainerOptions<PrmTrainerConfig>, "model"> {
  /** A token classifier, a causal LM (its backbone gets a fresh 2-label head), or a folder of either. */
  model: TokenClassifier | CausalLM | string;
}

export interface PrmTrainerResult {
  model: TokenClassifier;
  config: PrmTrainerConfig;
  run: RunResult;
  examples: PrmExample[];
}

export async function trainPrm(opts: PrmTrainerOptions): Promise<PrmTrainerResult> {
  const cfg = resolveTrainerConfig("prm", PRM_SCHEMA, opts.config as Record<string, unknown>);
  const model = resolveClassifier(opts.model, "token", { numLabels: 2, seed: cfg.seed, tag: "prm", role: "PRM" }) as TokenClassifier;
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "prm");
  checkTokenizerFitsModel(tok, model.config.vocabSize, "prm");
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  const load = (src: string | readonly unknown[], isEval: boolean) =>
    loadDataset(src, "stepwise_supervision").map((r) => tokenizePrmRow(tok, r, cfg, isEval));
  const examples = load(opts.data, false).filter((e) => labelled(e).length > 0);
  if (examples.length === 0) throw new Error("[prm] no row has a labelled step after truncation");
  const evalExamples = opts.evalData ? load(opts.evalData, true) : null;

  const task: TrainingTask<PrmExample> = {
    rowTokens: (e) => e.ids.length,
    countUnits: (rows) => rows.reduce((n, e) => n + labelled(e).length, 0),
    lossSum: (rows) => {
      const { logits, labels } = prmLogits(model, rows, padId);
      const loss = crossEntropy(logits, fromArray(Int32Array.from(labels), [labels.length]), { reduction: "sum" });
      const p = probCorrect(logits);
      const hits = labels.filter((l, i) => (p[i] >= 0.5 ? 1 : 0) === l).length;
      return { loss, metrics: { step_accuracy: hits / labels.length } };
    },
  };
  if (evalExamples !== null && evalExamples.length > 0)
    task.evaluate = () => evaluatePrm(model, evalExamples, padId, cfg.perDeviceTrainBatchSize);

  const outputDir = opts.outputDir ?? null;
  const resolved = { ...(opts.extraConfig ?? {}), ...cfg };
  const run = await runTraining({
    model,
    task,
    rows: examples,
    config: cfg,
    outputDir,
    ...runControl(opts),
    fullConfig: resolved,
    label: "prm",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  if (outputDir !== null && !run.interrupted) {
    saveClassifier(model, outputDir);
    writeOutputExtras(outputDir, tok, resolved);
  }
  return { model, config: cfg, run, examples };
}
