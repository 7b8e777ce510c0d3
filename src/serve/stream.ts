// Runs one engine job as a stream of chunks (`stream: true`): each row's tokens go through an IncrementalDecoder
// and a TextStream (stream_text.ts), and the route turns each row's new text and tokens into chunks; when a row
// ends, the rest of its exact final text goes out with its finish. Rows of one request stream independently
// (choice `index` = row). A client that disconnects aborts `signal`, which cancels the job in the engine (its KV
// blocks are freed at the worker's next step). Not here: chunk shapes (sse.ts), headers and errors (server.ts).

import type { Engine, GenJob, RowResult, TokenEvent } from "./engine.js";
import type { SseWriter } from "./sse.js";
import { IncrementalDecoder, TextStream } from "./stream_text.js";

/** How one route (completions, chat) shapes its chunks. */
export interface StreamRoute {
  /** Chunks before any token (chat: each choice's role). */
  opening(): unknown[];
  /** Choice `index`'s chunks for its new `text` and the tokens since its last chunk; `end` on its last ones. */
  chunks(index: number, text: string, tokens: readonly TokenEvent[], end: RowResult | null): unknown[];
  /** The usage chunk after all rows ended, or null (not asked). */
  usage(results: readonly RowResult[]): unknown | null;
}

export interface StreamText {
  /** The decode the whole answer's text uses (same skipSpecialTokens). */
  decode: (ids: readonly number[]) => string;
  stop: readonly string[];
  includeStop: boolean;
  /** A chunk per token even when its text waits (log-probs were asked): tokens are never held back. */
  everyToken: boolean;
}

interface RowState {
  decoder: IncrementalDecoder;
  text: TextStream;
  pending: TokenEvent[];
  ended: boolean;
}

/** Submit `job` and write its chunks to `out` as its tokens arrive; resolves after the usage chunk (no [DONE]). */
export async function streamJob(
  engine: Engine,
  job: GenJob,
  text: StreamText,
  route: StreamRoute,
  out: SseWriter,
  signal: AbortSignal,
): Promise<void> {
  const rows: RowState[] = job.rows.map(() => ({
    decoder: new IncrementalDecoder(text.decode),
    text: new TextStream(text.stop, text.includeStop),
    pending: [],
    ended: false,
  }));
  const sendAll = (chunks: unknown[]) => {
    for (const c of chunks) out.send(c);
  };
  // a throw inside the engine's callbacks would break its bookkeeping: record it and cancel the job instead
  const stop = new AbortController();
  const inner = AbortSignal.any([signal, stop.signal]);
  let failure: { error: unknown } | null = null;
  const guarded =
    <A extends unknown[]>(fn: (...a: A) => void) =>
    (...a: A) => {
      if (failure !== null) return;
      try {
        fn(...a);
      } catch (error) {
        failure = { error };
        stop.abort();
      }
    };
  const endRow = (i: number, r: RowResult) => {
    const s = rows[i];
    if (s.ended) return;
    s.ended = true;
    sendAll(route.chunks(i, s.text.finish(r.gen.text ?? ""), s.pending.splice(0), r));
  };

  sendAll(route.opening());
  let results: RowResult[];
  try {
    results = await engine.submit(job, {
      signal: inner,
      onToken: guarded((i: number, e: TokenEvent) => {
        const s = rows[i];
        s.pending.push(e);
        const delta = s.text.update(s.decoder.push(e.id));
        if (delta.length > 0 || text.everyToken) sendAll(route.chunks(i, delta, s.pending.splice(0), null));
      }),
      onRowEnd: guarded(endRow),
    });
  } catch (e) {
    throw failure !== null ? (failure as { error: unknown }).error : e;
  }
  for (const [i, r] of results.entries()) endRow(i, r); // rows that ended without a token (max_tokens 0)
  const usage = route.usage(results);
  if (usage !== null) out.send(usage);
}
