// Choosing the next token from one row of logits: greedy, temperature, top-k, top-p (nucleus), min-p.
// Filters follow HF's logits processors (temperature first, then top-k, top-p, min-p); the returned
// log-prob is log_softmax(logits / temperature) at the chosen token, before filtering, which is what a
// teacher-forced forward pass at the same temperature computes (TRL's old/ref log-probs). The row maths is the
// `ref` definition of the sampleTokens kernel (src/backend/ref_decode.ts), which the rollout engine runs batched.

import { filterMask as filterKeep, sampleRow, tokenLogprob } from "../backend/ref_decode.js";

export { tokenLogprob };

export interface SamplingOptions {
  /** 0 (or doSample false) means greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK?: number;
  /** Keep the smallest set whose probability mass reaches p; 1 disables. */
  topP?: number;
  /** Drop tokens whose probability is below minP × the top probability; 0 disables. */
  minP?: number;
  doSample?: boolean;
}

export interface Choice {
  id: number;
  logprob: number;
}

export class SamplingError extends Error {
  override name = "SamplingError";
}

export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new SamplingError(`[sampling] temperature must be >= 0, got ${t}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0))
    throw new SamplingError(`[sampling] topK must be an integer >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new SamplingError(`[sampling] topP must be in (0, 1], got ${o.topP}`);
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) throw new SamplingError(`[sampling] minP must be in [0, 1], got ${o.minP}`);
}

/** Pick a token from one row of logits; `uniform` returns numbers in [0, 1) (drawn only when sampling). */
export function sampleToken(row: ArrayLike<number>, opts: SamplingOptions, uniform: () => number): Choice {
  const temperature = opts.temperature ?? 1;
  if (opts.doSample === false || temperature === 0) return sampleRow(row, 0, 0, 1, 0, 0);
  return sampleRow(row, temperature, opts.topK ?? 0, opts.topP ?? 1, opts.minP ?? 0, uniform());
}

/** Which tokens survive top-k, top-p and min-p (HF order) over temperature-scaled probabilities. */
export function filterMask(probs: Float64Array, opts: SamplingOptions): Uint8Array {
  return filterKeep(probs, opts.topK ?? 0, opts.topP ?? 1, opts.minP ?? 0);
}

/** One candidate token with log_softmax(logits / T) at it. */
export interface TopEntry {
  id: number;
  logprob: number;
}

/** JSON has no -Infinity: reported log-probs are clamped here, as vLLM does. */
export const LOGPROB_FLOOR = -9999;

/** The k best tokens of log_softmax(row / t) in float64, best first (ties by lower id), and the row's logsumexp. */
export function topLogprobs(row: ArrayLike<number>, k: number, t: number): { top: TopEntry[]; lse: number } {
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) mx = Math.max(mx, row[j] / t);
  let s = 0;
  for (let j = 0; j < row.length; j++) s += Math.exp(row[j] / t - mx);
  const lse = mx + Math.log(s);
  const ids: number[] = [];
  for (let j = 0; j < row.length && k > 0; j++) {
    if (ids.length === k && row[j] <= row[ids[k - 1]]) continue;
    let at = ids.length < k ? ids.length : k - 1;
    while (at > 0 && row[ids[at - 1]] < row[j]) at--;
    ids.splice(at, 0, j);
    if (ids.length > k) ids.pop();
  }
  return { top: ids.map((id) => ({ id, logprob: Math.max(LOGPROB_FLOOR, row[id] / t - lse) })), lse };
}
