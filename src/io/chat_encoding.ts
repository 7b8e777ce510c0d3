// Token ids plus loss masks for training rows, formed the way TRL's SFTTrainer / DPOTrainer form them:
// the prompt is tokenized alone and prompt+completion is tokenized as one text (or one rendered chat), and
// the completion is everything after the prompt's length (TRL warns when the prompt's ids are not a prefix;
// we report it in `prefixMatches`). Chat assistant masks come from rendering the template incrementally.
// Not here: truncation, padding, batching (src/data/).

import { type ChatMessage, type Tokenizer, TokenizerError } from "./tokenizer.js";

export interface PromptCompletionIds {
  /** prompt ids then completion ids (one tokenization of the joined text). */
  ids: number[];
  /** 1 on completion tokens, 0 on prompt tokens. */
  completionMask: number[];
  /** Number of leading prompt tokens. */
  promptLength: number;
  /** Whether the prompt's own ids are a prefix of `ids` (false means the boundary token merged across). */
  prefixMatches: boolean;
}

export interface PromptCompletionOptions {
  /** Append the EOS token to a text completion that does not end with it (TRL's SFT default). Default true. */
  addEos?: boolean;
  /** Tool schemas for conversational rows. */
  tools?: unknown[];
}

function fail(msg: string): never {
  throw new TokenizerError(`[tokenizer] ${msg}`);
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function maskFrom(promptIds: number[], ids: number[]): PromptCompletionIds {
  const promptLength = Math.min(promptIds.length, ids.length);
  const completionMask = ids.map((_, i) => (i < promptLength ? 0 : 1));
  return { ids, completionMask, promptLength, prefixMatches: isPrefix(promptIds, ids) };
}

/**
 * Encode one prompt/completion row. Text rows: `encode(prompt)` and `encode(prompt + completion [+ eos])`
 * with the tokenizer's special tokens (e.g. BOS). Conversational rows (message lists): the prompt rendered
 * with the generation prompt, and prompt + completion messages rendered in full, without special tokens.
 */
export function encodePromptCompletion(
  tok: Tokenizer,
  prompt: string | readonly ChatMessage[],
  completion: string | readonly ChatMessage[],
  opts: PromptCompletionOptions = {},
): PromptCompletionIds {
  if (typeof prompt === "string" && typeof completion === "string") {
    let full = prompt + completion;
    const eos = tok.eosToken;
    if ((opts.addEos ?? true) && eos !== null && !completion.endsWith(eos)) full += eos;
    return maskFrom(tok.encode(prompt), tok.encode(full));
  }
  if (typeof prompt === "string" || typeof completion === "string") {
    fail("encodePromptCompletion: prompt and completion must both be text or both be message lists");
  }
  const promptText = tok.applyChatTemplate(prompt, { addGenerationPrompt: true, tools: opts.tools });
  const fullText = tok.applyChatTemplate([...prompt, ...completion], { tools: opts.tools });
  return maskFrom(tok.encode(promptText, { addSpecialTokens: false }), tok.encode(fullText, { addSpecialTokens: false }));
}

export interface ChatIds {
  ids: number[];
  /** 1 on tokens of assistant turns (their content and closing tokens, not the role header), else 0. */
  assistantMask: number[];
}

/**
 * Encode a whole conversation as the chat template renders it. With `assistantOnly` (default true) the mask
 * covers each assistant turn: the tokens after `render(messages[:i], addGenerationPrompt)` up to
 * `render(messages[:i+1])`. Templates that rewrite earlier turns (so a shorter render is not a prefix of
 * the full one) are an error naming the turn.
 */
export function encodeChat(
  tok: Tokenizer,
  messages: readonly ChatMessage[],
  opts: { assistantOnly?: boolean; tools?: unknown[] } = {},
): ChatIds {
  const full = tok.applyChatTemplate(messages, { tools: opts.tools });
  const ids = tok.encode(full, { addSpecialTokens: false });
  const assistantMask = new Array<number>(ids.length).fill(opts.assistantOnly === false ? 1 : 0);
  if (opts.assistantOnly === false) return { ids, assistantMask };
  const prefixIds = (text: string, turn: number): number => {
    if (!full.startsWith(text)) {
      fail(`encodeChat: the chat template's rendering up to message ${turn} is not a prefix of the full conversation`);
    }
    const p = tok.encode(text, { addSpecialTokens: false });
    if (!isPrefix(p, ids)) {
      fail(`encodeChat: the tokens up to message ${turn} are not a prefix of the conversation's tokens (a token spans the boundary)`);
    }
    return p.length;
  };
  for (let i = 0; i < messages.length; i++) {
    if (messages[i].role !== "assistant") continue;
    const head = tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true, tools: opts.tools });
    const start = prefixIds(head, i);
    const end =
      i === messages.length - 1 ? ids.length : prefixIds(tok.applyChatTemplate(messages.slice(0, i + 1), { tools: opts.tools }), i + 1);
    for (let t = start; t < end; t++) assistantMask[t] = 1;
  }
  return { ids, assistantMask };
}
