// Incremental text for streamed completions: which part of a row's decoded text is safe to send after each token.
// IncrementalDecoder turns a growing id list into text in O(window) per token (vLLM's prefix-window method);
// TextStream holds back what may still change or must never be sent: an incomplete UTF-8 character (U+FFFD at
// the end), trailing text that could begin a stop string, and trailing text a decoder may still rewrite (clean-up
// of " ." and friends, stripped whitespace). At the row's end the rest of its exact final text is sent, so the
// concatenated stream equals the non-streamed text. Not here: SSE framing (sse.ts), HTTP (server.ts).

import { matchStop } from "../generate/stop.js";

const REPLACEMENT = "\uFFFD";

/** Text a decoder may rewrite once the next token arrives: HF's clean_up_tokenization patterns. */
const DECODER_REWRITES: readonly string[] = [" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"];

/** Tokens of context before the new ones in each windowed decode: more than the longest rewrite pattern needs. */
const CONTEXT_TOKENS = 4;

/**
 * Decoded text of a growing list of ids. Each push decodes only a window: the new tokens plus a few tokens of
 * context before them, decoded with and without the new ones (vLLM's prefix-offset method; decoders that treat
 * the first token specially, like Metaspace's leading-space strip, do it in both decodes, so the difference is
 * exact). When the window's decode does not extend its context's (a decoder rewrote text across tokens, e.g.
 * " ," → ","), the text is decoded from every id instead.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  /** Ids whose text is in `decoded` (it ends on a complete character). */
  private read = 0;
  private decoded = "";

  constructor(private readonly decode: (ids: readonly number[]) => string) {}

  /** The text of the ids pushed so far, complete characters only (a trailing incomplete one waits). */
  get text(): string {
    return this.decoded;
  }

  push(id: number): string {
    this.ids.push(id);
    const from = Math.max(0, this.read - CONTEXT_TOKENS);
    const before = this.decode(this.ids.slice(from, this.read));
    const now = this.decode(this.ids.slice(from));
    if (now.endsWith(REPLACEMENT)) return this.decoded; // an incomplete character: wait for its other bytes
    if (!now.startsWith(before)) this.decoded = this.decode(this.ids);
    else if (now.length > before.length) this.decoded += now.slice(before.length);
    else return this.decoded; // no text yet (a skipped special token)
    this.read = this.ids.length;
    return this.decoded;
  }
}

/** Length of the longest end of `text` that is a proper prefix of one of `patterns`. */
function partialMatchLength(text: string, patterns: readonly string[]): number {
  let best = 0;
  for (const p of patterns) {
    for (let k = Math.min(p.length - 1, text.length); k > best; k--) {
      if (text.endsWith(p.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/** How many characters at the end of `text` must wait: see the file header. */
export function holdbackLength(text: string, stop: readonly string[]): number {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT) end--;
  const body = text.slice(0, end);
  let keep = Math.max(partialMatchLength(body, stop), partialMatchLength(body, DECODER_REWRITES));
  const space = body.length - body.trimEnd().length;
  keep = Math.max(keep, space);
  return text.length - end + keep;
}

/**
 * What of one row's text has been sent. `update` takes the decoded text so far and returns the new part that is
 * safe to send; once a stop string appears it returns the text up to it (or through it with `includeStop`) and
 * `stopped` turns true. `finish` takes the row's final text and returns the rest.
 */
export class TextStream {
  private sent = "";
  private done = false;

  constructor(
    private readonly stop: readonly string[],
    private readonly includeStop: boolean,
  ) {}

  /** A stop string was seen: nothing after it will be sent. */
  get stopped(): boolean {
    return this.done;
  }

  /** Everything sent so far. */
  get text(): string {
    return this.sent;
  }

  update(text: string): string {
    if (this.done) return "";
    let safe: string;
    const cut = this.stop.length > 0 ? matchStop(text, this.stop, this.includeStop) : null;
    if (cut !== null) {
      safe = cut;
      this.done = true;
    } else safe = text.slice(0, text.length - holdbackLength(text, this.stop));
    return this.advance(safe);
  }

  /**
   * The row's final text (what the non-streamed response reports) → what is left to send. Text sent is always a
   * prefix of it for the decoders we know; should a decoder still rewrite sent text, only the new end is sent.
   */
  finish(finalText: string): string {
    this.done = true;
    if (finalText.startsWith(this.sent)) return this.advance(finalText);
    const rest = finalText.slice(this.sent.length);
    this.sent = finalText;
    return rest;
  }

  private advance(safe: string): string {
    if (!safe.startsWith(this.sent)) return ""; // rewritten by the decoder: wait for text that extends what was sent
    const delta = safe.slice(this.sent.length);
    this.sent = safe;
    return delta;
  }
}
