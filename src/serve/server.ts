// `nexus serve` over node:http: an OpenAI-compatible API for one Nexus/HF checkpoint — GET /v1/models,
// POST /v1/completions, POST /v1/chat/completions, vLLM-style LoRA hot loading (POST /v1/load_lora_adapter,
// /v1/unload_lora_adapter; requests pick an adapter with `model: <lora_name>`), GET /health. Every choice
// carries `token_ids` (and the response `prompt_token_ids`) so clients get exact ids. Log-probs are
// log_softmax(logits / T) like local `generate` (vLLM reports raw T = 1 ones unless logprobs-mode says otherwise).
// Not here: streaming, echo, embeddings, tool-call parsing, auth beyond one optional API key.

import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import type { Tokenizer } from "../io/tokenizer.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { type CausalLM, loadCausalLM } from "../models/causal_lm.js";
import { Engine, type RowResult, type TopEntry } from "./engine.js";
import {
  ApiError,
  type ChatRequest,
  type CommonRequest,
  type CompletionRequest,
  parseChatRequest,
  parseCompletionRequest,
  parseLoraRequest,
} from "./protocol.js";

export interface ServeOptions {
  /** A loaded model, or a checkpoint folder to load. */
  model: CausalLM | string;
  /** A tokenizer, or its folder. Default: the model folder. */
  tokenizer?: Tokenizer | string;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. Default 8000. */
  port?: number;
  /** The `model` id clients send. Default: the model folder as given, else "nexus". */
  servedModelName?: string;
  /** LoRA adapters to load at start: name → PEFT folder. */
  loras?: Record<string, string>;
  /** Rows generated in one batch at most. Default 64. */
  maxBatch?: number;
  /** Require `Authorization: Bearer <apiKey>` on /v1/*. */
  apiKey?: string;
  /** Seed of the stream unseeded requests draw from (default random). */
  seed?: number;
  /** How long an idle server waits for more requests to batch with. Default 5 ms. */
  batchWindowMs?: number;
  /** Largest request body in bytes. Default 32 MiB. */
  maxBodyBytes?: number;
  /** Log lines (one per request); default none. */
  log?: (line: string) => void;
}

export interface ServerHandle {
  /** e.g. http://127.0.0.1:8000 (no trailing slash, no /v1). */
  url: string;
  port: number;
  engine: Engine;
  servedModelName: string;
  /** Stop accepting, finish queued work, close every connection. */
  close(): Promise<void>;
}

const tokenIdString = (id: number) => `token_id:${id}`;

class Api {
  readonly created = Math.floor(Date.now() / 1000);
  private counter = 0;

  constructor(
    readonly engine: Engine,
    readonly tokenizer: Tokenizer,
    readonly name: string,
  ) {}

  private id(prefix: string): string {
    return `${prefix}-${this.created.toString(36)}${(this.counter++).toString(36)}`;
  }

  /** The adapter a request names (null: base); 404 for an unknown model. */
  private adapterOf(req: CommonRequest): string | null {
    if (req.model === null || req.model === this.name) return null;
    if (this.engine.hasAdapter(req.model)) return req.model;
    throw new ApiError(
      404,
      `[serve] model "${req.model}" does not exist (served: ${[this.name, ...this.engine.adapterNames()].join(", ")})`,
      "model",
    );
  }

  private checkLength(promptLen: number, maxTokens: number): void {
    const limit = this.engine.model.config.maxPositionEmbeddings;
    if (promptLen + maxTokens > limit) {
      throw new ApiError(
        400,
        `[serve] max_tokens: prompt (${promptLen} tokens) + max_tokens (${maxTokens}) exceeds the model's ${limit} positions`,
        "max_tokens",
      );
    }
  }

  private tokenText(id: number): string {
    return this.tokenizer.decode([id], { skipSpecialTokens: false });
  }

  models(): unknown {
    const card = (id: string, parent: string | null) => ({
      id,
      object: "model",
      created: this.created,
      owned_by: "nexus",
      root: id,
      parent,
      max_model_len: this.engine.model.config.maxPositionEmbeddings,
    });
    return { object: "list", data: [card(this.name, null), ...this.engine.adapterNames().map((a) => card(a, this.name))] };
  }

  private finish(r: RowResult, req: CommonRequest): { finish_reason: string; stop_reason: string | number | null } {
    const g = r.gen;
    if (g.finishReason === "length") return { finish_reason: "length", stop_reason: null };
    if (g.finishReason === "eos") {
      const last = g.completionIds[g.completionIds.length - 1];
      return { finish_reason: "stop", stop_reason: req.sampling.stopTokenIds.includes(last) ? last : null };
    }
    // which stop string ended it: the earliest one in the decoded completion (generate's rule)
    const text = this.tokenizer.decode(g.completionIds, { skipSpecialTokens: req.sampling.skipSpecialTokens });
    let best: string | null = null;
    let at = -1;
    for (const s of req.sampling.stop) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) [best, at] = [s, i];
    }
    return { finish_reason: "stop", stop_reason: best };
  }

  async completions(raw: unknown): Promise<unknown> {
    const req: CompletionRequest = parseCompletionRequest(raw, this.engine.model.config.vocabSize);
    const adapter = this.adapterOf(req);
    const prompts = req.prompts.map((p) =>
      typeof p === "string" ? this.tokenizer.encode(p, { addSpecialTokens: req.addSpecialTokens }) : p,
    );
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new ApiError(400, `[serve] prompt[${i}] tokenizes to no tokens`, "prompt");
      this.checkLength(p.length, req.sampling.maxTokens);
    });
    const rows = prompts.flatMap((p) => Array.from({ length: req.n }, () => p));
    const results = await this.engine.submit({
      rows,
      sampling: req.sampling,
      adapter,
      seed: req.seed,
      topLogprobs: req.logprobs ?? 0,
      promptLogprobs: req.promptLogprobs,
    });
    const tokStr = (id: number) => (req.returnTokensAsTokenIds ? tokenIdString(id) : this.tokenText(id));
    const choices = results.map((r, index) => {
      const g = r.gen;
      let logprobs: unknown = null;
      if (req.logprobs !== null) {
        let offset = 0;
        const textOffset = g.completionIds.map((id) => {
          const o = offset;
          offset += this.tokenText(id).length;
          return o;
        });
        logprobs = {
          tokens: g.completionIds.map(tokStr),
          token_logprobs: g.logprobs.map(clampLogprob),
          top_logprobs: g.completionIds.map((id, t) => topDict(id, g.logprobs[t], r.top[t] ?? [], tokStr)),
          text_offset: textOffset,
        };
      }
      const promptLogprobs =
        r.promptLogprobs === null
          ? undefined
          : r.promptLogprobs.map((e) => {
              if (e === null) return null;
              const d: Record<string, unknown> = {};
              e.top.forEach((t, i) => {
                d[String(t.id)] = { logprob: t.logprob, rank: i + 1, decoded_token: tokStr(t.id) };
              });
              d[String(e.id)] = { logprob: e.logprob, rank: e.rank, decoded_token: tokStr(e.id) };
              return d;
            });
      return {
        index,
        text: g.text ?? "",
        logprobs,
        ...this.finish(r, req),
        token_ids: g.completionIds,
        prompt_token_ids: g.promptIds,
        ...(promptLogprobs === undefined ? {} : { prompt_logprobs: promptLogprobs }),
      };
    });
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
    const completionTokens = results.reduce((a, r) => a + r.gen.completionIds.length, 0);
    return {
      id: this.id("cmpl"),
      object: "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: req.model ?? this.name,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
  }

  async chat(raw: unknown): Promise<unknown> {
    const req: ChatRequest = parseChatRequest(raw, this.engine.model.config.vocabSize);
    const adapter = this.adapterOf(req);
    if (this.tokenizer.chatTemplate === null)
      throw new ApiError(400, "[serve] messages: the tokenizer has no chat_template; use /v1/completions", "messages");
    const text = this.tokenizer.applyChatTemplate(req.messages, {
      addGenerationPrompt: req.addGenerationPrompt,
      extra: req.chatTemplateKwargs,
    });
    const prompt = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (prompt.length === 0) throw new ApiError(400, "[serve] messages: the chat template rendered no tokens", "messages");
    const limit = this.engine.model.config.maxPositionEmbeddings;
    const sampling = {
      ...req.sampling,
      maxTokens: req.sampling.maxTokens < 0 ? Math.max(0, limit - prompt.length) : req.sampling.maxTokens,
    };
    this.checkLength(prompt.length, sampling.maxTokens);
    const results = await this.engine.submit({
      rows: Array.from({ length: req.n }, () => prompt),
      sampling,
      adapter,
      seed: req.seed,
      topLogprobs: req.logprobs ? req.topLogprobs : 0,
      promptLogprobs: null,
    });
    const tokStr = (id: number) => (req.returnTokensAsTokenIds ? tokenIdString(id) : this.tokenText(id));
    const entry = (id: number, logprob: number) => {
      const token = tokStr(id);
      return { token, logprob: clampLogprob(logprob), bytes: [...Buffer.from(token, "utf8")] };
    };
    const choices = results.map((r, index) => ({
      index,
      message: { role: "assistant", content: r.gen.text ?? "" },
      logprobs: req.logprobs
        ? {
            content: r.gen.completionIds.map((id, t) => ({
              ...entry(id, r.gen.logprobs[t]),
              top_logprobs: (r.top[t] ?? []).slice(0, req.topLogprobs).map((e) => entry(e.id, e.logprob)),
            })),
          }
        : null,
      ...this.finish(r, { ...req, sampling }),
      token_ids: r.gen.completionIds,
    }));
    const completionTokens = results.reduce((a, r) => a + r.gen.completionIds.length, 0);
    return {
      id: this.id("chatcmpl"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: req.model ?? this.name,
      choices,
      prompt_token_ids: prompt,
      usage: { prompt_tokens: prompt.length, completion_tokens: completionTokens, total_tokens: prompt.length + completionTokens },
    };
  }
}

function clampLogprob(x: number): number {
  return Number.isFinite(x) ? x : -9999;
}

/** OpenAI completions `top_logprobs[t]`: token → logprob for the top-k plus the chosen token (as vLLM). */
function topDict(id: number, logprob: number, top: TopEntry[], tokStr: (id: number) => string): Record<string, number> {
  const d: Record<string, number> = {};
  for (const e of top) d[tokStr(e.id)] = e.logprob;
  d[tokStr(id)] = clampLogprob(logprob);
  return d;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new ApiError(413, `[serve] request body is over ${limit} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(text.length === 0 ? {} : JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `[serve] the request body is not valid JSON (${(e as Error).message})`));
      }
    });
    req.on("error", reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Load the model and tokenizer (when given as folders) and listen. */
export async function startServer(opts: ServeOptions): Promise<ServerHandle> {
  const model = typeof opts.model === "string" ? await loadCausalLM(opts.model) : opts.model;
  const tokDir = opts.tokenizer ?? (typeof opts.model === "string" ? opts.model : undefined);
  if (tokDir === undefined) throw new ApiError(500, "[serve] a tokenizer is required when the model is passed as an object");
  const tokenizer = typeof tokDir === "string" ? loadTokenizer(tokDir) : tokDir;
  const name = opts.servedModelName ?? (typeof opts.model === "string" ? opts.model : "nexus");
  const engine = new Engine(model, tokenizer, { maxBatch: opts.maxBatch, seed: opts.seed, batchWindowMs: opts.batchWindowMs });
  for (const [loraName, dir] of Object.entries(opts.loras ?? {})) engine.loadAdapter(loraName, path.resolve(dir));
  const api = new Api(engine, tokenizer, name);
  const limit = opts.maxBodyBytes ?? 32 * 2 ** 20;
  const log = opts.log ?? (() => {});

  const routes: Record<string, (body: unknown) => Promise<unknown> | unknown> = {
    "GET /v1/models": () => api.models(),
    "GET /health": () => "",
    "POST /v1/completions": (b) => api.completions(b),
    "POST /v1/chat/completions": (b) => api.chat(b),
    "POST /v1/load_lora_adapter": (b) => {
      const { name: n, path: p } = parseLoraRequest(b, true);
      engine.loadAdapter(n, p);
      return `Success: LoRA adapter '${n}' added successfully.`;
    },
    "POST /v1/unload_lora_adapter": (b) => {
      const { name: n } = parseLoraRequest(b, false);
      engine.unloadAdapter(n);
      return `Success: LoRA adapter '${n}' removed successfully.`;
    },
  };

  const server = http.createServer(async (req, res) => {
    const t0 = Date.now();
    const route = `${req.method} ${(req.url ?? "/").split("?")[0].replace(/\/+$/, "")}`;
    let status = 200;
    try {
      const handler = routes[route];
      if (handler === undefined) {
        const known = Object.keys(routes).some((r) => r.split(" ")[1] === route.split(" ")[1]);
        throw new ApiError(known ? 405 : 404, `[serve] ${known ? "method not allowed" : "no such route"}: ${route}`);
      }
      if (opts.apiKey !== undefined && route.includes(" /v1/") && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
        throw new ApiError(401, "[serve] missing or wrong API key (Authorization: Bearer ...)");
      }
      const body = req.method === "POST" ? await readBody(req, limit) : undefined;
      send(res, 200, await handler(body));
    } catch (e) {
      const err =
        e instanceof ApiError
          ? e
          : new ApiError(e instanceof Error && /^\[(generate|sampling|tokenizer)\]/.test(e.message) ? 400 : 500, (e as Error).message);
      status = err.status;
      if (!res.headersSent) send(res, err.status, err.toJSON());
    }
    log(`${route} ${status} ${Date.now() - t0}ms`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8000, opts.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    engine,
    servedModelName: name,
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((r) => server.close(() => r()));
        await engine.drain();
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
        await done;
      })();
      return closing;
    },
  };
}
