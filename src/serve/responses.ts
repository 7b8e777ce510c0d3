// Response fields `nexus serve` writes the same way in whole and streamed answers: log-probs (completions and
// chat shapes), finish_reason / stop_reason, prompt log-probs, usage, and the mapping of any error to an ApiError.
// Streamed chunks carry these fields for their own tokens, so concatenating a stream gives the whole answer.
// Not here: request parsing (protocol.ts), routes (server.ts), SSE framing (sse.ts).

import type { RowResult, TopEntry } from "./engine.js";
import { ApiError, type SamplingRequest } from "./protocol.js";

/** A token as a string: its text, or vLLM's "token_id:<id>" (return_tokens_as_token_ids). */
export type TokenString = (id: number) => string;

export const tokenIdString: TokenString = (id) => `token_id:${id}`;

export function clampLogprob(x: number): number {
  return Number.isFinite(x) ? x : -9999;
}

/** OpenAI completions `top_logprobs[t]`: token → logprob for the top-k plus the chosen token (as vLLM). */
function topDict(id: number, logprob: number, top: readonly TopEntry[], tokStr: TokenString): Record<string, number> {
  const d: Record<string, number> = {};
  for (const e of top) d[tokStr(e.id)] = e.logprob;
  d[tokStr(id)] = clampLogprob(logprob);
  return d;
}

/** Generated tokens with their log-probs and top-k candidates (a whole row, or the ones in one chunk). */
export interface TokenRun {
  ids: readonly number[];
  logprobs: readonly number[];
  top: readonly (readonly TopEntry[])[];
}

/**
 * /v1/completions `logprobs` for `run`; `text_offset` counts each token's own text from `offset` (the length
 * of the tokens before, for a chunk). Returns the field and the offset after the run.
 */
export function completionLogprobs(
  run: TokenRun,
  tokStr: TokenString,
  tokenText: (id: number) => string,
  offset = 0,
): { logprobs: unknown; offset: number } {
  let at = offset;
  const textOffset = run.ids.map((id) => {
    const o = at;
    at += tokenText(id).length;
    return o;
  });
  const logprobs = {
    tokens: run.ids.map(tokStr),
    token_logprobs: run.logprobs.map(clampLogprob),
    top_logprobs: run.ids.map((id, t) => topDict(id, run.logprobs[t], run.top[t] ?? [], tokStr)),
    text_offset: textOffset,
  };
  return { logprobs, offset: at };
}

/** /v1/chat/completions `logprobs.content` for `run`. */
export function chatLogprobContent(run: TokenRun, topLogprobs: number, tokStr: TokenString): unknown[] {
  const entry = (id: number, logprob: number) => {
    const token = tokStr(id);
    return { token, logprob: clampLogprob(logprob), bytes: [...Buffer.from(token, "utf8")] };
  };
  return run.ids.map((id, t) => ({
    ...entry(id, run.logprobs[t]),
    top_logprobs: (run.top[t] ?? []).slice(0, topLogprobs).map((e) => entry(e.id, e.logprob)),
  }));
}

/** vLLM's `prompt_logprobs` of a row (undefined when not asked). */
export function promptLogprobsJson(r: RowResult, tokStr: TokenString): unknown[] | undefined {
  if (r.promptLogprobs === null) return undefined;
  return r.promptLogprobs.map((e) => {
    if (e === null) return null;
    const d: Record<string, unknown> = {};
    e.top.forEach((t, i) => {
      d[String(t.id)] = { logprob: t.logprob, rank: i + 1, decoded_token: tokStr(t.id) };
    });
    d[String(e.id)] = { logprob: e.logprob, rank: e.rank, decoded_token: tokStr(e.id) };
    return d;
  });
}

export interface FinishFields {
  finish_reason: "stop" | "length";
  stop_reason: string | number | null;
}

/** Why a row ended: "length", or "stop" with the stop token id or stop string that ended it (vLLM's stop_reason). */
export function finishFields(r: RowResult, sampling: SamplingRequest, decode: (ids: readonly number[]) => string): FinishFields {
  const g = r.gen;
  if (g.finishReason === "length") return { finish_reason: "length", stop_reason: null };
  if (g.finishReason === "eos") {
    const last = g.completionIds[g.completionIds.length - 1];
    return { finish_reason: "stop", stop_reason: sampling.stopTokenIds.includes(last) ? last : null };
  }
  // which stop string ended it: the earliest one in the decoded completion (generate's rule)
  const text = decode(g.completionIds);
  let best: string | null = null;
  let at = -1;
  for (const s of sampling.stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) [best, at] = [s, i];
  }
  return { finish_reason: "stop", stop_reason: best };
}

export function usageOf(
  promptTokens: number,
  results: readonly RowResult[],
): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const completionTokens = results.reduce((a, r) => a + r.gen.completionIds.length, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** Any failure as the ApiError to answer: generation, sampling and tokenizer errors are the request's (400). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(/^\[(generate|sampling|tokenizer)\]/.test(message) ? 400 : 500, message.slice(0, 1000));
}
