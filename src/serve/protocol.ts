// The OpenAI-compatible request side of `nexus serve`: parse and validate /v1/completions and
// /v1/chat/completions bodies (plus the vLLM extensions we honour: top_k, min_p, stop_token_ids, ignore_eos,
// return_tokens_as_token_ids, prompt_logprobs, ...) into plain typed requests. Every 400 names its field.
// Unknown fields are ignored (clients send many); fields we cannot honour (echo, penalties) are errors.
// Not here: tokenization, generation, response shapes (engine.ts, server.ts).

import { describeValue } from "../io/describe.js";
import type { ChatMessage } from "../io/tokenizer.js";

/** An error answered as `{error: {message, type, param, code}}` with HTTP `status`. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After on a 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get type(): string {
    if (this.status === 404) return "NotFoundError";
    if (this.status === 401) return "AuthenticationError";
    if (this.status === 403) return "PermissionDeniedError";
    if (this.status === 429) return "RateLimitError";
    if (this.status === 503) return "ServiceUnavailableError";
    return this.status >= 500 ? "InternalServerError" : "BadRequestError";
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: number } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}

/** Sampling settings shared by a whole request (the batch key, with the adapter, minus n and seed). */
export interface SamplingRequest {
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = off (vLLM's -1 is mapped to 0). */
  topK: number;
  minP: number;
  stop: string[];
  /** Extra ids that end a row (vLLM), on top of the model's eos unless ignoreEos. */
  stopTokenIds: number[];
  ignoreEos: boolean;
  includeStopStrInOutput: boolean;
  skipSpecialTokens: boolean;
}

export interface CommonRequest {
  /** Served name or LoRA adapter name; null = the base model. */
  model: string | null;
  sampling: SamplingRequest;
  /** Completions per prompt. */
  n: number;
  /** null: the server draws one; a seed makes the request run as its own batch. */
  seed: number | null;
  /** vLLM: token strings in logprobs are "token_id:<id>". */
  returnTokensAsTokenIds: boolean;
  /** Answer as server-sent events (`stream: true`). */
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the usage and no choices. */
  includeUsage: boolean;
}

/** A prompt as text (tokenized by the server) or as token ids. */
export type PromptInput = string | number[];

export interface CompletionRequest extends CommonRequest {
  prompts: PromptInput[];
  /** Top-k logprobs per generated token (0..20), or null for none. */
  logprobs: number | null;
  /** vLLM: top-k logprobs of every prompt token, or null. */
  promptLogprobs: number | null;
  /** Tokenize text prompts with the tokenizer's special tokens (BOS), as vLLM. Default true. */
  addSpecialTokens: boolean;
}

export interface ChatRequest extends CommonRequest {
  messages: ChatMessage[];
  logprobs: boolean;
  topLogprobs: number;
  addGenerationPrompt: boolean;
  chatTemplateKwargs: Record<string, unknown>;
}

type Body = Record<string, unknown>;

const MAX_LOGPROBS = 20;

function bad(param: string, msg: string): never {
  throw new ApiError(400, `[serve] ${param}: ${msg}`, param);
}

const show = (v: unknown) => describeValue(v, 60);

function present(body: Body, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function num(body: Body, key: string, def: number, check: (v: number) => boolean, want: string): number {
  if (!present(body, key)) return def;
  const v = body[key];
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) bad(key, `must be ${want}, got ${show(v)}`);
  return v;
}

function int(body: Body, key: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  return num(body, key, def, (v) => Number.isInteger(v) && v >= min && v <= max, `an integer in [${min}, ${max}]`);
}

function bool(body: Body, key: string, def: boolean): boolean {
  if (!present(body, key)) return def;
  const v = body[key];
  if (typeof v !== "boolean") bad(key, `must be true or false, got ${show(v)}`);
  return v;
}

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number");
}

function checkIds(ids: number[], param: string, vocabSize: number): number[] {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) bad(param, `token id ${id} is outside [0, ${vocabSize})`);
  }
  return ids;
}

/** Reject options a client may expect to work but that this server does not implement. */
function rejectUnsupported(body: Body): void {
  for (const key of ["presence_penalty", "frequency_penalty"]) {
    if (present(body, key) && body[key] !== 0) bad(key, "is not supported (only 0)");
  }
  if (present(body, "repetition_penalty") && body.repetition_penalty !== 1) bad("repetition_penalty", "is not supported (only 1)");
  if (present(body, "logit_bias") && Object.keys(body.logit_bias as object).length > 0) bad("logit_bias", "is not supported");
  if (present(body, "use_beam_search") && body.use_beam_search !== false) bad("use_beam_search", "beam search is not supported");
}

/** `stream` and `stream_options` (OpenAI: options only with stream: true). */
function parseStream(body: Body): { stream: boolean; includeUsage: boolean } {
  const stream = bool(body, "stream", false);
  if (!present(body, "stream_options")) return { stream, includeUsage: false };
  const o = body.stream_options;
  if (!stream) bad("stream_options", "is only allowed with stream: true");
  if (typeof o !== "object" || Array.isArray(o)) bad("stream_options", `must be an object, got ${show(o)}`);
  const u = (o as Body).include_usage ?? false;
  if (typeof u !== "boolean") bad("stream_options.include_usage", `must be true or false, got ${show(u)}`);
  return { stream, includeUsage: u };
}

function parseCommon(body: Body, vocabSize: number, defaultMaxTokens: number | null): CommonRequest {
  rejectUnsupported(body);
  if (present(body, "model") && typeof body.model !== "string") bad("model", `must be a string, got ${show(body.model)}`);
  let stop: string[] = [];
  if (present(body, "stop")) {
    const s = body.stop;
    if (typeof s === "string") stop = [s];
    else if (Array.isArray(s) && s.every((x) => typeof x === "string")) stop = [...s];
    else bad("stop", `must be a string or a list of strings, got ${show(s)}`);
    if (stop.some((x) => x.length === 0)) bad("stop", "contains an empty string");
  }
  let stopTokenIds: number[] = [];
  if (present(body, "stop_token_ids")) {
    if (!Array.isArray(body.stop_token_ids)) bad("stop_token_ids", `must be a list of token ids, got ${show(body.stop_token_ids)}`);
    stopTokenIds = checkIds(body.stop_token_ids as number[], "stop_token_ids", vocabSize);
  }
  const maxKey = present(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const maxTokens = defaultMaxTokens === null && !present(body, maxKey) ? -1 : int(body, maxKey, defaultMaxTokens ?? 16, 0);
  let topK = int(body, "top_k", 0, -1);
  if (topK === -1) topK = 0;
  const n = int(body, "n", 1, 1, 128);
  if (present(body, "best_of") && body.best_of !== n) bad("best_of", `is not supported (must equal n = ${n})`);
  let seed: number | null = null;
  if (present(body, "seed")) seed = num(body, "seed", 0, Number.isSafeInteger, "a safe integer");
  return {
    model: (body.model as string | undefined) ?? null,
    n,
    seed,
    returnTokensAsTokenIds: bool(body, "return_tokens_as_token_ids", false),
    ...parseStream(body),
    sampling: {
      maxTokens,
      temperature: num(body, "temperature", 1, (v) => v >= 0, "a number >= 0"),
      topP: num(body, "top_p", 1, (v) => v > 0 && v <= 1, "a number in (0, 1]"),
      topK,
      minP: num(body, "min_p", 0, (v) => v >= 0 && v <= 1, "a number in [0, 1]"),
      stop,
      stopTokenIds,
      ignoreEos: bool(body, "ignore_eos", false),
      includeStopStrInOutput: bool(body, "include_stop_str_in_output", false),
      skipSpecialTokens: bool(body, "skip_special_tokens", true),
    },
  };
}

function asBody(raw: unknown): Body {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new ApiError(400, "[serve] the request body must be a JSON object");
  return raw as Body;
}

/** POST /v1/completions. `prompt`: a string, a list of strings, a list of ids, or a list of id lists. */
export function parseCompletionRequest(raw: unknown, vocabSize: number): CompletionRequest {
  const body = asBody(raw);
  if (!present(body, "prompt")) bad("prompt", "is required");
  const p = body.prompt;
  let prompts: PromptInput[];
  if (typeof p === "string") prompts = [p];
  else if (isIdList(p)) prompts = [checkIds(p, "prompt", vocabSize)];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === "string")) prompts = [...(p as string[])];
  else if (Array.isArray(p) && p.length > 0 && p.every(isIdList))
    prompts = (p as number[][]).map((ids, i) => checkIds(ids, `prompt[${i}]`, vocabSize));
  else bad("prompt", `must be a string, a list of strings, a list of token ids or a list of token id lists, got ${show(p)}`);
  if (prompts.some((x) => x.length === 0)) bad("prompt", "contains an empty prompt");
  if (present(body, "echo") && body.echo !== false) bad("echo", "echo is not supported (only false)");
  if (present(body, "suffix")) bad("suffix", "is not supported");
  let logprobs: number | null = null;
  if (present(body, "logprobs")) logprobs = int(body, "logprobs", 0, 0, MAX_LOGPROBS);
  let promptLogprobs: number | null = null;
  if (present(body, "prompt_logprobs")) promptLogprobs = int(body, "prompt_logprobs", 0, 0, MAX_LOGPROBS);
  return {
    ...parseCommon(body, vocabSize, 16),
    prompts,
    logprobs,
    promptLogprobs,
    addSpecialTokens: bool(body, "add_special_tokens", true),
  };
}

function messageContent(m: Body, i: number): string {
  const c = m.content;
  if (typeof c === "string") return c;
  if (c === null || c === undefined) return "";
  if (Array.isArray(c)) {
    return c
      .map((part, j) => {
        const pt = part as Body;
        if (pt?.type !== "text" || typeof pt.text !== "string") {
          bad(`messages[${i}].content[${j}]`, `only {type: "text", text} parts are supported, got ${show(part)}`);
        }
        return pt.text as string;
      })
      .join("");
  }
  return bad(`messages[${i}].content`, `must be a string or a list of text parts, got ${show(c)}`);
}

/** POST /v1/chat/completions: `messages` rendered with the tokenizer's chat template by the caller. */
export function parseChatRequest(raw: unknown, vocabSize: number): ChatRequest {
  const body = asBody(raw);
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    bad("messages", `must be a non-empty list of messages, got ${show(body.messages)}`);
  const messages = (body.messages as unknown[]).map((m, i): ChatMessage => {
    if (m === null || typeof m !== "object") bad(`messages[${i}]`, `must be an object, got ${show(m)}`);
    const mb = m as Body;
    if (typeof mb.role !== "string") bad(`messages[${i}].role`, `must be a string, got ${show(mb.role)}`);
    return { ...mb, role: mb.role as string, content: messageContent(mb, i) };
  });
  const logprobs = bool(body, "logprobs", false);
  const topLogprobs = int(body, "top_logprobs", 0, 0, MAX_LOGPROBS);
  if (topLogprobs > 0 && !logprobs) bad("top_logprobs", "needs logprobs: true");
  const kwargs = body.chat_template_kwargs ?? {};
  if (typeof kwargs !== "object" || Array.isArray(kwargs)) bad("chat_template_kwargs", `must be an object, got ${show(kwargs)}`);
  return {
    ...parseCommon(body, vocabSize, null),
    messages,
    logprobs,
    topLogprobs,
    addGenerationPrompt: bool(body, "add_generation_prompt", true),
    chatTemplateKwargs: kwargs as Record<string, unknown>,
  };
}

/** POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM bodies). Names: letters, digits, `._-`, up to 64. */
export function parseLoraRequest(raw: unknown, needPath: boolean): { name: string; path: string } {
  const body = asBody(raw);
  if (typeof body.lora_name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(body.lora_name))
    bad("lora_name", `must be 1-64 letters, digits, '.', '_' or '-' (not starting with a symbol), got ${show(body.lora_name)}`);
  if (needPath && (typeof body.lora_path !== "string" || body.lora_path.length === 0)) {
    bad("lora_path", `must be a non-empty string, got ${show(body.lora_path)}`);
  }
  return { name: body.lora_name as string, path: (body.lora_path as string | undefined) ?? "" };
}
