// Continuous batching over the paged KV cache, after vLLM's scheduler: every step first serves the running sequences
// (one decode token each, or the next chunk of a long prefill), then admits waiting ones FCFS while the token budget,
// the sequence limit and free blocks allow, so requests join and leave the batch at any step and prefill and decode
// share one forward. A request that does not fit waits; when a running sequence needs a block and none is free, the
// most recently admitted one is preempted (its blocks are freed and it is recomputed later, generated tokens kept).
// Prefix sharing: identical waiting prompts (a GRPO group, n > 1) join the first as followers and fork from it once
// its prefill is done (they share every block, the partial last one by copy-on-write); other requests reuse live
// full blocks with the same content (paged_cache.ts index). Not here: sampling, stop rules (engine.ts).

import { blocksFor, type PagedKVCache } from "./paged_cache.js";

export type SeqState = "waiting" | "running" | "forked" | "done";

/** What the scheduler reads and writes on a sequence (the engine's sequences carry more). */
export interface SchedSeq {
  readonly id: number;
  /** Prefix-sharing namespace: sequences share blocks only within one (e.g. one LoRA adapter). */
  readonly ns: string;
  /** Prompt and generated tokens; the engine appends. */
  readonly tokens: number[];
  /** Most tokens it can ever hold (prompt + max new tokens). */
  readonly maxLen: number;
  /** May reuse others' blocks (off when every prompt position must be computed, e.g. prompt log-probs). */
  readonly sharePrefix: boolean;
  /** Tokens whose keys/values are in its blocks. */
  numComputed: number;
  blocks: number[];
  /** Leading blocks already offered to the prefix index. */
  registered: number;
  state: SeqState;
  /** Identical prompts waiting for this sequence's prefill (state "forked"). */
  followers: SchedSeq[];
}

/** One sequence's share of a step: tokens [start, start + count) are computed; sample: its last one is new. */
export interface ScheduledSeq<S extends SchedSeq> {
  seq: S;
  start: number;
  count: number;
  /** The step computes its last pending token, so the logits of that position pick its next token. */
  sample: boolean;
}

export interface SchedulerOptions {
  /** Tokens in one step at most (decode tokens + prefill chunks). */
  maxBatchTokens: number;
  /** Sequences in the running batch at most (followers count). */
  maxRunning: number;
}

export class SchedulerError extends Error {
  override name = "SchedulerError";
}

export class Scheduler<S extends SchedSeq> {
  readonly waiting: S[] = [];
  readonly running: S[] = [];
  /** Since start: preemptions, sequences forked from a leader, blocks reused from the prefix index, most blocks in use. */
  readonly counts = { preemptions: 0, forked: 0, prefixBlocks: 0, peakBlocks: 0 };

  constructor(
    readonly cache: PagedKVCache,
    readonly opts: SchedulerOptions,
  ) {}

  /** Queue a sequence; throws when it could never fit in the whole cache. */
  add(seq: S): void {
    const need = blocksFor(seq.maxLen, this.cache.blockSize);
    if (need > this.cache.numBlocks) {
      throw new SchedulerError(
        `[scheduler] a request of up to ${seq.maxLen} tokens needs ${need} KV blocks of ${this.cache.blockSize}; the cache holds ${this.cache.numBlocks} (raise the KV cache memory)`,
      );
    }
    seq.state = "waiting";
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Sequences taking a running slot (running and forked followers). */
  private get occupied(): number {
    let n = this.running.length;
    for (const s of this.running) n += s.followers.length;
    return n;
  }

  /** Plan one step: which tokens of which sequences to compute. Allocates blocks, may preempt. */
  schedule(): ScheduledSeq<S>[] {
    const items: ScheduledSeq<S>[] = [];
    let budget = this.opts.maxBatchTokens;
    let preempted = false;
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i];
      const n = Math.min(seq.tokens.length - seq.numComputed, budget);
      if (n <= 0) continue;
      // free blocks by preempting from the back until this one fits, or it is the one preempted
      let fits = this.reserve(seq, seq.numComputed + n);
      while (!fits) {
        const victim = this.running[this.running.length - 1];
        this.preempt(victim);
        preempted = true;
        if (victim === seq) break;
        fits = this.reserve(seq, seq.numComputed + n);
      }
      if (!fits) break; // seq itself went back to waiting and it was the last running one
      items.push({ seq, start: seq.numComputed, count: n, sample: seq.numComputed + n === seq.tokens.length });
      budget -= n;
    }
    if (preempted) return items; // no admissions while memory is short (vLLM)
    while (this.waiting.length > 0 && budget > 0 && this.occupied < this.opts.maxRunning) {
      const seq = this.waiting[0];
      if (seq.numComputed === 0 && seq.sharePrefix) this.matchPrefix(seq);
      const n = Math.min(seq.tokens.length - seq.numComputed, budget);
      const need = this.newBlocks(seq, seq.numComputed + n);
      // keep a block in reserve for the running batch's next decode steps, unless nothing runs
      const reserve = this.running.length > 0 ? Math.max(1, Math.floor(this.cache.numBlocks / 100)) : 0;
      if (need + reserve > this.cache.allocator.numFree) {
        this.releaseBlocks(seq); // give back matched prefix blocks while it waits
        break;
      }
      this.waiting.shift();
      this.reserve(seq, seq.numComputed + n);
      seq.state = "running";
      this.running.push(seq);
      if (seq.sharePrefix) this.gatherFollowers(seq);
      items.push({ seq, start: seq.numComputed, count: n, sample: seq.numComputed + n === seq.tokens.length });
      budget -= n;
    }
    return items;
  }

  /** After the step's forward: the scheduled tokens are cached; full blocks become findable by content. */
  computed(items: readonly ScheduledSeq<S>[]): void {
    const bs = this.cache.blockSize;
    for (const { seq, count } of items) {
      if (seq.state !== "running") continue;
      seq.numComputed += count;
      const full = Math.floor(seq.numComputed / bs);
      for (let b = seq.registered; b < full; b++) {
        this.cache.register(seq.ns, b === 0 ? -1 : seq.blocks[b - 1], seq.tokens.slice(b * bs, (b + 1) * bs), seq.blocks[b]);
      }
      seq.registered = Math.max(seq.registered, full);
    }
  }

  /** Start the followers of a leader whose prefill is done: they share all its blocks. Returns them. */
  fork(leader: S): S[] {
    const out = leader.followers as S[];
    leader.followers = [];
    for (const f of out) {
      for (const b of leader.blocks) this.cache.allocator.retain(b);
      f.blocks = [...leader.blocks];
      f.numComputed = leader.numComputed;
      f.registered = leader.registered;
      f.state = "running";
      this.running.push(f);
    }
    this.counts.forked += out.length;
    return out;
  }

  /** A sequence is done (finished or cancelled): its blocks go back, it leaves every queue. */
  finish(seq: S): void {
    if (seq.state === "forked") {
      for (const s of this.running) {
        const at = s.followers.indexOf(seq);
        if (at >= 0) s.followers.splice(at, 1);
      }
    }
    this.detachFollowers(seq);
    remove(this.running, seq);
    remove(this.waiting, seq);
    this.releaseBlocks(seq);
    seq.state = "done";
  }

  private preempt(seq: S): void {
    this.counts.preemptions++;
    this.detachFollowers(seq);
    remove(this.running, seq);
    this.releaseBlocks(seq);
    seq.state = "waiting";
    this.waiting.unshift(seq);
  }

  /** A leader leaving before its prefill is done sends its followers back to the queue front, in order. */
  private detachFollowers(seq: S): void {
    if (seq.followers.length === 0) return;
    const fs = seq.followers as S[];
    seq.followers = [];
    for (const f of fs) f.state = "waiting";
    this.waiting.unshift(...fs);
  }

  private releaseBlocks(seq: S): void {
    for (const b of seq.blocks) this.cache.allocator.release(b);
    seq.blocks = [];
    seq.numComputed = 0;
    seq.registered = 0;
  }

  /** Blocks to allocate (copy-on-write included) so seq can hold `upto` tokens. */
  private newBlocks(seq: S, upto: number): number {
    const bs = this.cache.blockSize;
    let need = Math.max(0, blocksFor(upto, bs) - seq.blocks.length);
    const first = Math.floor(seq.numComputed / bs); // the block the next write lands in
    if (first < seq.blocks.length && upto > seq.numComputed && this.cache.allocator.refCount(seq.blocks[first]) > 1) need++;
    return need;
  }

  /** Give seq the blocks for `upto` tokens, copying a shared block it is about to write; false if short. */
  private reserve(seq: S, upto: number): boolean {
    if (this.newBlocks(seq, upto) > this.cache.allocator.numFree) return false;
    const bs = this.cache.blockSize;
    const first = Math.floor(seq.numComputed / bs);
    if (first < seq.blocks.length && upto > seq.numComputed && this.cache.allocator.refCount(seq.blocks[first]) > 1) {
      seq.blocks[first] = this.cache.copyOnWrite(seq.blocks[first]);
      seq.registered = Math.min(seq.registered, first);
    }
    while (seq.blocks.length < blocksFor(upto, bs)) seq.blocks.push(this.cache.allocator.allocate());
    this.counts.peakBlocks = Math.max(this.counts.peakBlocks, this.cache.allocator.numUsed);
    return true;
  }

  /** Reuse live full blocks holding this prompt's prefix (at least one prompt token is left to compute). */
  private matchPrefix(seq: S): void {
    const bs = this.cache.blockSize;
    const max = Math.floor((seq.tokens.length - 1) / bs);
    let parent = -1;
    for (let b = 0; b < max; b++) {
      const hit = this.cache.lookup(seq.ns, parent, seq.tokens.slice(b * bs, (b + 1) * bs));
      if (hit === undefined) break;
      this.cache.allocator.retain(hit);
      this.counts.prefixBlocks++;
      seq.blocks.push(hit);
      parent = hit;
    }
    seq.numComputed = seq.blocks.length * bs;
    seq.registered = seq.blocks.length;
  }

  /** Waiting sequences with the same namespace and tokens follow seq until its prefill is done. */
  private gatherFollowers(seq: S): void {
    for (let i = 0; i < this.waiting.length && this.occupied < this.opts.maxRunning; ) {
      const w = this.waiting[i];
      if (w.sharePrefix && w.numComputed === 0 && w.ns === seq.ns && sameTokens(w.tokens, seq.tokens)) {
        this.waiting.splice(i, 1);
        w.state = "forked";
        seq.followers.push(w);
      } else i++;
    }
  }
}

function remove<T>(xs: T[], x: T): void {
  const at = xs.indexOf(x);
  if (at >= 0) xs.splice(at, 1);
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
