// The serving engine behind `nexus serve`, on the HTTP thread. Generation runs in a worker thread
// (engine_worker.ts: a copy of the weights and the rollout engine with its paged KV cache, continuous batching and
// prefix sharing), so the event loop never waits for a forward pass: /health answers and streams flow under any
// load (measured: stepping on the HTTP thread held /health for a whole step, 60-300 ms at W1 size under load).
// Every request row becomes a worker row; concurrent clients decode together at every step whatever their
// settings, seeds or adapters. Here: seeds (a seeded request gets exactly what local `generate(model, rows,
// {seed})` gives: row streams are forked the same way), stop strings and text (the worker knows ids only; a row
// that hits a stop string is cancelled there), streaming callbacks, cancellation, LoRA adapter registry.
// Not here: HTTP (server.ts).

import { Worker } from "node:worker_threads";
import { backendName } from "../backend/index.js";
import type { PromptTokenLogprob, TokenEvent } from "../generate/engine.js";
import type { TopEntry } from "../generate/sampling.js";
import { matchStop } from "../generate/stop.js";
import type { FinishReason, Generation } from "../generate/types.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { type LoraConfig, loadLoraAdapter } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import { ApiError, type SamplingRequest } from "./protocol.js";
import { workerEntry } from "./worker_entry.js";
import type { AddRow, FromWorker, TokenMsg, ToWorker, WorkerInit } from "./worker_protocol.js";

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
  /** Aborting cancels every row still running (the worker frees their blocks at its next step); the promise rejects. */
  signal?: AbortSignal;
  /** Each generated token of row `row` as soon as its step is done (streaming). */
  onToken?: (row: number, e: TokenEvent) => void;
  /** Row `row` is done (after its last onToken): its final result, the same the promise resolves with. */
  onRowEnd?: (row: number, r: RowResult) => void;
}

export interface EngineOptions {
  /** Rows decoded together at most (the running batch); more wait for a slot. Default 64. */
  maxBatch?: number;
  /** Seed of the stream unseeded requests draw their seeds from. Default: random. */
  seed?: number;
  /** KV cache size in bytes. Default 1 GiB. */
  kvCacheMemory?: number;
  /** Tokens computed in one worker step at most (long prompts are prefilled in chunks). Default 512. */
  maxBatchTokens?: number;
  /** Called once if the generation worker fails (every later request is answered 500). */
  onFailure?: (message: string) => void;
}

interface Row {
  job: Job;
  index: number;
  prompt: number[];
  ids: number[];
  logprobs: number[];
  top: TopEntry[][];
  promptLogprobs: (PromptTokenLogprob | null)[] | null;
  text: string;
  finish: FinishReason | null;
}

interface Job {
  rows: Row[];
  ids: number[];
  left: number;
  adapter: string | null;
  sampling: SamplingRequest;
  onToken?: (row: number, e: TokenEvent) => void;
  onRowEnd?: (row: number, r: RowResult) => void;
  resolve: (r: RowResult[]) => void;
  reject: (e: unknown) => void;
}

export class Engine {
  private readonly worker: Worker;
  private readonly adapters = new Map<string, { ns: string; config: LoraConfig; path: string }>();
  private readonly rows = new Map<number, Row>();
  private readonly jobs = new Set<Job>();
  private nextRow = 0;
  private loads = 0;
  private seedState: number;
  private broken: string | null = null;
  private readonly onFailure: ((message: string) => void) | undefined;
  private idle: (() => void)[] = [];
  private kv = { free: 0, total: 0 };
  /** Requests and rows accepted, worker steps run, since start (for logs and tests). */
  readonly stats = { requests: 0, rows: 0, steps: 0 };

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    opts: EngineOptions = {},
  ) {
    const maxBatch = opts.maxBatch ?? 64;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new ApiError(500, `[serve] maxBatch must be an integer >= 1, got ${maxBatch}`);
    this.seedState = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    this.onFailure = opts.onFailure;
    model.eval();
    const weights: [string, Float32Array][] = [];
    for (const [k, p] of model.namedParameters()) weights.push([k, Float32Array.from(p.hostData())]);
    const init: WorkerInit = {
      config: model.config,
      weights,
      backend: backendName(),
      maxRunning: maxBatch,
      kvCacheMemory: opts.kvCacheMemory,
      maxBatchTokens: opts.maxBatchTokens ?? 512,
    };
    const { file, data } = workerEntry(import.meta.url, "engine_worker");
    this.worker = new Worker(file, {
      workerData: { ...data, init },
      transferList: weights.map(([, w]) => w.buffer as ArrayBuffer),
      execArgv: process.execArgv,
    });
    this.worker.on("message", (m: FromWorker) => this.onMessage(m));
    this.worker.on("error", (e) => this.fail(`[serve] the generation worker failed: ${e.message}`));
    this.worker.on("exit", (code) => this.fail(`[serve] the generation worker exited (code ${code})`));
    this.worker.unref(); // ref'd only while requests are in flight (after the listeners: a 'message' listener refs it)
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  /** Rows running or waiting, requests in flight, and free KV memory at the last step (for admission policies, health). */
  get load(): { rows: number; requests: number; kvBlocksFree: number; kvBlocks: number } {
    return { rows: this.rows.size, requests: this.jobs.size, kvBlocksFree: this.kv.free, kvBlocks: this.kv.total };
  }

  /** Read and check a PEFT adapter folder (errors name the folder); it acts only for requests naming it. */
  async loadAdapter(name: string, dir: string): Promise<void> {
    if (this.adapters.has(name)) throw new ApiError(400, `[serve] LoRA adapter "${name}" is already loaded`, "lora_name");
    let config: LoraConfig;
    const weights: [string, Float32Array][] = [];
    try {
      const lora = loadLoraAdapter(this.model, dir); // validated against the model here; applied in the worker
      config = lora.config;
      for (const [k, t] of lora.peftStateDict()) weights.push([k, Float32Array.from(t.hostData())]);
      lora.unload();
    } catch (e) {
      throw new ApiError(400, `[serve] cannot load LoRA adapter "${name}" from ${dir}: ${(e as Error).message}`, "lora_path");
    }
    const ns = `${name}#${this.loads++}`;
    this.send(
      { t: "adapter", ns, config, weights },
      weights.map(([, w]) => w.buffer as ArrayBuffer),
    );
    this.adapters.set(name, { ns, config, path: dir });
  }

  async unloadAdapter(name: string): Promise<void> {
    const stored = this.adapters.get(name);
    if (stored === undefined) throw new ApiError(404, `[serve] LoRA adapter "${name}" is not loaded`, "lora_name");
    const users = [...this.jobs].filter((j) => j.adapter === name).length;
    if (users > 0)
      throw new ApiError(409, `[serve] LoRA adapter "${name}" is in use by ${users} request(s); unload it when they are done`, "lora_name");
    this.send({ t: "dropAdapter", ns: stored.ns });
    this.adapters.delete(name);
  }

  /** Queue a job; resolves with one result per row, in order, when all its rows are done. */
  submit(job: GenJob, opts: SubmitOptions = {}): Promise<RowResult[]> {
    if (this.broken !== null) return Promise.reject(new ApiError(500, this.broken));
    const s = job.sampling;
    let ns = "";
    if (job.adapter !== null) {
      const stored = this.adapters.get(job.adapter);
      if (stored === undefined) return Promise.reject(new ApiError(404, `[serve] LoRA adapter "${job.adapter}" is not loaded`, "model"));
      ns = stored.ns;
    }
    if (opts.signal?.aborted) return Promise.reject(abortError());
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
    const configEos = this.model.config.eosTokenId;
    const eos = [...(s.ignoreEos || configEos === null ? [] : typeof configEos === "number" ? [configEos] : configEos), ...s.stopTokenIds];
    const rng = new Rng(job.seed ?? this.nextSeed());
    return new Promise<RowResult[]>((resolve, reject) => {
      const j: Job = {
        rows: [],
        ids: [],
        left: job.rows.length,
        adapter: job.adapter,
        sampling: s,
        onToken: opts.onToken,
        onRowEnd: opts.onRowEnd,
        resolve,
        reject,
      };
      const greedy = s.temperature === 0;
      job.rows.forEach((prompt, index) => {
        const id = this.nextRow++;
        const row: Row = {
          job: j,
          index,
          prompt: [...prompt],
          ids: [],
          logprobs: [],
          top: [],
          promptLogprobs: null,
          text: "",
          finish: null,
        };
        j.rows.push(row);
        j.ids.push(id);
        this.rows.set(id, row);
        const msg: AddRow = {
          t: "add",
          id,
          prompt: row.prompt,
          maxNewTokens: s.maxTokens,
          temperature: greedy ? 0 : s.temperature,
          topK: s.topK,
          topP: s.topP,
          minP: s.minP,
          rng: rng.fork().getState(), // row `index`'s stream, forked as local generate() forks them
          eos,
          ns,
          topLogprobs: job.topLogprobs,
          promptLogprobs: job.promptLogprobs,
        };
        this.send(msg);
      });
      if (this.jobs.size === 0) this.worker.ref(); // pending requests keep the process alive
      this.jobs.add(j);
      opts.signal?.addEventListener("abort", () => this.endJob(j, abortError()), { once: true });
    });
  }

  /** Resolves once nothing is queued or running. */
  drain(): Promise<void> {
    if (this.jobs.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** Stop the worker (pending requests fail). */
  async close(): Promise<void> {
    this.fail("[serve] the engine was closed");
    await this.worker.terminate();
  }

  private send(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private onMessage(m: FromWorker): void {
    if (m.t === "step") {
      this.stats.steps = m.steps;
      this.kv = { free: m.kvBlocksFree, total: m.kvBlocks };
      for (const t of m.tokens) this.onToken(t);
    } else if (m.t === "rowError") {
      const jobs = new Set(m.ids.map((id) => this.rows.get(id)?.job).filter((j): j is Job => j !== undefined));
      for (const j of jobs) this.endJob(j, new ApiError(m.message.startsWith("[scheduler]") ? 400 : 500, m.message));
    } else if (m.t === "fatal") this.fail(m.message);
  }

  private onToken(t: TokenMsg): void {
    const row = this.rows.get(t.id);
    if (row === undefined || row.finish !== null) return; // finished here (stop string) or cancelled: late tokens are dropped
    const j = row.job;
    const s = j.sampling;
    if (t.promptLogprobs !== undefined) row.promptLogprobs = t.promptLogprobs;
    row.ids.push(t.token);
    row.logprobs.push(t.logprob);
    row.top.push(t.top);
    j.onToken?.(row.index, { index: row.ids.length - 1, id: t.token, logprob: t.logprob, top: t.top });
    let finish: FinishReason | null = t.finish ?? null;
    if (finish !== "eos" && s.stop.length > 0) {
      row.text = this.tokenizer.decode(row.ids, { skipSpecialTokens: s.skipSpecialTokens });
      const cut = matchStop(row.text, s.stop, s.includeStopStrInOutput);
      if (cut !== null) {
        row.text = cut;
        if (finish === null) this.send({ t: "cancel", ids: [t.id] });
        finish = "stop";
      }
    }
    if (finish === null) return;
    row.finish = finish;
    this.rows.delete(t.id);
    if (finish !== "stop") row.text = this.tokenizer.decode(row.ids, { skipSpecialTokens: s.skipSpecialTokens });
    j.onRowEnd?.(row.index, rowResult(row));
    if (--j.left === 0 && this.jobs.has(j)) {
      this.jobs.delete(j);
      j.resolve(j.rows.map(rowResult));
      this.settle();
    }
  }

  /** End a job early (cancelled, failed): its rows are dropped here and in the worker. */
  private endJob(j: Job, why: unknown): void {
    if (!this.jobs.delete(j)) return;
    const live = j.ids.filter((id) => this.rows.delete(id));
    if (live.length > 0 && this.broken === null) this.send({ t: "cancel", ids: live });
    j.reject(why);
    this.settle();
  }

  private fail(message: string): void {
    if (this.broken !== null) return;
    this.broken = message;
    this.onFailure?.(message);
    for (const j of [...this.jobs]) this.endJob(j, new ApiError(500, message));
  }

  private settle(): void {
    if (this.jobs.size > 0) return;
    this.worker.unref();
    for (const r of this.idle.splice(0)) r();
  }

  private nextSeed(): number {
    this.seedState = (Math.imul(this.seedState ^ (this.seedState >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return this.seedState;
  }
}

function rowResult(r: Row): RowResult {
  return {
    gen: { promptIds: r.prompt, completionIds: r.ids, logprobs: r.logprobs, finishReason: r.finish as FinishReason, text: r.text },
    top: r.top,
    promptLogprobs: r.promptLogprobs,
  };
}

function abortError(): Error {
  const e = new Error("[serve] the request was cancelled (client disconnected)");
  e.name = "AbortError";
  return e;
}
