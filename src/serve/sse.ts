// Server-sent events for `stream: true` (OpenAI's and vLLM's format): `data: <json>\n\n` per chunk, then
// `data: [DONE]\n\n`. The chunk shapes of /v1/completions ("text_completion") and /v1/chat/completions
// ("chat.completion.chunk"), the usage chunk (`choices: []`), the error event sent when a request fails after
// its headers went out, and a writer that sends nothing once the client is gone.
// Not here: which text a chunk carries (stream_text.ts), driving the engine (stream.ts).

import type * as http from "node:http";
import type { ApiError } from "./protocol.js";
import type { FinishFields } from "./responses.js";

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no", // proxies (nginx) must not buffer the stream
};

export const SSE_DONE = "data: [DONE]\n\n";

/** One event. JSON never contains a raw newline, so one `data:` line always holds it. */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** The fields every chunk of one response repeats. `usage: null` in each chunk when the client asked for usage. */
export interface ChunkHead {
  id: string;
  created: number;
  model: string;
  includeUsage: boolean;
}

type Usage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };

function chunk(head: ChunkHead, object: string, choices: unknown[], usage: Usage | null = null): Record<string, unknown> {
  const c: Record<string, unknown> = { id: head.id, object, created: head.created, model: head.model, choices };
  if (head.includeUsage) c.usage = usage;
  return c;
}

/** A /v1/completions chunk of one choice: its new text and tokens; `finish` on the choice's last chunk. */
export function completionChunk(
  head: ChunkHead,
  choice: { index: number; text: string; logprobs: unknown; tokenIds: readonly number[]; finish: FinishFields | null },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return chunk(head, "text_completion", [
    {
      index: choice.index,
      text: choice.text,
      logprobs: choice.logprobs,
      finish_reason: choice.finish?.finish_reason ?? null,
      stop_reason: choice.finish?.stop_reason ?? null,
      token_ids: choice.tokenIds,
      ...extra,
    },
  ]);
}

/**
 * A /v1/chat/completions chunk of one choice. `delta` is `{role, content: ""}` first, then `{content}`, and `{}`
 * on the last chunk, which carries the finish.
 */
export function chatChunk(
  head: ChunkHead,
  choice: { index: number; delta: Record<string, unknown>; logprobs: unknown; tokenIds?: readonly number[]; finish: FinishFields | null },
): Record<string, unknown> {
  return chunk(head, "chat.completion.chunk", [
    {
      index: choice.index,
      delta: choice.delta,
      logprobs: choice.logprobs,
      finish_reason: choice.finish?.finish_reason ?? null,
      stop_reason: choice.finish?.stop_reason ?? null,
      ...(choice.tokenIds === undefined ? {} : { token_ids: choice.tokenIds }),
    },
  ]);
}

/** The last chunk before [DONE] with `stream_options: {include_usage: true}`. */
export function usageChunk(head: ChunkHead, object: string, usage: Usage): Record<string, unknown> {
  return chunk({ ...head, includeUsage: true }, object, [], usage);
}

/**
 * Writes one response's events. Headers go out on `open`; after that a failure can only be told in the stream:
 * `fail` sends `{error}` and [DONE]. Writes after the client closed the connection are dropped.
 */
export class SseWriter {
  constructor(private readonly res: http.ServerResponse) {}

  get open(): boolean {
    return this.res.headersSent;
  }

  start(): void {
    this.res.writeHead(200, SSE_HEADERS);
    this.res.flushHeaders();
  }

  send(data: unknown): void {
    this.write(sseEvent(data));
  }

  fail(err: ApiError): void {
    this.send(err.toJSON());
    this.end();
  }

  end(): void {
    this.write(SSE_DONE);
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  private write(text: string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.res.write(text);
  }
}
