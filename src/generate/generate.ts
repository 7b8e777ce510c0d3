// Batched autoregressive generation with the KV cache: prompts of different lengths are left-padded (mask 0,
// positions cumsum(mask) - 1 like HF), one prefill pass, then one token per step for every unfinished row,
// greedy or sampled (sampling.ts), seeded, with eos ids, stop strings (vLLM `stop` semantics) and maxNewTokens.
// Finished rows leave the batch (selectBatch on the cache). Runs under noGrad and leaves train/eval mode as is.
// Not here: beam search, speculative decoding, repetition penalties, remote (OpenAI-compatible) generation.

import type { Tokenizer } from "../io/tokenizer.js";
import type { DecoderInputs } from "../models/decoder.js";
import { createKVCache, type KVCache, selectBatch } from "../models/kv_cache.js";
import { Rng } from "../nn/rng.js";
import { linear, noGrad, reshape, slice, Tensor } from "../tensor/index.js";
import { checkSampling, type SamplingOptions, sampleToken } from "./sampling.js";

/** What generation needs from a model: final hidden states and the output projection (CausalLM fits). */
export interface GenerativeLM {
  readonly config: { readonly vocabSize: number; readonly eosTokenId: number | number[] | null; readonly padTokenId: number | null };
  forwardHidden(inputs: DecoderInputs): Tensor;
  /** [V, D]. */
  readonly lmHeadWeight: Tensor;
}

export type FinishReason = "eos" | "stop" | "length";

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per row. */
  maxNewTokens: number;
  /** Ids that end a row (kept as its last completion token). Default: the model config's eos; null: none. */
  eosTokenId?: number | readonly number[] | null;
  /** Id written into padded prompt positions (masked, so its value does not matter). Default: config pad, else 0. */
  padTokenId?: number;
  /** Strings that end a row when they appear in its decoded completion (needs `tokenizer`). */
  stop?: readonly string[];
  /** Keep the stop string in `text` (vLLM include_stop_str_in_output). Default false. */
  includeStopStrInOutput?: boolean;
  /** Decodes completions for `stop` and for `text`. */
  tokenizer?: Pick<Tokenizer, "decode">;
  /** Drop special tokens from `text` (and from the text stop strings are matched in). Default true, as vLLM. */
  skipSpecialTokens?: boolean;
  /** Random stream for sampling (advanced in place); else a fresh Rng(seed). */
  rng?: Rng;
  /** Seed used when no rng is given. Default 0. */
  seed?: number;
}

export interface Generation {
  promptIds: number[];
  /**
   * Generated ids: up to and including the eos id, or the token that completed a stop string (the text is
   * truncated at the stop string, the ids are not: each id keeps its log-prob).
   */
  completionIds: number[];
  /** log_softmax(logits / temperature)[id] for each completion id (temperature 1 when greedy), before filtering. */
  logprobs: number[];
  finishReason: FinishReason;
  /** The decoded completion (only with a tokenizer). */
  text?: string;
}

export class GenerateError extends Error {
  override name = "GenerateError";
}

interface RowState {
  prompt: number[];
  ids: number[];
  logprobs: number[];
  finish: FinishReason | null;
  text: string;
}

function eosSet(opts: GenerateOptions, model: GenerativeLM): Set<number> {
  const e = opts.eosTokenId === undefined ? model.config.eosTokenId : opts.eosTokenId;
  if (e === null || e === undefined) return new Set();
  return new Set(typeof e === "number" ? [e] : e);
}

function validate(model: GenerativeLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): void {
  checkSampling(opts);
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new GenerateError(`[generate] maxNewTokens must be an integer >= 0, got ${opts.maxNewTokens}`);
  }
  if ((opts.stop?.length ?? 0) > 0 && opts.tokenizer === undefined) throw new GenerateError("[generate] stop strings need a tokenizer");
  if (opts.stop?.some((s) => s.length === 0)) throw new GenerateError("[generate] a stop string is empty");
  const v = model.config.vocabSize;
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new GenerateError(`[generate] prompt ${i} is empty (add a BOS token)`);
    for (const id of p) {
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new GenerateError(`[generate] prompt ${i} has id ${id} outside [0, ${v})`);
    }
  });
}

/** Left-pad prompts: ids and mask [B, T] with T the longest prompt. */
export function leftPad(prompts: readonly (readonly number[])[], padId: number): { ids: Tensor; mask: Tensor } {
  const b = prompts.length;
  const t = Math.max(...prompts.map((p) => p.length));
  const ids = new Int32Array(b * t).fill(padId);
  const mask = new Float32Array(b * t);
  prompts.forEach((p, r) => {
    const off = r * t + (t - p.length);
    ids.set(p, off);
    mask.fill(1, off, (r + 1) * t);
  });
  return { ids: new Tensor(ids, [b, t]), mask: new Tensor(mask, [b, t]) };
}

/** Logits of the last position only: hidden [B, T, D] → [B, V] (never the full [B, T, V]). */
function lastLogits(model: GenerativeLM, hidden: Tensor): Tensor {
  const [b, t, d] = hidden.shape;
  const last = reshape(slice(hidden, 1, t - 1, t), [b, d]); // (B, T, D) -> (B, D)
  return linear(last, model.lmHeadWeight); // (B, V)
}

/** Rows of a [B, S] mask (kept rows, in order) with one more column of ones. */
function growMask(mask: Tensor, keep: readonly number[]): Tensor {
  const s = mask.shape[1];
  const out = new Float32Array(keep.length * (s + 1));
  keep.forEach((r, i) => {
    out.set(mask.data.subarray(r * s, (r + 1) * s), i * (s + 1));
    out[i * (s + 1) + s] = 1;
  });
  return new Tensor(out, [keep.length, s + 1]);
}

/**
 * The text to report when a stop string occurs in a row's decoded completion, else null. The whole text is
 * searched (a row stops at its first match, so any match is new; byte-level decoders may also rewrite a
 * trailing partial character once the next token arrives). The earliest match wins.
 */
function matchStop(text: string, stop: readonly string[], include: boolean): string | null {
  let best = -1;
  let bestLen = 0;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at >= 0 && (best < 0 || at < best)) {
      best = at;
      bestLen = s.length;
    }
  }
  if (best < 0) return null;
  return text.slice(0, include ? best + bestLen : best);
}

/**
 * Generate a completion for every prompt (token id arrays, any lengths). Deterministic for a given seed
 * (or rng state), prompt list and options.
 */
export function generate(model: GenerativeLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): Generation[] {
  validate(model, prompts, opts);
  if (prompts.length === 0) return [];
  const eos = eosSet(opts, model);
  const stop = opts.stop ?? [];
  const tok = opts.tokenizer;
  const skipSpecial = opts.skipSpecialTokens ?? true;
  const include = opts.includeStopStrInOutput ?? false;
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const uniform = () => rng.next();
  const padId = opts.padTokenId ?? model.config.padTokenId ?? 0;
  const rows: RowState[] = prompts.map((p) => ({ prompt: [...p], ids: [], logprobs: [], finish: null, text: "" }));
  if (opts.maxNewTokens === 0) return rows.map((r) => finishRow(r, "length", tok, skipSpecial));

  noGrad(() => {
    const { ids, mask: promptMask } = leftPad(prompts, padId);
    let cache: KVCache = createKVCache(ids.shape[1] + opts.maxNewTokens); // no regrowth while decoding
    let mask = promptMask; // [B_active, S]
    let active = rows.map((_, i) => i); // batch position -> row index
    let logits = lastLogits(model, model.forwardHidden({ inputIds: ids, attentionMask: mask, kvCache: cache })); // (B, V)
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const v = logits.shape[1];
      const next: number[] = [];
      const keep: number[] = []; // batch positions still running after this step
      active.forEach((r, pos) => {
        const row = rows[r];
        const choice = sampleToken(logits.data.subarray(pos * v, (pos + 1) * v), opts, uniform);
        row.ids.push(choice.id);
        row.logprobs.push(choice.logprob);
        if (eos.has(choice.id)) row.finish = "eos";
        else if (stop.length > 0) {
          row.text = (tok as Pick<Tokenizer, "decode">).decode(row.ids, { skipSpecialTokens: skipSpecial });
          const cut = matchStop(row.text, stop, include);
          if (cut !== null) {
            row.text = cut;
            row.finish = "stop";
          }
        }
        if (row.finish === null && row.ids.length >= opts.maxNewTokens) row.finish = "length";
        if (row.finish === null) {
          keep.push(pos);
          next.push(choice.id);
        }
      });
      if (keep.length === 0) break;
      if (keep.length < active.length) {
        cache = selectBatch(cache, keep);
        active = keep.map((pos) => active[pos]);
      }
      mask = growMask(mask, keep);
      const stepIds = new Tensor(Int32Array.from(next), [keep.length, 1]);
      logits = lastLogits(model, model.forwardHidden({ inputIds: stepIds, attentionMask: mask, kvCache: cache }));
    }
  });
  return rows.map((r) => finishRow(r, r.finish ?? "length", tok, skipSpecial));
}

function finishRow(r: RowState, reason: FinishReason, tok: Pick<Tokenizer, "decode"> | undefined, skipSpecial: boolean): Generation {
  const out: Generation = { promptIds: r.prompt, completionIds: r.ids, logprobs: r.logprobs, finishReason: reason };
  if (tok !== undefined) out.text = reason === "stop" ? r.text : tok.decode(r.ids, { skipSpecialTokens: skipSpecial });
  return out;
}
