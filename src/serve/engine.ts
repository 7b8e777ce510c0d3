// The serving engine behind `nexus serve`: a queue of generation jobs, batched when they arrive together with
// the same sampling settings and adapter (a seeded job always runs alone, so its rows get exactly what local
// `generate(model, rows, {seed})` gives), named LoRA adapters switched in and out of the one base model, and
// top-k / prompt log-probs read from the same hidden states `generate` uses (no second forward pass).
// Generation is synchronous on the event loop: one batch at a time, others queue. Not here: HTTP (server.ts),
// continuous batching, paged KV memory, streaming.

import { type GenerateOptions, type Generation, type GenerativeLM, generate } from "../generate/generate.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { DecoderInputs } from "../models/decoder.js";
import { applyLora, type LoraConfig, type LoraModel, loadLoraAdapter } from "../models/lora.js";
import { linear, noGrad, reshape, slice, type Tensor } from "../tensor/index.js";
import { ApiError, type SamplingRequest } from "./protocol.js";

/** One candidate token with log_softmax(logits / T) at it. */
export interface TopEntry {
  id: number;
  logprob: number;
}

/** Log-prob of one prompt token given the tokens before it (temperature 1), its rank, and the top-k. */
export interface PromptTokenLogprob {
  id: number;
  logprob: number;
  rank: number;
  top: TopEntry[];
}

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

interface Pending {
  job: GenJob;
  key: string;
  resolve: (r: RowResult[]) => void;
  reject: (e: unknown) => void;
}

interface StoredAdapter {
  config: LoraConfig;
  /** PEFT tensor name → weights. */
  weights: Map<string, Float32Array>;
  path: string;
}

export interface EngineOptions {
  /** Rows generated together at most (a larger job is split, and is then no longer seed-exact vs local). */
  maxBatch?: number;
  /** Seed of the stream unseeded batches draw their seeds from. Default: random. */
  seed?: number;
  /** How long an idle engine waits for more requests before starting a batch. Default 5 ms. */
  batchWindowMs?: number;
}

const LOGPROB_FLOOR = -9999; // JSON has no -Infinity; vLLM clamps the same way

/** Top-k of log_softmax(row / t) in float64, best first. */
export function topLogprobs(row: ArrayLike<number>, k: number, t: number): { top: TopEntry[]; lse: number } {
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) mx = Math.max(mx, row[j] / t);
  let s = 0;
  for (let j = 0; j < row.length; j++) s += Math.exp(row[j] / t - mx);
  const lse = mx + Math.log(s);
  const ids: number[] = [];
  for (let j = 0; j < row.length && k > 0; j++) {
    if (ids.length === k && row[j] <= row[ids[k - 1]]) continue;
    let at = ids.length < k ? ids.length : k - 1;
    while (at > 0 && row[ids[at - 1]] < row[j]) at--;
    ids.splice(at, 0, j);
    if (ids.length > k) ids.pop();
  }
  return { top: ids.map((id) => ({ id, logprob: Math.max(LOGPROB_FLOOR, row[id] / t - lse) })), lse };
}

export class Engine {
  private queue: Pending[] = [];
  private running = false;
  private readonly adapters = new Map<string, StoredAdapter>();
  private active: { name: string; lora: LoraModel } | null = null;
  private readonly maxBatch: number;
  private readonly batchWindowMs: number;
  private seedState: number;
  private idle: (() => void)[] = [];
  /** Batches generated and rows in them, since start (for logs and tests). */
  readonly stats = { batches: 0, rows: 0 };

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    opts: EngineOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 64;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1)
      throw new ApiError(500, `[serve] maxBatch must be an integer >= 1, got ${this.maxBatch}`);
    this.batchWindowMs = opts.batchWindowMs ?? 5;
    this.seedState = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    model.eval();
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  /** Read and check a PEFT adapter folder; it acts only for requests naming it. */
  loadAdapter(name: string, dir: string): void {
    if (this.adapters.has(name)) throw new ApiError(400, `[serve] LoRA adapter "${name}" is already loaded`, "lora_name");
    this.activate(null); // the base must carry no adapter while another is read onto it
    let lora: LoraModel;
    try {
      lora = loadLoraAdapter(this.model, dir);
    } catch (e) {
      throw new ApiError(400, `[serve] cannot load LoRA adapter "${name}" from ${dir}: ${(e as Error).message}`, "lora_path");
    }
    const weights = new Map<string, Float32Array>();
    for (const [k, t] of lora.peftStateDict()) weights.set(k, Float32Array.from(t.data as Float32Array));
    lora.unload();
    this.adapters.set(name, { config: lora.config, weights, path: dir });
  }

  unloadAdapter(name: string): void {
    if (!this.adapters.has(name)) throw new ApiError(404, `[serve] LoRA adapter "${name}" is not loaded`, "lora_name");
    if (this.active?.name === name) this.activate(null);
    this.adapters.delete(name);
  }

  /** Put adapter `name` (null: none) on the base model's Linears. */
  private activate(name: string | null): void {
    if ((this.active?.name ?? null) === name) return;
    if (this.active !== null) {
      this.active.lora.unload();
      this.active = null;
    }
    if (name === null) return;
    const stored = this.adapters.get(name);
    if (stored === undefined) throw new ApiError(404, `[serve] LoRA adapter "${name}" is not loaded`, "model");
    const lora = applyLora(this.model, stored.config);
    for (const [k, t] of lora.peftStateDict()) t.data.set(stored.weights.get(k) as Float32Array);
    lora.eval();
    this.active = { name, lora };
  }

  /** Queue a job; resolves with one result per row, in order. */
  submit(job: GenJob): Promise<RowResult[]> {
    const { maxTokens, temperature, topP, topK, minP, stop, stopTokenIds, ignoreEos, includeStopStrInOutput, skipSpecialTokens } =
      job.sampling;
    const key =
      job.seed !== null
        ? "" // never shared
        : JSON.stringify([
            job.adapter,
            maxTokens,
            temperature,
            topP,
            topK,
            minP,
            stop,
            stopTokenIds,
            ignoreEos,
            includeStopStrInOutput,
            skipSpecialTokens,
          ]);
    return new Promise((resolve, reject) => {
      this.queue.push({ job, key, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once the queue is empty and nothing runs. */
  drain(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private schedule(): void {
    if (this.running) return;
    this.running = true;
    // requests whose bodies arrive within the window join one batch (HTTP bodies land over several loop turns)
    setTimeout(() => this.step(), this.batchWindowMs);
  }

  private step(): void {
    const first = this.queue.shift();
    if (first === undefined) {
      this.running = false;
      for (const r of this.idle.splice(0)) r();
      return;
    }
    const batch = [first];
    let rows = first.job.rows.length;
    if (first.key !== "") {
      for (let i = 0; i < this.queue.length; ) {
        const p = this.queue[i];
        if (p.key === first.key && rows + p.job.rows.length <= this.maxBatch) {
          batch.push(p);
          rows += p.job.rows.length;
          this.queue.splice(i, 1);
        } else i++;
      }
    }
    try {
      const results = this.run(batch.map((p) => p.job));
      batch.forEach((p, i) => {
        p.resolve(results[i]);
      });
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
    // requests that queued up while this batch ran are all here now; no need to wait again
    setImmediate(() => this.step());
  }

  private nextSeed(): number {
    this.seedState = (Math.imul(this.seedState ^ (this.seedState >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return this.seedState;
  }

  /** Generate every job of one batch (same sampling and adapter) together; split above maxBatch. */
  private run(jobs: GenJob[]): RowResult[][] {
    const s = jobs[0].sampling;
    this.activate(jobs[0].adapter);
    const configEos = this.model.config.eosTokenId;
    const eos = [...(s.ignoreEos || configEos === null ? [] : typeof configEos === "number" ? [configEos] : configEos), ...s.stopTokenIds];
    const seed = jobs[0].seed ?? this.nextSeed();
    const opts: GenerateOptions = {
      maxNewTokens: s.maxTokens,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      stop: s.stop,
      includeStopStrInOutput: s.includeStopStrInOutput,
      skipSpecialTokens: s.skipSpecialTokens,
      tokenizer: this.tokenizer,
      eosTokenId: eos.length === 0 ? null : eos,
      seed,
    };
    const rows = jobs.flatMap((j) => j.rows);
    this.stats.batches++;
    this.stats.rows += rows.length;
    const topK = Math.max(...jobs.map((j) => j.topLogprobs));
    const wantPrompt = jobs.flatMap((j) => j.rows.map(() => j.promptLogprobs));
    const out: RowResult[] = [];
    for (let at = 0; at < rows.length; at += this.maxBatch) {
      const chunk = rows.slice(at, at + this.maxBatch);
      out.push(...this.generateChunk(chunk, { ...opts, seed: seed + at }, topK, wantPrompt.slice(at, at + this.maxBatch)));
    }
    const perJob: RowResult[][] = [];
    let i = 0;
    for (const j of jobs) {
      perJob.push(out.slice(i, i + j.rows.length));
      i += j.rows.length;
    }
    return perJob;
  }

  /** generate() through a view of the model that records top-k / prompt log-probs from each call's hidden states. */
  private generateChunk(rows: number[][], opts: GenerateOptions, topK: number, promptK: (number | null)[]): RowResult[] {
    const model = this.model;
    const t = opts.temperature === 0 || opts.doSample === false ? 1 : (opts.temperature ?? 1);
    const perCall: TopEntry[][][] = []; // call c → active batch position → top-k
    const promptLp: ((PromptTokenLogprob | null)[] | null)[] = rows.map(() => null);
    const wantPrompt = promptK.some((k) => k !== null);
    let call = 0;
    const view: GenerativeLM = {
      config: model.config,
      get lmHeadWeight() {
        return model.lmHeadWeight;
      },
      forwardHidden(inputs: DecoderInputs): Tensor {
        const hidden = model.forwardHidden(inputs); // (B, T, D)
        const [b, tt, d] = hidden.shape;
        if (topK > 0) {
          const logits = linear(reshape(slice(hidden, 1, tt - 1, tt), [b, d]), model.lmHeadWeight).data; // (B, V)
          const v = logits.length / b;
          perCall.push(Array.from({ length: b }, (_, i) => topLogprobs(logits.subarray(i * v, (i + 1) * v), topK, t).top));
        }
        if (call === 0 && wantPrompt) {
          rows.forEach((p, r) => {
            const k = promptK[r];
            if (k !== null) promptLp[r] = promptLogprobsOf(hidden, r, p, k, model.lmHeadWeight);
          });
        }
        call++;
        return hidden;
      },
    };
    const gens = noGrad(() => generate(view, rows, opts));
    // call c scored token c of every row still running then: rows with more than c tokens, in order
    const top: TopEntry[][][] = gens.map((g) => g.completionIds.map(() => []));
    perCall.forEach((entries, c) => {
      let pos = 0;
      gens.forEach((g, r) => {
        if (g.completionIds.length > c) top[r][c] = entries[pos++];
      });
    });
    return gens.map((gen, r) => ({ gen, top: top[r], promptLogprobs: promptLp[r] }));
  }
}

/** Prompt-token log-probs of row r of a left-padded prefill: hidden (B, T, D), the row's prompt at T - len. */
function promptLogprobsOf(hidden: Tensor, r: number, prompt: number[], k: number, w: Tensor): (PromptTokenLogprob | null)[] {
  const [, tt, d] = hidden.shape;
  const off = tt - prompt.length;
  if (prompt.length < 2) return [null];
  const h = reshape(slice(slice(hidden, 0, r, r + 1), 1, off, tt - 1), [prompt.length - 1, d]); // (len-1, D)
  const logits = linear(h, w).data; // (len-1, V)
  const v = logits.length / (prompt.length - 1);
  const out: (PromptTokenLogprob | null)[] = [null];
  for (let j = 1; j < prompt.length; j++) {
    const row = logits.subarray((j - 1) * v, j * v);
    const { top, lse } = topLogprobs(row, k, 1);
    const id = prompt[j];
    let rank = 1;
    for (let q = 0; q < v; q++) if (row[q] > row[id]) rank++;
    out.push({ id, logprob: Math.max(LOGPROB_FLOOR, row[id] - lse), rank, top });
  }
  return out;
}
