// The serving engine behind `nexus serve`: every request's rows become requests of the rollout engine
// (src/generate/engine.ts: paged KV cache, continuous batching, prefix sharing), so concurrent clients are batched
// together at every decode step whatever their sampling settings, seeds or adapters. The engine is stepped one step
// per event-loop turn (setImmediate), so HTTP keeps being served between steps; a step's work is bounded by
// maxBatchTokens (long prompts are prefilled in chunks). A seeded request gets exactly what local
// `generate(model, rows, {seed})` gives. Named LoRA adapters are attached per forward for the rows that ask for them.
// A request can stream its tokens and be cancelled (client gone) at any step. Not here: HTTP (server.ts).

import { type EngineResult, type PromptTokenLogprob, type RequestHandle, RolloutEngine, type TokenEvent } from "../generate/engine.js";
import type { TopEntry } from "../generate/sampling.js";
import type { Generation } from "../generate/types.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { type LoraModel, loadLoraAdapter } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import { ApiError, type SamplingRequest } from "./protocol.js";

export type { PromptTokenLogprob, TokenEvent, TopEntry };

export interface GenJob {
  /** Prompt rows (already repeated n times each). */
  rows: number[][];
  sampling: SamplingRequest;
  /** LoRA adapter name, or null for the base model. */
  adapter: string | null;
  seed: number | null;
  /** Top-k candidates to report per generated token (0: none). */
  topLogprobs: number;
  /** Top-k candidates per prompt token, or null: no prompt log-probs. */
  promptLogprobs: number | null;
}

export interface RowResult {
  gen: Generation;
  /** Per generated token, the top-k candidates (empty lists when not asked). */
  top: TopEntry[][];
  /** Entry 0 is null (no context), as vLLM. Null when not asked. */
  promptLogprobs: (PromptTokenLogprob | null)[] | null;
}

export interface SubmitOptions {
  /** Aborting cancels every row still running (their blocks are freed at once); the promise rejects. */
  signal?: AbortSignal;
  /** Each generated token of row `row` as soon as it is sampled (streaming). */
  onToken?: (row: number, e: TokenEvent) => void;
}

interface StoredAdapter {
  lora: LoraModel;
  path: string;
  /** Prefix-sharing namespace: unique per load, so a reloaded name never reuses old blocks. */
  ns: string;
}

export interface EngineOptions {
  /** Rows decoded together at most (the running batch); more wait for a slot. Default 64. */
  maxBatch?: number;
  /** Seed of the stream unseeded requests draw their seeds from. Default: random. */
  seed?: number;
  /** Delay before the first step after the engine was idle, so requests arriving together start together. Default 0 ms. */
  batchWindowMs?: number;
  /** KV cache size in bytes. Default 1 GiB. */
  kvCacheMemory?: number;
  /** Tokens computed in one step at most: bounds how long a step holds the event loop. Default 256. */
  maxBatchTokens?: number;
}

interface Job {
  results: (RowResult | undefined)[];
  handles: RequestHandle[];
  left: number;
  adapter: string | null;
  resolve: (r: RowResult[]) => void;
  reject: (e: unknown) => void;
}

export class Engine {
  private readonly core: RolloutEngine;
  private readonly adapters = new Map<string, StoredAdapter>();
  private active: StoredAdapter | null = null;
  private readonly jobs = new Set<Job>();
  private readonly batchWindowMs: number;
  private seedState: number;
  private running = false;
  private loads = 0;
  private idle: (() => void)[] = [];
  /** Requests and rows accepted, engine steps run, since start (for logs and tests). */
  readonly stats = { requests: 0, rows: 0, steps: 0 };

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    opts: EngineOptions = {},
  ) {
    const maxBatch = opts.maxBatch ?? 64;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new ApiError(500, `[serve] maxBatch must be an integer >= 1, got ${maxBatch}`);
    this.batchWindowMs = opts.batchWindowMs ?? 0;
    this.seedState = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    model.eval();
    this.core = new RolloutEngine(model, {
      maxRunning: maxBatch,
      kvCacheMemory: opts.kvCacheMemory,
      maxBatchTokens: opts.maxBatchTokens ?? 256,
      useAdapter: (ns) => this.activate(ns),
    });
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  /** Rows running or waiting, and free KV memory (for admission policies: 429s, health). */
  get load(): { rows: number; requests: number; kvBlocksFree: number; kvBlocks: number } {
    const a = this.core.cache.allocator;
    return { rows: this.core.pending, requests: this.jobs.size, kvBlocksFree: a.numFree, kvBlocks: a.numBlocks };
  }

  /** Read and check a PEFT adapter folder; it acts only for requests naming it. */
  loadAdapter(name: string, dir: string): void {
    if (this.adapters.has(name)) throw new ApiError(400, `[serve] LoRA adapter "${name}" is already loaded`, "lora_name");
    const prev = this.active;
    this.detach(); // the base must carry no adapter while another is read onto it
    let lora: LoraModel;
    try {
      lora = loadLoraAdapter(this.model, dir);
    } catch (e) {
      this.attach(prev);
      throw new ApiError(400, `[serve] cannot load LoRA adapter "${name}" from ${dir}: ${(e as Error).message}`, "lora_path");
    }
    lora.eval();
    lora.unload();
    this.attach(prev);
    this.adapters.set(name, { lora, path: dir, ns: `${name}#${this.loads++}` });
  }

  unloadAdapter(name: string): void {
    const stored = this.adapters.get(name);
    if (stored === undefined) throw new ApiError(404, `[serve] LoRA adapter "${name}" is not loaded`, "lora_name");
    const users = [...this.jobs].filter((j) => j.adapter === name).length;
    if (users > 0)
      throw new ApiError(409, `[serve] LoRA adapter "${name}" is in use by ${users} request(s); unload it when they are done`, "lora_name");
    if (this.active === stored) this.detach();
    this.adapters.delete(name);
  }

  /** The rollout engine's adapter hook: namespace "" is the base model. */
  private activate(ns: string): void {
    if ((this.active?.ns ?? "") === ns) return;
    this.detach();
    if (ns === "") return;
    const stored = [...this.adapters.values()].find((a) => a.ns === ns);
    if (stored === undefined) throw new ApiError(404, `[serve] LoRA adapter of namespace "${ns}" is not loaded`, "model");
    this.attach(stored);
  }

  private detach(): void {
    this.active?.lora.unload();
    this.active = null;
  }

  private attach(a: StoredAdapter | null): void {
    if (a === null) return;
    a.lora.reattach();
    this.active = a;
  }

  /** Queue a job; resolves with one result per row, in order, when all its rows are done. */
  submit(job: GenJob, opts: SubmitOptions = {}): Promise<RowResult[]> {
    const s = job.sampling;
    let ns = "";
    if (job.adapter !== null) {
      const stored = this.adapters.get(job.adapter);
      if (stored === undefined) return Promise.reject(new ApiError(404, `[serve] LoRA adapter "${job.adapter}" is not loaded`, "model"));
      ns = stored.ns;
    }
    this.stats.requests++;
    this.stats.rows += job.rows.length;
    if (s.maxTokens === 0) {
      return Promise.resolve(
        job.rows.map((p) => ({
          gen: { promptIds: [...p], completionIds: [], logprobs: [], finishReason: "length", text: "" },
          top: [],
          promptLogprobs: null,
        })),
      );
    }
    if (opts.signal?.aborted) return Promise.reject(abortError());
    const configEos = this.model.config.eosTokenId;
    const eos = new Set([
      ...(s.ignoreEos || configEos === null ? [] : typeof configEos === "number" ? [configEos] : configEos),
      ...s.stopTokenIds,
    ]);
    const rng = new Rng(job.seed ?? this.nextSeed());
    return new Promise<RowResult[]>((resolve, reject) => {
      const j: Job = { results: job.rows.map(() => undefined), handles: [], left: job.rows.length, adapter: job.adapter, resolve, reject };
      try {
        job.rows.forEach((prompt, r) => {
          const handle = this.core.add({
            prompt,
            maxNewTokens: s.maxTokens,
            sampling: { temperature: s.temperature, topP: s.topP, topK: s.topK, minP: s.minP },
            rng: rng.fork(), // row r's stream, as local generate() forks them
            eos,
            stop: s.stop,
            includeStopStrInOutput: s.includeStopStrInOutput,
            tokenizer: this.tokenizer,
            skipSpecialTokens: s.skipSpecialTokens,
            adapter: ns,
            topLogprobs: job.topLogprobs,
            promptLogprobs: job.promptLogprobs,
            onToken: opts.onToken === undefined ? undefined : (e) => opts.onToken?.(r, e),
            onFinish: (res) => this.rowDone(j, r, res),
          });
          j.handles.push(handle);
        });
      } catch (e) {
        for (const h of j.handles) this.core.cancel(h);
        reject(e instanceof ApiError ? e : new ApiError(400, (e as Error).message));
        return;
      }
      this.jobs.add(j);
      opts.signal?.addEventListener("abort", () => this.cancelJob(j, abortError()), { once: true });
      this.kick();
    });
  }

  private rowDone(j: Job, row: number, res: EngineResult): void {
    const { top, promptLogprobs, ...gen } = res;
    j.results[row] = { gen, top, promptLogprobs };
    if (--j.left > 0) return;
    this.jobs.delete(j);
    j.resolve(j.results as RowResult[]);
  }

  private cancelJob(j: Job, why: unknown): void {
    if (!this.jobs.delete(j)) return;
    for (const h of j.handles) this.core.cancel(h);
    j.reject(why);
  }

  /** Resolves once nothing is queued or running. */
  drain(): Promise<void> {
    if (!this.running && !this.core.hasWork) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    if (this.batchWindowMs > 0) setTimeout(() => this.loop(), this.batchWindowMs);
    else setImmediate(() => this.loop());
  }

  /** One engine step per event-loop turn: requests, health checks and stream writes are served in between. */
  private loop(): void {
    if (!this.core.hasWork) {
      this.running = false;
      for (const r of this.idle.splice(0)) r();
      return;
    }
    try {
      this.core.step();
      this.stats.steps++;
    } catch (e) {
      // a failed step leaves no trustworthy state for the requests in it: fail them all, keep serving others
      for (const j of [...this.jobs]) this.cancelJob(j, e);
    }
    setImmediate(() => this.loop());
  }

  private nextSeed(): number {
    this.seedState = (Math.imul(this.seedState ^ (this.seedState >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return this.seedState;
  }
}

function abortError(): Error {
  const e = new Error("[serve] the request was cancelled (client disconnected)");
  e.name = "AbortError";
  return e;
}
