// `nexus serve` over node:http: an OpenAI-compatible API for one Nexus/HF checkpoint — GET /v1/models,
// POST /v1/completions, POST /v1/chat/completions, vLLM-style LoRA hot loading (POST /v1/load_lora_adapter,
// /v1/unload_lora_adapter; requests pick an adapter with `model: <lora_name>`), GET /health. Every choice
// carries `token_ids` (and the response `prompt_token_ids`) so clients get exact ids. Log-probs are
// log_softmax(logits / T) like local `generate` (vLLM reports raw T = 1 ones unless logprobs-mode says otherwise).
// Before any work a request passes guard.ts: loopback-only unless --api-key (Bearer, constant time), body and
// prompt sizes (characters counted before tokenizing), rows and tokens per request, and a bounded queue (then
// 429 + Retry-After). Adapters load only from inside --adapter-root. A client that disconnects cancels its
// generation; close() (SIGTERM) answers new requests 503 and finishes the admitted ones.
// Not here: streaming, echo, embeddings, tool-call parsing, auth beyond one optional API key.

import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { describeValue } from "../io/describe.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { type CausalLM, loadCausalLM } from "../models/causal_lm.js";
import { AdapterRoot } from "./adapter_root.js";
import { Engine, type RowResult, type TopEntry } from "./engine.js";
import { Admission, bearerCheck, checkBindAddress, defaultLimits, resolveLimits, type ServeLimits } from "./guard.js";
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
  /** Require `Authorization: Bearer <apiKey>` on /v1/*. Needed to bind a non-loopback host. */
  apiKey?: string;
  /** Folder /v1/load_lora_adapter may load adapters from (paths relative to it); absent: runtime loading is off. */
  adapterRoot?: string;
  /** Request and queue limits (guard.ts; defaults from the model's positions and maxBatch). */
  limits?: Partial<ServeLimits>;
  /** Seed of the stream unseeded requests draw from (default random). */
  seed?: number;
  /** How long an idle server waits for more requests to batch with. Default 5 ms. */
  batchWindowMs?: number;
  /** Largest request body in bytes (same as limits.maxBodyBytes). Default 4 MiB. */
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
  /** The limits in force. */
  limits: ServeLimits;
  /** Generation requests admitted now (running or queued). */
  inflight(): number;
  /** Stop accepting (new requests get 503), finish admitted work, close every connection. */
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
    readonly limits: ServeLimits,
  ) {}

  /** Rows x max_tokens within maxRequestTokens, rows within maxRowsPerRequest (before any work). */
  private checkRequestSize(rows: number, maxTokens: number, rowsParam: string): void {
    const l = this.limits;
    if (rows > l.maxRowsPerRequest) {
      throw new ApiError(
        400,
        `[serve] ${rowsParam}: ${rows} rows (prompts x n) in one request; the limit is ${l.maxRowsPerRequest}`,
        rowsParam,
      );
    }
    if (rows * maxTokens > l.maxRequestTokens) {
      throw new ApiError(
        400,
        `[serve] max_tokens: ${rows} rows x ${maxTokens} tokens = ${rows * maxTokens} generated tokens in one request; the limit is ${l.maxRequestTokens}`,
        "max_tokens",
      );
    }
  }

  /** A text within maxPromptChars, checked before it is tokenized. */
  private checkChars(text: string, param: string): void {
    if (text.length > this.limits.maxPromptChars) {
      throw new ApiError(
        400,
        `[serve] ${param}: ${text.length} characters; the limit is ${this.limits.maxPromptChars} (checked before tokenizing)`,
        param,
      );
    }
  }

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

  async completions(raw: unknown, signal?: AbortSignal): Promise<unknown> {
    const req: CompletionRequest = parseCompletionRequest(raw, this.engine.model.config.vocabSize);
    const adapter = this.adapterOf(req);
    this.checkRequestSize(req.prompts.length * req.n, req.sampling.maxTokens, req.n > 1 ? "n" : "prompt");
    req.prompts.forEach((p, i) => {
      if (typeof p === "string") this.checkChars(p, req.prompts.length > 1 ? `prompt[${i}]` : "prompt");
      else if (p.length > this.engine.model.config.maxPositionEmbeddings) this.checkLength(p.length, req.sampling.maxTokens);
    });
    const prompts = req.prompts.map((p) =>
      typeof p === "string" ? this.tokenizer.encode(p, { addSpecialTokens: req.addSpecialTokens }) : p,
    );
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new ApiError(400, `[serve] prompt[${i}] tokenizes to no tokens`, "prompt");
      this.checkLength(p.length, req.sampling.maxTokens);
    });
    const rows = prompts.flatMap((p) => Array.from({ length: req.n }, () => p));
    const results = await this.engine.submit(
      {
        rows,
        sampling: req.sampling,
        adapter,
        seed: req.seed,
        topLogprobs: req.logprobs ?? 0,
        promptLogprobs: req.promptLogprobs,
      },
      { signal },
    );
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

  async chat(raw: unknown, signal?: AbortSignal): Promise<unknown> {
    const req: ChatRequest = parseChatRequest(raw, this.engine.model.config.vocabSize);
    const adapter = this.adapterOf(req);
    if (this.tokenizer.chatTemplate === null)
      throw new ApiError(400, "[serve] messages: the tokenizer has no chat_template; use /v1/completions", "messages");
    const limit = this.engine.model.config.maxPositionEmbeddings;
    this.checkRequestSize(req.n, req.sampling.maxTokens < 0 ? limit : req.sampling.maxTokens, "n");
    this.checkChars(req.messages.map((m) => m.content).join(""), "messages");
    const text = this.tokenizer.applyChatTemplate(req.messages, {
      addGenerationPrompt: req.addGenerationPrompt,
      extra: req.chatTemplateKwargs,
    });
    this.checkChars(text, "messages");
    const prompt = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (prompt.length === 0) throw new ApiError(400, "[serve] messages: the chat template rendered no tokens", "messages");
    const sampling = {
      ...req.sampling,
      maxTokens: req.sampling.maxTokens < 0 ? Math.max(0, limit - prompt.length) : req.sampling.maxTokens,
    };
    this.checkLength(prompt.length, sampling.maxTokens);
    const results = await this.engine.submit(
      {
        rows: Array.from({ length: req.n }, () => prompt),
        sampling,
        adapter,
        seed: req.seed,
        topLogprobs: req.logprobs ? req.topLogprobs : 0,
        promptLogprobs: null,
      },
      { signal },
    );
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
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      reject(new ApiError(413, `[serve] request body of ${declared} bytes is over the ${limit}-byte limit`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (over) return;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new ApiError(413, `[serve] request body is over the ${limit}-byte limit`));
      } else chunks.push(c);
    });
    req.on("end", () => {
      if (over) return;
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        reject(new ApiError(400, "[serve] the request body is not valid UTF-8"));
        return;
      }
      try {
        resolve(text.length === 0 ? {} : JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `[serve] the request body is not valid JSON (${(e as Error).message.slice(0, 200)})`));
      }
    });
    req.on("error", reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** The client closed its connection before the answer: its generation was cancelled, nobody to answer. */
class ClientGone extends Error {}

/** Load the model and tokenizer (when given as folders) and listen. */
export async function startServer(opts: ServeOptions): Promise<ServerHandle> {
  const host = opts.host ?? "127.0.0.1";
  await checkBindAddress(host, opts.apiKey); // before loading anything
  const adapterRoot = opts.adapterRoot === undefined ? null : new AdapterRoot(opts.adapterRoot);
  const model = typeof opts.model === "string" ? await loadCausalLM(opts.model) : opts.model;
  const tokDir = opts.tokenizer ?? (typeof opts.model === "string" ? opts.model : undefined);
  if (tokDir === undefined) throw new ApiError(500, "[serve] a tokenizer is required when the model is passed as an object");
  const tokenizer = typeof tokDir === "string" ? loadTokenizer(tokDir) : tokDir;
  const name = opts.servedModelName ?? (typeof opts.model === "string" ? opts.model : "nexus");
  const maxBatch = opts.maxBatch ?? 64;
  const limits = resolveLimits(defaultLimits(model.config.maxPositionEmbeddings, maxBatch), {
    maxBodyBytes: opts.maxBodyBytes,
    ...opts.limits,
  });
  const engine = new Engine(model, tokenizer, { maxBatch, seed: opts.seed, batchWindowMs: opts.batchWindowMs });
  const startLoras = Object.entries(opts.loras ?? {});
  if (startLoras.length > limits.maxLoras)
    throw new ApiError(500, `[serve] ${startLoras.length} --lora adapters; the limit is ${limits.maxLoras}`);
  for (const [loraName, dir] of startLoras) await engine.loadAdapter(loraName, path.resolve(dir));
  const api = new Api(engine, tokenizer, name, limits);
  const admission = new Admission(limits.maxQueuedRequests);
  const authorized = opts.apiKey === undefined ? () => true : bearerCheck(opts.apiKey);
  const log = opts.log ?? (() => {});
  let closing: Promise<void> | null = null;

  /** A generation route: admitted (or 429) before its body is read, cancelled when its client goes away. */
  const generation =
    (fn: (body: unknown, signal: AbortSignal) => Promise<unknown>) =>
    async (req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> => {
      const release = admission.admit();
      const abort = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) abort.abort();
        release();
      });
      try {
        return await fn(await readBody(req, limits.maxBodyBytes), abort.signal);
      } catch (e) {
        throw abort.signal.aborted ? new ClientGone() : e;
      }
    };
  type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<unknown> | unknown;
  const body =
    (fn: (b: unknown) => Promise<unknown> | unknown): Handler =>
    async (req) =>
      fn(await readBody(req, limits.maxBodyBytes));

  const routes: Record<string, Handler> = {
    "GET /v1/models": () => api.models(),
    "GET /health": () => "",
    "POST /v1/completions": generation((b, signal) => api.completions(b, signal)),
    "POST /v1/chat/completions": generation((b, signal) => api.chat(b, signal)),
    "POST /v1/load_lora_adapter": body(async (b) => {
      const { name: n, path: p } = parseLoraRequest(b, true);
      if (adapterRoot === null) {
        throw new ApiError(403, "[serve] loading adapters at run time is off: start nexus serve with --adapter-root DIR", "lora_path");
      }
      if (n === name) throw new ApiError(400, `[serve] lora_name "${n}" is the served model's name`, "lora_name");
      const dir = adapterRoot.resolve(p);
      if (engine.adapterNames().length >= limits.maxLoras && !engine.hasAdapter(n)) {
        throw new ApiError(400, `[serve] ${limits.maxLoras} LoRA adapters are loaded (the limit); unload one first`, "lora_name");
      }
      try {
        await engine.loadAdapter(n, dir);
      } catch (e) {
        // loader messages name files under the root: show them relative to it, never the server's own paths
        if (e instanceof ApiError) throw new ApiError(e.status, adapterRoot.redact(e.message), e.param);
        throw e;
      }
      return `Success: LoRA adapter '${n}' added successfully.`;
    }),
    "POST /v1/unload_lora_adapter": body(async (b) => {
      const { name: n } = parseLoraRequest(b, false);
      await engine.unloadAdapter(n);
      return `Success: LoRA adapter '${n}' removed successfully.`;
    }),
  };

  const server = http.createServer(async (req, res) => {
    const t0 = Date.now();
    const route = `${req.method} ${(req.url ?? "/").split("?")[0].replace(/\/+$/, "")}`;
    let status = 200;
    try {
      const handler = routes[route];
      if (handler === undefined) {
        const known = Object.keys(routes).some((r) => r.split(" ")[1] === route.split(" ")[1]);
        throw new ApiError(known ? 405 : 404, `[serve] ${known ? "method not allowed" : "no such route"}: ${describeValue(route, 100)}`);
      }
      if (route !== "GET /health" && !authorized(req.headers.authorization)) {
        throw new ApiError(401, "[serve] missing or wrong API key (Authorization: Bearer ...)");
      }
      if (closing !== null && route !== "GET /health") throw new ApiError(503, "[serve] shutting down", null, { connection: "close" });
      send(res, 200, await handler(req, res));
    } catch (e) {
      if (e instanceof ClientGone) {
        status = 499; // the client went away: nobody to answer
        res.destroy();
      } else {
        const err =
          e instanceof ApiError
            ? e
            : new ApiError(
                e instanceof Error && /^\[(generate|sampling|tokenizer)\]/.test(e.message) ? 400 : 500,
                (e as Error).message.slice(0, 1000),
              );
        status = err.status;
        if (!res.headersSent && !res.destroyed) send(res, err.status, err.toJSON(), err.headers);
      }
    }
    log(`${route.slice(0, 100)} ${status} ${Date.now() - t0}ms`);
  });
  // malformed HTTP (a bad chunk, an oversized header) is answered by Node itself: 400 / 431, then the socket closes

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8000, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    engine,
    servedModelName: name,
    limits,
    inflight: () => admission.current,
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await engine.drain();
        // admitted requests write their responses once the engine is idle; give them a moment, then close
        const deadline = Date.now() + 5000;
        while (admission.current > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
        await done;
      })();
      return closing;
    },
  };
}
