// The rollout engine: one loop of steps over a paged KV cache, behind `generate()`, the online trainers (through
// generate) and `nexus serve`. Each step the scheduler picks tokens (decode tokens and prefill chunks of any
// requests, which join and leave at every step); they run as one packed forward with paged attention, the logits of
// the positions that end a sequence's pending tokens are sampled in one kernel call (temperature, top-k, top-p,
// min-p per request, each request drawing from its own seeded stream), and eos ids, stop strings and length end a
// request. Weights are packed once per engine for the decode GEMMs. Synchronous: a caller that must stay responsive
// (serve) calls step() between other work. Not here: HTTP, adapters' weights (a hook selects them), beam search.

import type { Tokenizer } from "../io/tokenizer.js";
import { Attention, MLP } from "../models/decoder.js";
import { Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import type { Rng } from "../nn/rng.js";
import {
  fromArray,
  indexSelect,
  linear,
  noGrad,
  type PackedGroup,
  type PackedSet,
  type PackedWeight,
  packGroup,
  packWeight,
  releaseBuffer,
  reshape,
  type SamplingRows,
  sampleTokens,
  type Tensor,
  takeRecentBuffers,
  withBufferPool,
  withPackedWeights,
} from "../tensor/index.js";
import { blocksFor, geometryOf, PagedKVCache } from "./paged_cache.js";
import { checkSampling, LOGPROB_FLOOR, type SamplingOptions, type TopEntry, topLogprobs } from "./sampling.js";
import { type SchedSeq, type ScheduledSeq, Scheduler } from "./scheduler.js";
import { matchStop } from "./stop.js";
import { type FinishReason, GenerateError, type Generation, type GenerativeLM } from "./types.js";

export interface EngineOptions {
  /** KV cache size in bytes (float32 keys and values of every layer). Default 1 GiB. */
  kvCacheMemory?: number;
  /** KV cache size in blocks (overrides kvCacheMemory). */
  kvCacheBlocks?: number;
  /** Tokens per KV block. Default 16. */
  blockSize?: number;
  /** Tokens computed in one step at most (bounds a step's time: long prompts are prefilled in chunks). Default 2048. */
  maxBatchTokens?: number;
  /** Sequences in the running batch at most. Default 256. */
  maxRunning?: number;
  /** Pack the Linear weights once for the decode GEMMs (they must not change while the engine lives). Default true. */
  packWeights?: boolean;
  /** Let requests reuse each other's prompt blocks (groups fork, common prefixes are found by content). Default true. */
  prefixSharing?: boolean;
  /** Put the weights of request adapter `name` ("" = the base model) in place before a forward. */
  useAdapter?: (name: string) => void;
}

export const ENGINE_DEFAULTS = Object.freeze({
  kvCacheMemory: 2 ** 30,
  blockSize: 16,
  maxBatchTokens: 2048,
  maxRunning: 256,
});

/** Log-prob of one prompt token given the tokens before it (temperature 1), its rank, and the top-k. */
export interface PromptTokenLogprob {
  id: number;
  logprob: number;
  rank: number;
  top: TopEntry[];
}

export interface EngineRequest {
  prompt: readonly number[];
  maxNewTokens: number;
  /** Greedy when temperature is 0 or doSample false. */
  sampling: SamplingOptions;
  /** This request's random stream (advanced in place; read only when sampling). */
  rng: Rng;
  /** Ids that end the request (kept as its last token). */
  eos?: ReadonlySet<number>;
  /** Strings that end it when they appear in its decoded completion (needs tokenizer). */
  stop?: readonly string[];
  includeStopStrInOutput?: boolean;
  tokenizer?: Pick<Tokenizer, "decode">;
  skipSpecialTokens?: boolean;
  /** Adapter the request runs under (see EngineOptions.useAdapter); "" or omitted: the base model. */
  adapter?: string;
  /** Top-k candidates to report per generated token (0: none). */
  topLogprobs?: number;
  /** Top-k candidates per prompt token, or null (default): no prompt log-probs. */
  promptLogprobs?: number | null;
  /** Each generated token as it is sampled. */
  onToken?: (e: TokenEvent) => void;
  /** The finished request. */
  onFinish?: (r: EngineResult) => void;
}

export interface TokenEvent {
  /** Position in the completion. */
  index: number;
  id: number;
  logprob: number;
  top: TopEntry[];
  /** On the first token of a request that asked for them: its prompt log-probs. */
  promptLogprobs?: (PromptTokenLogprob | null)[];
}

export interface EngineResult extends Generation {
  /** Per generated token, the top-k candidates (empty lists when not asked). */
  top: TopEntry[][];
  /** Entry 0 is null (no context), as vLLM. Null when not asked. */
  promptLogprobs: (PromptTokenLogprob | null)[] | null;
}

class Seq implements SchedSeq {
  numComputed = 0;
  blocks: number[] = [];
  registered = 0;
  state: SchedSeq["state"] = "waiting";
  followers: SchedSeq[] = [];
  readonly tokens: number[];
  readonly promptLen: number;
  readonly maxLen: number;
  readonly completion: number[] = [];
  readonly logprobs: number[] = [];
  readonly top: TopEntry[][] = [];
  readonly promptLps: (PromptTokenLogprob | null)[] | null;
  readonly temperature: number;
  text = "";
  finish: FinishReason | null = null;
  cancelled = false;

  constructor(
    readonly id: number,
    readonly req: EngineRequest,
    readonly ns: string,
    private readonly share: boolean,
  ) {
    this.tokens = [...req.prompt];
    this.promptLen = req.prompt.length;
    this.maxLen = req.prompt.length + req.maxNewTokens;
    this.promptLps = req.promptLogprobs === null || req.promptLogprobs === undefined ? null : [null];
    const t = req.sampling.temperature ?? 1;
    this.temperature = req.sampling.doSample === false ? 0 : t;
  }

  get sharePrefix(): boolean {
    return this.share && this.promptLps === null; // prompt log-probs need every prompt position computed
  }
}

/** A submitted request: cancel it with engine.cancel(handle). */
export interface RequestHandle {
  readonly id: number;
}

/** A row of logits this step needs: its forward row, and what it is for. */
interface LogitRow {
  row: number;
  seq: Seq;
  /** Prompt position whose next token it scores, or -1 for a sampling row. */
  promptPos: number;
}

export class RolloutEngine {
  readonly cache: PagedKVCache;
  private readonly scheduler: Scheduler<Seq>;
  private readonly seqs = new Map<number, Seq>();
  private packed: PackedSet = { weights: new Map(), groups: new Map() };
  private nextId = 0;
  /** Steps run, tokens computed (prefill + decode), tokens sampled, preemptions. */
  readonly stats = { steps: 0, computed: 0, sampled: 0, maxRunning: 0 };

  constructor(
    readonly model: GenerativeLM,
    readonly opts: EngineOptions = {},
  ) {
    const geometry = geometryOf(model.config, opts.blockSize ?? ENGINE_DEFAULTS.blockSize);
    this.cache =
      opts.kvCacheBlocks !== undefined
        ? new PagedKVCache(geometry, opts.kvCacheBlocks)
        : PagedKVCache.fromBudget(geometry, opts.kvCacheMemory ?? ENGINE_DEFAULTS.kvCacheMemory);
    const maxBatchTokens = opts.maxBatchTokens ?? ENGINE_DEFAULTS.maxBatchTokens;
    const maxRunning = opts.maxRunning ?? ENGINE_DEFAULTS.maxRunning;
    for (const [k, v] of Object.entries({ maxBatchTokens, maxRunning })) {
      if (!Number.isInteger(v) || v < 1) throw new GenerateError(`[engine] ${k} must be an integer >= 1, got ${v}`);
    }
    this.scheduler = new Scheduler<Seq>(this.cache, { maxBatchTokens, maxRunning });
    if (opts.packWeights ?? true) this.refreshWeights();
  }

  /** Re-pack the Linear weights from their current values (after an optimizer step, for a long-lived engine). */
  refreshWeights(): void {
    const weights = new Map<Tensor, PackedWeight>();
    const groups = new Map<Tensor, PackedGroup>();
    const lm = this.model;
    noGrad(() => {
      weights.set(lm.lmHeadWeight, packWeight(lm.lmHeadWeight));
      if (!(lm instanceof Module)) return;
      for (const [, m] of lm.namedModules()) {
        if (m instanceof Linear && m.weight.size >= 4096 && !weights.has(m.weight)) weights.set(m.weight, packWeight(m.weight));
        // projections that read the same input run as one GEMM (nn's linearMany)
        const group = m instanceof Attention ? [m.qProj, m.kProj, m.vProj] : m instanceof MLP ? [m.gateProj, m.upProj] : null;
        if (group !== null) groups.set(group[0].weight, packGroup(group.map((l) => l.weight)));
      }
    });
    this.packed = { weights, groups };
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork;
  }

  /** Requests queued or running. */
  get pending(): number {
    return this.seqs.size;
  }

  /** Since start: preemptions, forked group members, prefix blocks reused, most KV blocks in use. */
  get counts(): Readonly<Scheduler<Seq>["counts"]> {
    return this.scheduler.counts;
  }

  /** Queue a request; it runs in the next steps. Throws on bad input or a request larger than the whole cache. */
  add(req: EngineRequest): RequestHandle {
    checkSampling(req.sampling);
    const v = this.model.config.vocabSize;
    if (req.prompt.length === 0) throw new GenerateError("[generate] a prompt is empty (add a BOS token)");
    for (const id of req.prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new GenerateError(`[generate] prompt id ${id} is outside [0, ${v})`);
    }
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
      throw new GenerateError(`[generate] maxNewTokens must be an integer >= 1 for the engine, got ${req.maxNewTokens}`);
    }
    if ((req.stop?.length ?? 0) > 0 && req.tokenizer === undefined) throw new GenerateError("[generate] stop strings need a tokenizer");
    const ns = req.adapter ?? "";
    if (ns !== "" && this.opts.useAdapter === undefined)
      throw new GenerateError(`[engine] adapter "${ns}" asked, but the engine has no adapter hook`);
    const seq = new Seq(this.nextId++, req, ns, this.opts.prefixSharing ?? true);
    this.scheduler.add(seq);
    this.seqs.set(seq.id, seq);
    return { id: seq.id };
  }

  /** Drop a request (a client went away): its blocks are freed now, it gets no more callbacks. */
  cancel(handle: RequestHandle): void {
    const seq = this.seqs.get(handle.id);
    if (seq === undefined) return;
    seq.cancelled = true;
    this.scheduler.finish(seq);
    this.seqs.delete(seq.id);
  }

  /** One scheduling step: compute the chosen tokens, sample where a sequence's pending tokens end. */
  step(): void {
    const items = this.scheduler.schedule();
    if (items.length === 0) {
      if (this.scheduler.hasWork)
        throw new GenerateError("[engine] nothing could be scheduled (KV cache too small for any waiting request)");
      return;
    }
    this.stats.steps++;
    this.stats.maxRunning = Math.max(this.stats.maxRunning, this.scheduler.running.length);
    // every tensor of a step is dead once its tokens are appended (ids and log-probs are copied out), so the
    // step's buffers come from the pool and all go back to it: no per-step allocation or GC of activations
    noGrad(() =>
      withBufferPool(() => {
        try {
          this.stepInPool(items);
        } finally {
          for (const b of takeRecentBuffers()) releaseBuffer(b);
        }
      }),
    );
  }

  private stepInPool(items: ScheduledSeq<Seq>[]): void {
    withPackedWeights(this.packed, () => {
      // one forward per adapter present in the step, in order of first appearance
      const groups = new Map<string, ScheduledSeq<Seq>[]>();
      for (const it of items) (groups.get(it.seq.ns) ?? groups.set(it.seq.ns, []).get(it.seq.ns))?.push(it);
      const results: { rows: LogitRow[]; logits: Tensor }[] = [];
      for (const [ns, group] of groups) {
        this.opts.useAdapter?.(ns);
        results.push(this.forward(group));
      }
      this.scheduler.computed(items);
      for (const r of results) this.consume(r.rows, r.logits);
    });
  }

  /** Run until every queued request is done. */
  runToCompletion(): void {
    while (this.scheduler.hasWork) this.step();
  }

  /** The packed forward of one step's items; returns the logits of the rows that are sampled or scored. */
  private forward(items: readonly ScheduledSeq<Seq>[]): { rows: LogitRow[]; logits: Tensor } {
    const bs = this.cache.blockSize;
    let n = 0;
    let maxBlocks = 1;
    for (const it of items) {
      n += it.count;
      maxBlocks = Math.max(maxBlocks, blocksFor(it.start + it.count, bs));
    }
    const ids = new Int32Array(n);
    const positions = new Int32Array(n);
    const slots = new Int32Array(n);
    const tables = new Int32Array(items.length * maxBlocks);
    const contextLens = new Int32Array(items.length);
    const queryStarts = new Int32Array(items.length + 1);
    const rows: LogitRow[] = [];
    let p = 0;
    items.forEach((it, i) => {
      const { seq, start, count } = it;
      for (let t = start; t < start + count; t++, p++) {
        ids[p] = seq.tokens[t];
        positions[p] = t;
        slots[p] = seq.blocks[Math.floor(t / bs)] * bs + (t % bs);
        if (seq.promptLps !== null && t + 1 < seq.promptLen && t + 1 >= seq.promptLps.length) rows.push({ row: p, seq, promptPos: t });
      }
      for (let b = 0; b < blocksFor(start + count, bs); b++) tables[i * maxBlocks + b] = seq.blocks[b];
      contextLens[i] = start + count;
      queryStarts[i + 1] = p;
      if (it.sample) rows.push({ row: p - 1, seq, promptPos: -1 });
    });
    this.stats.computed += n;
    const hidden = this.model.forwardHidden({
      inputIds: fromArray(ids, [1, n]),
      positionIds: fromArray(positions, [1, n]),
      kvCache: this.cache.step(slots, { blockTables: tables, contextLens, queryStarts, maxBlocks }),
    }); // (1, N, D)
    const d = hidden.shape[2];
    const picked = indexSelect(
      reshape(hidden, [n, d]),
      fromArray(
        Int32Array.from(rows, (r) => r.row),
        [rows.length],
      ),
    ); // (R, D)
    return { rows, logits: linear(picked, this.model.lmHeadWeight) }; // (R, V)
  }

  /** Score prompt rows, sample the others (a leader's row also samples its forked followers), finish requests. */
  private consume(rows: readonly LogitRow[], logits: Tensor): void {
    const v = logits.shape[1];
    // prompt scores and top log-probs read logits on the host: download them only when a row needs them
    let hostLogits: (ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }) | null = null;
    const lg = () => (hostLogits ??= logits.hostData());
    const sampleSeqs: Seq[] = [];
    const sampleRows: number[] = [];
    rows.forEach((r, i) => {
      if (r.promptPos >= 0) {
        this.scorePrompt(r.seq, r.promptPos, lg().subarray(i * v, (i + 1) * v));
        return;
      }
      if (r.seq.state !== "running") return;
      sampleSeqs.push(r.seq);
      sampleRows.push(i);
      for (const f of this.scheduler.fork(r.seq)) {
        sampleSeqs.push(f);
        sampleRows.push(i);
      }
    });
    if (sampleSeqs.length === 0) return;
    const m = sampleSeqs.length;
    const sr: SamplingRows = {
      temperature: new Float32Array(m),
      topK: new Int32Array(m),
      topP: new Float32Array(m),
      minP: new Float32Array(m),
      uniform: new Float32Array(m),
    };
    sampleSeqs.forEach((s, i) => {
      const o = s.req.sampling;
      sr.temperature[i] = s.temperature;
      sr.topK[i] = o.topK ?? 0;
      sr.topP[i] = o.topP ?? 1;
      sr.minP[i] = o.minP ?? 0;
      sr.uniform[i] = s.temperature > 0 ? s.req.rng.next() : 0;
    });
    const same = sampleRows.length === rows.length && sampleRows.every((r, i) => r === i);
    const x = same ? logits : indexSelect(logits, fromArray(Int32Array.from(sampleRows), [m])); // (m, V)
    const { ids, logprobs } = sampleTokens(x, sr);
    let xh: ReturnType<Tensor["hostData"]> | null = null;
    const xHost = () => (xh ??= x.hostData());
    this.stats.sampled += m;
    sampleSeqs.forEach((s, i) => {
      const k = s.req.topLogprobs ?? 0;
      const top = k > 0 ? topLogprobs(xHost().subarray(i * v, (i + 1) * v), k, s.temperature > 0 ? s.temperature : 1).top : [];
      this.append(s, ids[i], logprobs[i], top);
    });
  }

  private scorePrompt(seq: Seq, pos: number, row: ArrayLike<number>): void {
    const lps = seq.promptLps as (PromptTokenLogprob | null)[];
    const id = seq.tokens[pos + 1];
    const { top, lse } = topLogprobs(row, seq.req.promptLogprobs ?? 0, 1);
    let rank = 1;
    for (let q = 0; q < row.length; q++) if (row[q] > row[id]) rank++;
    lps.push({ id, logprob: Math.max(LOGPROB_FLOOR, row[id] - lse), rank, top });
  }

  private append(seq: Seq, id: number, logprob: number, top: TopEntry[]): void {
    const req = seq.req;
    seq.tokens.push(id);
    seq.completion.push(id);
    seq.logprobs.push(logprob);
    seq.top.push(top);
    const index = seq.completion.length - 1;
    req.onToken?.(
      index === 0 && seq.promptLps !== null ? { index, id, logprob, top, promptLogprobs: seq.promptLps } : { index, id, logprob, top },
    );
    if (req.eos?.has(id)) seq.finish = "eos";
    else if ((req.stop?.length ?? 0) > 0) {
      seq.text = (req.tokenizer as Pick<Tokenizer, "decode">).decode(seq.completion, { skipSpecialTokens: req.skipSpecialTokens ?? true });
      const cut = matchStop(seq.text, req.stop ?? [], req.includeStopStrInOutput ?? false);
      if (cut !== null) {
        seq.text = cut;
        seq.finish = "stop";
      }
    }
    if (seq.finish === null && seq.completion.length >= req.maxNewTokens) seq.finish = "length";
    if (seq.finish === null || seq.cancelled) return;
    this.scheduler.finish(seq);
    this.seqs.delete(seq.id);
    req.onFinish?.(this.result(seq));
  }

  private result(seq: Seq): EngineResult {
    const req = seq.req;
    const out: EngineResult = {
      promptIds: [...req.prompt],
      completionIds: seq.completion,
      logprobs: seq.logprobs,
      finishReason: seq.finish as FinishReason,
      top: seq.top,
      promptLogprobs: seq.promptLps,
    };
    if (req.tokenizer !== undefined) {
      out.text =
        seq.finish === "stop" ? seq.text : req.tokenizer.decode(seq.completion, { skipSpecialTokens: req.skipSpecialTokens ?? true });
    }
    return out;
  }
}
