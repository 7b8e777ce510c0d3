// Generation for scripts and trainers: every prompt becomes a request of the rollout engine (engine.ts: paged KV
// cache, continuous batching, prefix sharing), run to completion. Each row samples from its own stream, forked in
// row order from `rng` (or Rng(seed)), so a row's tokens do not depend on the other rows, on batching or on memory
// pressure; greedy or sampled (sampling.ts), with eos ids, stop strings (vLLM `stop` semantics) and maxNewTokens.
// Runs under noGrad and leaves train/eval mode as is. Not here: beam search, speculative decoding, repetition
// penalties, remote (OpenAI-compatible) generation (remote.ts).

import type { Tokenizer } from "../io/tokenizer.js";
import { Rng } from "../nn/rng.js";
import { fromArray, memoryCheckpoint, type Tensor } from "../tensor/index.js";
import { ENGINE_DEFAULTS, type EngineResult, RolloutEngine } from "./engine.js";
import { blocksFor, bytesPerBlock, geometryOf } from "./paged_cache.js";
import { checkSampling, type SamplingOptions } from "./sampling.js";
import { type FinishReason, GenerateError, type Generation, type GenerativeLM } from "./types.js";

export { type FinishReason, GenerateError, type Generation, type GenerativeLM };

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per row. */
  maxNewTokens: number;
  /** Ids that end a row (kept as its last completion token). Default: the model config's eos; null: none. */
  eosTokenId?: number | readonly number[] | null;
  /** Unused since generation stopped padding prompts (kept so existing callers type-check). */
  padTokenId?: number;
  /** Strings that end a row when they appear in its decoded completion (needs `tokenizer`). */
  stop?: readonly string[];
  /** Keep the stop string in `text` (vLLM include_stop_str_in_output). Default false. */
  includeStopStrInOutput?: boolean;
  /** Decodes completions for `stop` and for `text`. */
  tokenizer?: Pick<Tokenizer, "decode">;
  /** Drop special tokens from `text` (and from the text stop strings are matched in). Default true, as vLLM. */
  skipSpecialTokens?: boolean;
  /** Random stream the rows' streams are forked from (advanced in place); else a fresh Rng(seed). */
  rng?: Rng;
  /** Seed used when no rng is given. Default 0. */
  seed?: number;
  /**
   * KV cache budget in bytes. Default: what every row needs at full length, at most 1 GiB; with less, rows wait
   * for memory and may be preempted and recomputed, with the same results.
   */
  kvCacheMemory?: number;
  /** Tokens computed per engine step at most (prefill chunking). Default 2048. */
  maxBatchTokens?: number;
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

/** Left-pad prompts: ids and mask [B, T] with T the longest prompt (for batched teacher-forced scoring). */
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
  return { ids: fromArray(ids, [b, t]), mask: fromArray(mask, [b, t]) };
}

/** Bytes of KV cache that let every row run at once to its full length (shared prompts counted once per row). */
function budgetFor(model: GenerativeLM, prompts: readonly (readonly number[])[], maxNewTokens: number): number {
  const g = geometryOf(model.config, ENGINE_DEFAULTS.blockSize);
  let blocks = 0;
  for (const p of prompts) blocks += blocksFor(p.length + maxNewTokens, g.blockSize);
  return blocks * bytesPerBlock(g);
}

/**
 * Generate a completion for every prompt (token id arrays, any lengths). Deterministic for a given seed
 * (or rng state), prompt list and options.
 */
export function generate(model: GenerativeLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): Generation[] {
  validate(model, prompts, opts);
  if (prompts.length === 0) return [];
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const streams = prompts.map(() => rng.fork());
  const tok = opts.tokenizer;
  const skipSpecial = opts.skipSpecialTokens ?? true;
  if (opts.maxNewTokens === 0) {
    return prompts.map((p) => ({
      promptIds: [...p],
      completionIds: [],
      logprobs: [],
      finishReason: "length",
      ...(tok === undefined ? {} : { text: "" }),
    }));
  }
  const need = budgetFor(model, prompts, opts.maxNewTokens);
  const engine = new RolloutEngine(model, {
    kvCacheMemory: Math.min(need, opts.kvCacheMemory ?? ENGINE_DEFAULTS.kvCacheMemory),
    maxBatchTokens: opts.maxBatchTokens,
    // packing all weights pays off over several decode steps of a batch; single rows use the GEMV path anyway
    packWeights: prompts.length > 4 && opts.maxNewTokens >= 8,
  });
  const eos = eosSet(opts, model);
  const out: EngineResult[] = new Array(prompts.length);
  prompts.forEach((p, i) => {
    engine.add({
      prompt: p,
      maxNewTokens: opts.maxNewTokens,
      sampling: opts,
      rng: streams[i],
      eos,
      stop: opts.stop,
      includeStopStrInOutput: opts.includeStopStrInOutput,
      tokenizer: tok,
      skipSpecialTokens: skipSpecial,
      onFinish: (r) => {
        out[i] = r;
      },
    });
  });
  memoryCheckpoint(); // the paged KV cache is allocated: the generation's own memory
  engine.runToCompletion();
  return out.map(({ promptIds, completionIds, logprobs, finishReason, text }) =>
    text === undefined ? { promptIds, completionIds, logprobs, finishReason } : { promptIds, completionIds, logprobs, finishReason, text },
  );
}
