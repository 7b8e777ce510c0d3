// Tokenized preference data shared by the DPO-family trainers: {prompt?, chosen, rejected} pairs (explicit or
// implicit prompt, strings or message lists) and unpaired {prompt, completion, label} rows become prompt and
// completion ids with TRL's truncation (prompt cut from the left, completion kept from its start), plus the
// batched completion log-probs every trainer scores them with (chosen and rejected in one forward pass).
// Not here: losses (src/losses/), reference models and the training loop (dpo.ts, loop.ts).

import { z } from "zod";
import { type Batch, batchLogprobs, collate, type Example } from "../data/batch.js";
import { maybeExtractPrompt, type PreferenceRow, type UnpairedPreferenceRow } from "../data/formats.js";
import { DatasetError } from "../data/jsonl.js";
import { encodePromptCompletion } from "../io/chat_encoding.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { maskedSum, slice, sum, type Tensor } from "../tensor/index.js";

/** Tokenization fields shared by the preference trainers' configs (TRL names in camelCase). */
export const PREFERENCE_DATA_FIELDS = {
  maxLength: z.number().int().positive().nullable().default(1024).describe("Maximum prompt + completion tokens; null disables"),
  maxPromptLength: z.number().int().positive().nullable().default(null).describe("Prompt tokens kept (from the end); null disables"),
  maxCompletionLength: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("Completion tokens kept (from the start); null disables"),
  truncationMode: z.enum(["keep_start", "keep_end"]).default("keep_start").describe("Which end of prompt + completion survives maxLength"),
};

export interface TruncationOptions {
  maxLength: number | null;
  maxPromptLength: number | null;
  maxCompletionLength: number | null;
  truncationMode: "keep_start" | "keep_end";
}

/** One prompt/completion sequence as ids (prompt first), the unit every preference trainer scores. */
export interface PromptCompletion {
  promptIds: number[];
  completionIds: number[];
}

export interface PreferencePair {
  /** 0-based position in the source rows (errors and precomputed values refer to it). */
  index: number;
  chosen: PromptCompletion;
  rejected: PromptCompletion;
  /** Reference log-probs filled in before training when `precomputeRefLogProbs` is on. */
  refChosenLogps?: number;
  refRejectedLogps?: number;
}

export interface UnpairedExample {
  index: number;
  seq: PromptCompletion;
  /** true = desirable. */
  label: boolean;
}

/**
 * Apply TRL's truncation: the prompt keeps its last `maxPromptLength` ids, the completion its first
 * `maxCompletionLength`, then the joined sequence keeps its first (keep_start) or last (keep_end) `maxLength`.
 */
export function truncateSequence(s: PromptCompletion, o: TruncationOptions): PromptCompletion {
  let p = o.maxPromptLength !== null && s.promptIds.length > o.maxPromptLength ? s.promptIds.slice(-o.maxPromptLength) : s.promptIds;
  let c = o.maxCompletionLength !== null ? s.completionIds.slice(0, o.maxCompletionLength) : s.completionIds;
  if (o.maxLength !== null && p.length + c.length > o.maxLength) {
    if (o.truncationMode === "keep_start") {
      p = p.slice(0, o.maxLength);
      c = c.slice(0, o.maxLength - p.length);
    } else {
      c = c.slice(-o.maxLength);
      p = p.slice(p.length - (o.maxLength - c.length));
    }
  }
  return { promptIds: p, completionIds: c };
}

/** Ids and completion mask of one sequence, for `collate`. */
export function toExample(s: PromptCompletion): Example {
  return {
    ids: [...s.promptIds, ...s.completionIds],
    lossMask: [...s.promptIds.map(() => 0), ...s.completionIds.map(() => 1)],
  };
}

type Text = string | ChatMessage[];

function encode(
  tok: Tokenizer,
  prompt: Text,
  completion: Text,
  source: string,
  row: number,
  field: string,
  o: TruncationOptions,
): PromptCompletion {
  const where = `${source} row ${row}`;
  let enc: ReturnType<typeof encodePromptCompletion>;
  try {
    enc = encodePromptCompletion(tok, prompt, completion);
  } catch (e) {
    throw new DatasetError(`${where}: field "${field}": ${(e as Error).message}`, source, row, field);
  }
  const s = truncateSequence({ promptIds: enc.ids.slice(0, enc.promptLength), completionIds: enc.ids.slice(enc.promptLength) }, o);
  if (s.completionIds.length === 0) {
    throw new DatasetError(
      `${where}: field "${field}" has no tokens left after truncation (prompt ${enc.promptLength} tokens, ` +
        `maxLength ${o.maxLength}); raise maxLength or set maxPromptLength`,
      source,
      row,
      field,
    );
  }
  return s;
}

/** Tokenize preference rows; `source` names the file in errors (`file row N: field "chosen": ...`). */
export function tokenizePreference(
  tok: Tokenizer,
  rows: readonly PreferenceRow[],
  opts: TruncationOptions,
  source = "<memory>",
): PreferencePair[] {
  return rows.map((raw, index) => {
    const r = maybeExtractPrompt(raw);
    const prompt = r.prompt as Text;
    return {
      index,
      chosen: encode(tok, prompt, r.chosen as Text, source, index + 1, "chosen", opts),
      rejected: encode(tok, prompt, r.rejected as Text, source, index + 1, "rejected", opts),
    };
  });
}

/** Tokenize unpaired (KTO) rows. */
export function tokenizeUnpaired(
  tok: Tokenizer,
  rows: readonly UnpairedPreferenceRow[],
  opts: TruncationOptions,
  source = "<memory>",
): UnpairedExample[] {
  return rows.map((r, index) => ({
    index,
    seq: encode(tok, r.prompt as Text, r.completion as Text, source, index + 1, "completion", opts),
    label: r.label,
  }));
}

/** Padding id of a tokenizer (pad, else EOS, else 0: right padding is masked out either way). */
export function padIdOf(tok: Tokenizer): number {
  return tok.padTokenId ?? tok.eosTokenId ?? 0;
}

export interface SequenceScores {
  batch: Batch;
  /** Aligned per-token log-probs [N, T] (0 at prompt and padding positions once masked). */
  tokenLogps: Tensor;
  /** Summed completion log-probs [N]. */
  logps: Tensor;
  /** Completion token counts, one per sequence. */
  lengths: number[];
}

/** One forward pass over sequences (right-padded): summed completion log-probs per sequence. */
export function scoreSequences(model: CausalLM, seqs: readonly PromptCompletion[], padId: number): SequenceScores {
  const batch = collate(seqs.map(toExample), padId);
  const tokenLogps = batchLogprobs(model, batch); // (N, T)
  return {
    batch,
    tokenLogps,
    logps: maskedSum(tokenLogps, batch.lossMask, 1), // (N, T) -> (N)
    lengths: seqs.map((s) => s.completionIds.length),
  };
}

/** Rows [from, to) of a [N, ...] tensor. */
export const rowsOf = (t: Tensor, from: number, to: number): Tensor => slice(t, 0, from, to);

/** Token-mean NLL of the first `n` sequences' completions (TRL's chosen NLL term), a scalar. */
export function completionNll(s: SequenceScores, n: number): Tensor {
  const m = rowsOf(s.batch.lossMask, 0, n);
  const tokens = Math.max(
    1,
    s.lengths.slice(0, n).reduce((a, b) => a + b, 0),
  );
  return sum(maskedSum(rowsOf(s.tokenLogps, 0, n), m, 1)).mul(-1 / tokens);
}
