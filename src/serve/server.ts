// `nexus serve` over node:http: an OpenAI-compatible API for one Nexus/HF checkpoint — GET /v1/models,
// POST /v1/completions, POST /v1/chat/completions, vLLM-style LoRA hot loading (POST /v1/load_lora_adapter,
// /v1/unload_lora_adapter; requests pick an adapter with `model: <lora_name>`), GET /health. Every choice
// carries `token_ids` (and the response `prompt_token_ids`) so clients get exact ids. Log-probs are
// log_softmax(logits / T) like local `generate` (vLLM reports raw T = 1 ones unless logprobs-mode says otherwise).
// Before any work a request passes guard.ts: loopback-only unless --api-key (Bearer, constant time), body and
// prompt sizes (characters counted before tokenizing), rows and tokens per request, and a bounded queue (then
// 429 + Retry-After). Adapters load only from inside --adapter-root. A client that disconnects cancels its
// generation; close() (SIGTERM) answers new requests 503 and finishes the admitted ones. GET /health gives the
// verdict of health.ts, also served on `healthPort` by a thread of its own. `stream: true` answers
// with server-sent events (stream.ts, sse.ts) once the request passed every check; later failures end the stream
// with an error event. Not here: echo, embeddings, tool-call parsing, auth beyond one optional API key.

import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { describeValue } from "../io/describe.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { type CausalLM, loadCausalLM } from "../models/causal_lm.js";
import { AdapterRoot } from "./adapter_root.js";
import { Engine, type GenJob, type RowResult, type TokenEvent } from "./engine.js";
import { Admission, bearerCheck, checkBindAddress, defaultLimits, resolveLimits, type ServeLimits } from "./guard.js";
import { HEALTH_STALE_MS, HealthBoard, type HealthListener, healthVerdict, startHealthListener } from "./health.js";
import { readBody, send } from "./http_io.js";
import {
  ApiError,
  type ChatRequest,
  type CommonRequest,
  type CompletionRequest,
  parseChatRequest,
  parseCompletionRequest,
  parseLoraRequest,
} from "./protocol.js";
import {
  asApiError,
  chatLogprobContent,
  completionLogprobs,
  type FinishFields,
  finishFields,
  promptLogprobsJson,
  type TokenRun,
  tokenIdString,
  usageOf,
} from "./responses.js";
import { type ChunkHead, chatChunk, completionChunk, SseWriter, usageChunk } from "./sse.js";
import { type StreamRoute, streamJob } from "./stream.js";

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
  /** Largest request body in bytes (same as limits.maxBodyBytes). Default 4 MiB. */
  maxBodyBytes?: number;
  /** Log lines (one per request); default none. */
  log?: (line: string) => void;
  /** Also answer GET /health on this port (0 picks a free one), from a thread of its own (health.ts); absent: off. */
  healthPort?: number;
  /** The HTTP thread counts as stuck after this long without running (health verdict 503). Default 10 s. */
  healthStaleMs?: number;
}

export interface ServerHandle {
  /** e.g. http://127.0.0.1:8000 (no trailing slash, no /v1). */
  url: string;
  port: number;
  /** The health listener's URL (GET /health on a thread of its own), null unless `healthPort` was given. */
  healthUrl: string | null;
  engine: Engine;
  servedModelName: string;
  /** The limits in force. */
  limits: ServeLimits;
  /** Generation requests admitted now (running or queued). */
  inflight(): number;
  /** Stop accepting (new requests get 503), finish admitted work, close every connection. */
  close(): Promise<void>;
}

/** A `stream: true` answer: run once the headers are out (server.ts owns them and the error event). */
class Streamed {
  constructor(readonly run: (out: SseWriter, signal: AbortSignal) => Promise<void>) {}
}

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

  private finish(r: RowResult, req: CommonRequest): FinishFields {
    return finishFields(r, req.sampling, (ids) => this.tokenizer.decode(ids, { skipSpecialTokens: req.sampling.skipSpecialTokens }));
  }

  private head(prefix: string, req: CommonRequest): ChunkHead {
    return { id: this.id(prefix), created: Math.floor(Date.now() / 1000), model: req.model ?? this.name, includeUsage: req.includeUsage };
  }

  /** The stream of `job`: text decoded as the whole answer decodes it, stop strings held back. */
  private streamed(job: GenJob, req: CommonRequest, everyToken: boolean, route: StreamRoute): Streamed {
    const s = req.sampling;
    const text = {
      decode: (ids: readonly number[]) => this.tokenizer.decode(ids, { skipSpecialTokens: s.skipSpecialTokens }),
      stop: s.stop,
      includeStop: s.includeStopStrInOutput,
      everyToken,
    };
    return new Streamed((out, signal) => streamJob(this.engine, job, text, route, out, signal));
  }

  private tokenStrings(req: CommonRequest): (id: number) => string {
    return (id) => (req.returnTokensAsTokenIds ? tokenIdString(id) : this.tokenText(id));
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
    const job: GenJob = {
      rows: prompts.flatMap((p) => Array.from({ length: req.n }, () => p)),
      sampling: req.sampling,
      adapter,
      seed: req.seed,
      topLogprobs: req.logprobs ?? 0,
      promptLogprobs: req.promptLogprobs,
    };
    const tokStr = this.tokenStrings(req);
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
    const logprobsOf = (run: TokenRun, offset: number) =>
      req.logprobs === null ? { logprobs: null, offset } : completionLogprobs(run, tokStr, (id) => this.tokenText(id), offset);
    if (req.stream) {
      const head = this.head("cmpl", req);
      const offsets = job.rows.map(() => 0); // text_offset runs on across a choice's chunks
      return this.streamed(job, req, req.logprobs !== null, {
        opening: () => [],
        chunks: (index, text, tokens, end) => {
          const lp = logprobsOf(runOf(tokens), offsets[index]);
          offsets[index] = lp.offset;
          const promptLogprobs = end === null ? undefined : promptLogprobsJson(end, tokStr);
          const choice = { index, text, logprobs: lp.logprobs, tokenIds: tokens.map((e) => e.id), finish: end && this.finish(end, req) };
          return [completionChunk(head, choice, promptLogprobs === undefined ? {} : { prompt_logprobs: promptLogprobs })];
        },
        usage: (results) => (req.includeUsage ? usageChunk(head, "text_completion", usageOf(promptTokens, results)) : null),
      });
    }
    const results = await this.engine.submit(job, { signal });
    const choices = results.map((r, index) => {
      const g = r.gen;
      const promptLogprobs = promptLogprobsJson(r, tokStr);
      return {
        index,
        text: g.text ?? "",
        logprobs: logprobsOf({ ids: g.completionIds, logprobs: g.logprobs, top: r.top }, 0).logprobs,
        ...this.finish(r, req),
        token_ids: g.completionIds,
        prompt_token_ids: g.promptIds,
        ...(promptLogprobs === undefined ? {} : { prompt_logprobs: promptLogprobs }),
      };
    });
    return {
      id: this.id("cmpl"),
      object: "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: req.model ?? this.name,
      choices,
      usage: usageOf(promptTokens, results),
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
    const job: GenJob = {
      rows: Array.from({ length: req.n }, () => prompt),
      sampling,
      adapter,
      seed: req.seed,
      topLogprobs: req.logprobs ? req.topLogprobs : 0,
      promptLogprobs: null,
    };
    const tokStr = this.tokenStrings(req);
    const logprobsOf = (run: TokenRun) => (req.logprobs ? { content: chatLogprobContent(run, req.topLogprobs, tokStr) } : null);
    const sreq = { ...req, sampling };
    if (req.stream) {
      const head = this.head("chatcmpl", req);
      return this.streamed(job, sreq, req.logprobs, {
        opening: () =>
          job.rows.map((_, index) => chatChunk(head, { index, delta: { role: "assistant", content: "" }, logprobs: null, finish: null })),
        chunks: (index, text, tokens, end) => {
          const out: unknown[] = [];
          if (text.length > 0 || tokens.length > 0) {
            const tokenIds = tokens.map((e) => e.id);
            out.push(chatChunk(head, { index, delta: { content: text }, logprobs: logprobsOf(runOf(tokens)), tokenIds, finish: null }));
          }
          if (end !== null) out.push(chatChunk(head, { index, delta: {}, logprobs: null, finish: this.finish(end, sreq) }));
          return out;
        },
        usage: (results) => (req.includeUsage ? usageChunk(head, "chat.completion.chunk", usageOf(prompt.length, results)) : null),
      });
    }
    const results = await this.engine.submit(job, { signal });
    const choices = results.map((r, index) => ({
      index,
      message: { role: "assistant", content: r.gen.text ?? "" },
      logprobs: logprobsOf({ ids: r.gen.completionIds, logprobs: r.gen.logprobs, top: r.top }),
      ...this.finish(r, sreq),
      token_ids: r.gen.completionIds,
    }));
    return {
      id: this.id("chatcmpl"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: req.model ?? this.name,
      choices,
      prompt_token_ids: prompt,
      usage: usageOf(prompt.length, results),
    };
  }
}

/** The tokens of one chunk as a run (ids, log-probs, top-k). */
function runOf(tokens: readonly TokenEvent[]): TokenRun {
  return { ids: tokens.map((e) => e.id), logprobs: tokens.map((e) => e.logprob), top: tokens.map((e) => e.top) };
}

/** What a generation route returns once it has written its own (streamed) answer. */
const STREAMED = Symbol("streamed");

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
  const board = new HealthBoard();
  const staleMs = opts.healthStaleMs ?? HEALTH_STALE_MS;
  const engine = new Engine(model, tokenizer, { maxBatch, seed: opts.seed, onFailure: () => board.set("failed") });
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
        const out = await fn(await readBody(req, limits.maxBodyBytes), abort.signal);
        if (!(out instanceof Streamed)) return out;
        // every check passed: from here on the status is 200 and a failure is told in the stream
        const sse = new SseWriter(res);
        sse.start();
        try {
          await out.run(sse, abort.signal);
          sse.end();
        } catch (e) {
          if (abort.signal.aborted) throw e;
          sse.fail(asApiError(e));
        }
        return STREAMED;
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
    "GET /health": () => {
      const v = healthVerdict(board.shared, Date.now(), staleMs);
      if (v.status !== 200) throw new ApiError(v.status, `[serve] ${v.reason}`);
      return "";
    },
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
      const out = await handler(req, res);
      if (out !== STREAMED) send(res, 200, out);
    } catch (e) {
      if (e instanceof ClientGone) {
        status = 499; // the client went away: nobody to answer
        res.destroy();
      } else {
        const err = asApiError(e);
        status = err.status;
        if (!res.headersSent && !res.destroyed) send(res, err.status, err.toJSON(), err.headers);
      }
    }
    log(`${route.slice(0, 100)} ${status} ${Date.now() - t0}ms`);
  });
  // malformed HTTP (a bad chunk, an oversized header) is answered by Node itself: 400 / 431, then the socket closes

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // a deep accept queue: under a burst of connections (1,000 clients at once) the default 511 overflows, and a
    // dropped SYN costs its client (a /health probe among them) the kernel's 1 s retransmit (capped by somaxconn)
    server.listen({ port: opts.port ?? 8000, host, backlog: 4096 }, () => resolve());
  });
  let health: HealthListener | null = null;
  if (opts.healthPort !== undefined) {
    try {
      health = await startHealthListener(board, host, opts.healthPort, staleMs);
    } catch (e) {
      server.close();
      board.stop();
      await engine.close();
      throw e;
    }
  }
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    healthUrl: health?.url ?? null,
    engine,
    servedModelName: name,
    limits,
    inflight: () => admission.current,
    close() {
      closing ??= (async () => {
        board.set("draining");
        const done = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await engine.drain();
        // admitted requests write their responses once the engine is idle; give them a moment, then close
        const deadline = Date.now() + 5000;
        while (admission.current > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
        await done;
        await health?.close();
        board.stop();
      })();
      return closing;
    },
  };
}
