// Remote generation through any OpenAI-compatible /v1/completions endpoint (vLLM, SGLang, `nexus serve`),
// returning what local `generate` returns ({promptIds, completionIds, logprobs, finishReason, text}), and
// `makeGenerator`, one async signature for local and remote rollouts (trainers' --generator-url).
// Prompts go as token ids; exact ids come back from the `token_ids` field (nexus serve, vLLM return_token_ids)
// or from vLLM's "token_id:<id>" logprob tokens; re-tokenizing the text is a last resort that warns.
// Not here: streaming, chat requests, weight sync (besides LoRA adapter load/unload), load balancing.

import type { Tokenizer } from "../io/tokenizer.js";
import type { FinishReason, GenerateOptions, Generation, GenerativeLM } from "./generate.js";
import { generate } from "./generate.js";

export class RemoteGenerateError extends Error {
  override name = "RemoteGenerateError";
}

export interface RemoteGeneratorOptions {
  /** Server root, with or without /v1 (e.g. http://127.0.0.1:8000). */
  url: string;
  /** The `model` to request (a served name or a LoRA adapter name). Default: the first of GET /v1/models. */
  model?: string;
  apiKey?: string;
  /** Per-request time limit. Default 600 s. */
  timeoutMs?: number;
  /** Retries after connection errors and 429 / 502 / 503 / 504 answers. Default 3. */
  maxRetries?: number;
  /** First backoff delay, doubled per retry. Default 500 ms. */
  retryDelayMs?: number;
  /** Used only when the server returns no token ids: the completion text is re-tokenized. */
  tokenizer?: Pick<Tokenizer, "encode">;
  /** Where warnings go. Default: stderr. */
  warn?: (msg: string) => void;
  /** Extra fields merged into every request body (server-specific options). */
  extraBody?: Record<string, unknown>;
}

/** Local GenerateOptions minus what cannot cross the wire; `model` picks a served name / adapter per call. */
export type RemoteGenerateOptions = Omit<GenerateOptions, "tokenizer" | "padTokenId"> & { model?: string };

interface CompletionChoice {
  index: number;
  text?: string;
  finish_reason?: string | null;
  stop_reason?: string | number | null;
  token_ids?: number[] | null;
  logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[] } | null;
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection-level failure (refused, reset, DNS) that is worth retrying. */
function isConnectionError(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (e as { code?: string }).code;
  return (
    e instanceof TypeError ||
    (typeof code === "string" && ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_SOCKET"].includes(code))
  );
}

export class RemoteGenerator {
  readonly baseUrl: string;
  private model: string | undefined;
  private warnedRetokenize = false;

  constructor(readonly opts: RemoteGeneratorOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new RemoteGenerateError(`[remote] ${opts.url} is not a URL`);
    }
    this.baseUrl = u.toString().replace(/\/+$/, "").replace(/\/v1$/, "");
    this.model = opts.model;
  }

  /** One HTTP call with bounded retries; errors name the URL. */
  async request(method: "GET" | "POST", route: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl}${route}`;
    const retries = this.opts.maxRetries ?? 3;
    const timeout = this.opts.timeoutMs ?? 600_000;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.opts.apiKey !== undefined) headers.authorization = `Bearer ${this.opts.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeout),
        });
        text = await res.text();
      } catch (e) {
        const err = e as Error;
        if (err.name === "TimeoutError" || err.name === "AbortError")
          throw new RemoteGenerateError(`[remote] ${method} ${url} timed out after ${timeout} ms`);
        if (isConnectionError(e) && attempt < retries) {
          await sleep((this.opts.retryDelayMs ?? 500) * 2 ** attempt);
          continue;
        }
        const why = (err as { cause?: Error }).cause?.message ?? err.message;
        throw new RemoteGenerateError(`[remote] ${method} ${url} failed after ${attempt + 1} attempt(s): ${why}`);
      }
      if (RETRY_STATUS.has(res.status) && attempt < retries) {
        await sleep((this.opts.retryDelayMs ?? 500) * 2 ** attempt);
        continue;
      }
      if (!res.ok) {
        let msg = text;
        try {
          msg = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
        } catch {}
        throw new RemoteGenerateError(`[remote] ${method} ${url} answered ${res.status}: ${msg.slice(0, 500)}`);
      }
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
  }

  /** Ids of the served models (base first on vLLM and nexus serve, then LoRA adapters). */
  async models(): Promise<string[]> {
    const r = (await this.request("GET", "/v1/models")) as { data?: { id: string }[] };
    if (!Array.isArray(r.data)) throw new RemoteGenerateError(`[remote] ${this.baseUrl}/v1/models: no "data" list in the answer`);
    return r.data.map((m) => m.id);
  }

  private async modelName(): Promise<string> {
    if (this.model === undefined) {
      const ids = await this.models();
      if (ids.length === 0) throw new RemoteGenerateError(`[remote] ${this.baseUrl}/v1/models lists no model`);
      this.model = ids[0];
    }
    return this.model;
  }

  /** vLLM-style LoRA hot loading (the server must allow it, e.g. VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). */
  async loadLoraAdapter(name: string, dir: string): Promise<void> {
    await this.request("POST", "/v1/load_lora_adapter", { lora_name: name, lora_path: dir });
  }

  async unloadLoraAdapter(name: string): Promise<void> {
    await this.request("POST", "/v1/unload_lora_adapter", { lora_name: name });
  }

  /**
   * One completion per prompt, in order, as one request (so a seeded request on `nexus serve` gives exactly
   * the local `generate(model, prompts, {seed})` rows). An `rng` without a `seed` draws the seed from it.
   */
  async generate(prompts: readonly (readonly number[])[], opts: RemoteGenerateOptions): Promise<Generation[]> {
    if (prompts.length === 0) return [];
    const seed = opts.seed ?? (opts.rng !== undefined ? Math.floor(opts.rng.next() * 2 ** 31) : undefined);
    const greedy = opts.doSample === false || opts.temperature === 0;
    const body: Record<string, unknown> = {
      model: opts.model ?? (await this.modelName()),
      prompt: prompts.map((p) => [...p]),
      max_tokens: opts.maxNewTokens,
      temperature: greedy ? 0 : (opts.temperature ?? 1),
      top_p: opts.topP ?? 1,
      top_k: (opts.topK ?? 0) > 0 ? opts.topK : -1, // -1: off for every vLLM / SGLang version
      min_p: opts.minP ?? 0,
      n: 1,
      logprobs: 1,
      return_tokens_as_token_ids: true,
      return_token_ids: true, // vLLM >= 0.10.2: token_ids on each choice
      skip_special_tokens: opts.skipSpecialTokens ?? true,
      include_stop_str_in_output: opts.includeStopStrInOutput ?? false,
      ...(seed === undefined ? {} : { seed }),
      ...((opts.stop?.length ?? 0) > 0 ? { stop: [...(opts.stop ?? [])] } : {}),
      ...this.eosFields(opts.eosTokenId),
      ...(this.opts.extraBody ?? {}),
    };
    const r = (await this.request("POST", "/v1/completions", body)) as { choices?: CompletionChoice[] };
    const where = `${this.baseUrl}/v1/completions`;
    if (!Array.isArray(r.choices) || r.choices.length !== prompts.length) {
      throw new RemoteGenerateError(
        `[remote] ${where}: expected ${prompts.length} choices, got ${Array.isArray(r.choices) ? r.choices.length : "none"}`,
      );
    }
    const byIndex = [...r.choices].sort((a, b) => a.index - b.index);
    return byIndex.map((c, i) => this.toGeneration(c, [...prompts[i]], where));
  }

  /** Local eosTokenId → vLLM stop_token_ids / ignore_eos (undefined keeps the server model's eos). */
  private eosFields(eos: GenerateOptions["eosTokenId"]): Record<string, unknown> {
    if (eos === undefined) return {};
    if (eos === null) return { ignore_eos: true };
    return { ignore_eos: true, stop_token_ids: typeof eos === "number" ? [eos] : [...eos] };
  }

  private toGeneration(c: CompletionChoice, promptIds: number[], where: string): Generation {
    const text = c.text ?? "";
    let ids: number[] | null = Array.isArray(c.token_ids) ? c.token_ids : null;
    const toks = c.logprobs?.tokens;
    if (ids === null && Array.isArray(toks) && toks.every((t) => t.startsWith("token_id:"))) ids = toks.map((t) => Number(t.slice(9)));
    if (ids === null) {
      if (this.opts.tokenizer === undefined) {
        throw new RemoteGenerateError(
          `[remote] ${where}: the answer has no token ids (token_ids / "token_id:" logprobs); pass a tokenizer to re-tokenize`,
        );
      }
      if (!this.warnedRetokenize) {
        (this.opts.warn ?? ((m) => process.stderr.write(`${m}\n`)))(
          `[remote] ${where} returns no token ids; re-tokenizing text (ids and logprobs may not align)`,
        );
        this.warnedRetokenize = true;
      }
      ids = this.opts.tokenizer.encode(text, { addSpecialTokens: false });
    }
    const lps = (c.logprobs?.token_logprobs ?? []).map((x) => x ?? Number.NaN);
    if (lps.length !== ids.length) {
      throw new RemoteGenerateError(`[remote] ${where}: choice ${c.index} has ${ids.length} token ids but ${lps.length} logprobs`);
    }
    let finishReason: FinishReason;
    if (c.finish_reason === "length") finishReason = "length";
    else if (c.finish_reason === "stop") finishReason = typeof c.stop_reason === "string" ? "stop" : "eos";
    else throw new RemoteGenerateError(`[remote] ${where}: choice ${c.index} has finish_reason ${JSON.stringify(c.finish_reason)}`);
    return { promptIds, completionIds: ids, logprobs: lps, finishReason, text };
  }
}

/** (prompt ids, options) → generations: what a trainer calls for rollouts, local or remote alike. */
export type GeneratorFn = (prompts: readonly (readonly number[])[], opts: GenerateOptions) => Promise<Generation[]>;

/** `{model}`: local `generate`; `{url, ...}`: a RemoteGenerator (options that cannot cross the wire are dropped). */
export function makeGenerator(src: { model: GenerativeLM } | RemoteGeneratorOptions): GeneratorFn {
  if ("model" in src && typeof src.model === "object") {
    const model = src.model;
    return async (prompts, opts) => generate(model, prompts, opts);
  }
  const remote = new RemoteGenerator(src as RemoteGeneratorOptions);
  return (prompts, opts) => {
    const { tokenizer: _t, padTokenId: _p, ...wire } = opts;
    return remote.generate(prompts, wire);
  };
}
