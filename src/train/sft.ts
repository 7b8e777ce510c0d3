// Supervised fine-tuning, as TRL's SFTTrainer: rows `{text}`, `{prompt, completion}` (text or messages) or
// `{messages}`; EOS appended to text rows; completion-only loss (auto: on for prompt-completion rows) and
// assistant-only loss for chats; truncation to maxLength (keep start). Loss = NLL summed over counted tokens,
// divided by the step's counted tokens (TRL's `nll` with `average_tokens_across_devices`).
// Not here: packing / padding-free batching, DFT loss, Liger kernels.

import { z } from "zod";
import { alignedTokenLogprobs, collate, type Example } from "../data/batch.js";
import { loadDataset } from "../data/formats.js";
import { encodeChat, encodePromptCompletion } from "../io/chat_encoding.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import { checkTokenizerFitsModel } from "../io/tokenizer.js";
import { type CausalLM, saveCausalLM } from "../models/causal_lm.js";
import { argmax, maskedSum, noGrad, sub } from "../tensor/index.js";
import { LOOP_FIELDS, type RunResult, runTraining, type TrainingTask } from "./loop.js";
import type { Metrics } from "./metrics.js";
import { runControl } from "./run_state.js";
import { resolveModel, resolveTokenizer, resolveTrainerConfig, type TrainerOptions, writeOutputExtras } from "./trainer_io.js";

export const SFT_FIELDS = {
  ...LOOP_FIELDS,
  learningRate: z.number().positive().default(2e-5).describe("Peak learning rate (TRL SFT default 2e-5)."),
  maxLength: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(1024)
    .describe("Truncate tokenized rows to this many tokens (keep the start); null keeps all."),
  completionOnlyLoss: z
    .boolean()
    .nullable()
    .default(null)
    .describe("Loss on completion tokens only; null = auto (true for prompt-completion rows)."),
  assistantOnlyLoss: z.boolean().default(false).describe("For conversational rows, loss on assistant turns only."),
  datasetTextField: z.string().default("text").describe("Column holding the text of language-modeling rows."),
};
export const SFT_SCHEMA = z.object(SFT_FIELDS).strict();
export type SftConfig = z.output<typeof SFT_SCHEMA>;

/** A tokenized SFT row: ids plus the 0/1 mask of tokens whose prediction counts (position 0 never does). */
export type SftExample = Example;

/** Tokenize one SFT row the way TRL does; throws naming `where` (file:line) on an unusable row. */
export function tokenizeSftRow(tok: Tokenizer, row: Record<string, unknown>, cfg: SftConfig, where = "<row>"): SftExample {
  let ids: number[];
  let mask: number[];
  if ("prompt" in row && "completion" in row) {
    const enc = encodePromptCompletion(tok, row.prompt as string | ChatMessage[], row.completion as string | ChatMessage[]);
    ids = enc.ids;
    const completionOnly = cfg.completionOnlyLoss ?? true;
    mask = completionOnly ? enc.completionMask : ids.map(() => 1);
    if (cfg.assistantOnlyLoss && typeof row.prompt !== "string") {
      // conversational prompt-completion: the completion is the assistant part
      mask = enc.completionMask;
    }
  } else if ("messages" in row) {
    const enc = encodeChat(tok, row.messages as ChatMessage[], { assistantOnly: cfg.assistantOnlyLoss });
    ids = enc.ids;
    mask = enc.assistantMask;
  } else {
    const text = row[cfg.datasetTextField];
    if (typeof text !== "string") throw new Error(`[sft] ${where}: field "${cfg.datasetTextField}" must be a string`);
    const eos = tok.eosToken;
    ids = tok.encode(eos !== null && !text.endsWith(eos) ? text + eos : text);
    mask = ids.map(() => 1);
  }
  if (cfg.maxLength !== null && ids.length > cfg.maxLength) {
    ids = ids.slice(0, cfg.maxLength);
    mask = mask.slice(0, cfg.maxLength);
  }
  mask = mask.slice();
  if (mask.length > 0) mask[0] = 0; // nothing predicts the first token
  return { ids, lossMask: mask };
}

function countTokens(rows: readonly SftExample[]): number {
  let n = 0;
  for (const r of rows) for (const m of r.lossMask) n += m;
  return n;
}

/** Summed NLL, counted tokens and correct argmax predictions of a micro-batch. */
export function sftLossSum(model: CausalLM, rows: readonly SftExample[], padId: number) {
  const batch = collate(rows, padId);
  const { logits } = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
  const lp = alignedTokenLogprobs(logits, batch.inputIds); // (B, T)
  const loss = maskedSum(sub(0, lp), batch.lossMask);
  // token accuracy: argmax of the logits at t-1 equals token t, over counted tokens
  const [b, t] = batch.inputIds.shape;
  // the argmax runs on the backend: only [B, T] predictions reach the host, not [B, T, V] logits
  const pred = noGrad(() => argmax(logits, -1)).hostData();
  const idd = batch.inputIds.hostData();
  const md = batch.lossMask.hostData();
  let correct = 0;
  let counted = 0;
  for (let i = 0; i < b; i++) {
    for (let j = 1; j < t; j++) {
      if (md[i * t + j] === 0) continue;
      counted++;
      if (pred[i * t + j - 1] === idd[i * t + j]) correct++;
    }
  }
  return { loss, counted, correct, tokens: batch.lengths.reduce((a, x) => a + x, 0) };
}

export interface SftResult {
  model: CausalLM;
  config: SftConfig;
  run: RunResult;
  /** Tokenized training rows (for inspection in tests). */
  examples: SftExample[];
}

export async function trainSft(opts: TrainerOptions<SftConfig>): Promise<SftResult> {
  const cfg = resolveTrainerConfig("sft", SFT_SCHEMA, opts.config as Record<string, unknown>);
  const model = await resolveModel(opts.model);
  const tok = resolveTokenizer(opts.tokenizer, opts.model, "sft");
  checkTokenizerFitsModel(tok, model.config.vocabSize, "sft");
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const load = (src: string | readonly unknown[]) => {
    const { rows } = loadDataset(src, undefined);
    const name = typeof src === "string" ? src : "<memory>";
    return (rows as Record<string, unknown>[]).map((r, i) => tokenizeSftRow(tok, r, cfg, `${name}:${i + 1}`));
  };
  const examples = load(opts.data).filter((e) => countTokens([e]) > 0);
  if (examples.length === 0) throw new Error("[sft] no row has a token to train on (all masked or empty)");
  const evalExamples = opts.evalData ? load(opts.evalData) : null;

  const task: TrainingTask<SftExample> = {
    rowTokens: (r) => r.ids.length,
    countUnits: countTokens,
    lossSum: (rows) => {
      const r = sftLossSum(model, rows, padId);
      return {
        loss: r.loss,
        metrics: { mean_token_accuracy: r.counted > 0 ? r.correct / r.counted : 0 },
        totals: { num_tokens: r.tokens },
      };
    },
  };
  if (evalExamples !== null && evalExamples.length > 0) {
    task.evaluate = (): Metrics =>
      noGrad(() => {
        let nll = 0;
        let counted = 0;
        let correct = 0;
        for (let i = 0; i < evalExamples.length; i += cfg.perDeviceTrainBatchSize) {
          const r = sftLossSum(model, evalExamples.slice(i, i + cfg.perDeviceTrainBatchSize), padId);
          nll += r.loss.item();
          counted += r.counted;
          correct += r.correct;
        }
        return { loss: counted > 0 ? nll / counted : 0, mean_token_accuracy: counted > 0 ? correct / counted : 0 };
      });
  }
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
    label: "sft",
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
  if (outputDir !== null && !run.interrupted) {
    saveCausalLM(model, outputDir);
    writeOutputExtras(outputDir, tok, resolved);
  }
  return { model, config: cfg, run, examples };
}
