// A StepGenerator backed by a local CausalLM and its tokenizer: the context is prompt + steps joined with the
// separator; nextSteps samples n single steps (generation stops at the separator), complete samples n full
// continuations (until eos or the token budget) split into steps. Counts every step produced in stepsGenerated.
// Also counts tokens and sequences sampled (tokensGenerated, sequencesGenerated) for equal-budget comparisons.
// Not here: remote generation, batching across different prefixes, or KV reuse between calls.

import { type GenerateOptions, type GenerativeLM, generate } from "../../generate/generate.js";
import type { SamplingOptions } from "../../generate/sampling.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import { Rng } from "../../nn/rng.js";
import type { StepGenerator } from "../interfaces.js";
import { DEFAULT_SEPARATOR, joinSteps, LabelError, splitSteps } from "./steps.js";

export interface ModelGeneratorOptions extends SamplingOptions {
  /** Step separator (default "\n"). */
  separator?: string;
  /** Token budget of one step (nextSteps). Default 64. */
  maxStepTokens?: number;
  /** Token budget of one full continuation (complete). Default 512. */
  maxCompletionTokens?: number;
  /** A step that ends the solution (e.g. the answer line): completions are cut after it, and a prefix ending in one gets no continuation. */
  isFinal?: (step: string) => boolean;
  /** Most rows in one generate call when concurrent requests are merged. Default 256. */
  maxBatch?: number;
  /** Seed of the sampling stream (advanced across calls). Default 0. */
  seed?: number;
  /** Prepend the tokenizer's special tokens (BOS) when encoding. Default true. */
  addSpecialTokens?: boolean;
}

export class ModelStepGenerator implements StepGenerator {
  private generated = 0;
  private tokens = 0;
  private rowsSampled = 0;
  private readonly rng: Rng;
  private readonly sep: string;

  constructor(
    readonly model: GenerativeLM,
    readonly tokenizer: Tokenizer,
    readonly opts: ModelGeneratorOptions = {},
  ) {
    this.sep = opts.separator ?? DEFAULT_SEPARATOR;
    if (this.sep === "") throw new LabelError("[ModelStepGenerator] separator is empty");
    this.rng = new Rng(opts.seed ?? 0);
  }

  get stepsGenerated(): number {
    return this.generated;
  }

  /** Tokens sampled so far (every row of every generate call, up to its stop or budget). */
  get tokensGenerated(): number {
    return this.tokens;
  }

  /** Sequences sampled so far: one per continuation asked of complete() or nextSteps(). */
  get sequencesGenerated(): number {
    return this.rowsSampled;
  }

  /** Requests waiting for the next flush, one queue per kind of request (their generate options differ). */
  private readonly queues = new Map<
    string,
    {
      rows: number[][];
      extra: Partial<GenerateOptions> & { maxNewTokens: number };
      waiters: { from: number; n: number; resolve: (t: string[]) => void; reject: (e: unknown) => void }[];
    }
  >();

  /**
   * Texts of n continuations of prompt + prefix. Calls made in the same tick (e.g. mcLabels over many
   * solutions under Promise.all) are merged into one batched generate call, in call order, so the random
   * stream stays deterministic.
   */
  private run(
    prompt: string,
    prefix: readonly string[],
    n: number,
    kind: string,
    extra: Partial<GenerateOptions> & { maxNewTokens: number },
  ): Promise<string[]> {
    if (!Number.isInteger(n) || n < 0) throw new LabelError(`[ModelStepGenerator] n must be an integer >= 0, got ${n}`);
    if (n === 0) return Promise.resolve([]);
    const ids = this.tokenizer.encode(prompt + joinSteps(prefix, this.sep), { addSpecialTokens: this.opts.addSpecialTokens ?? true });
    let q = this.queues.get(kind);
    if (q === undefined) {
      const created = {
        rows: [] as number[][],
        extra,
        waiters: [] as { from: number; n: number; resolve: (t: string[]) => void; reject: (e: unknown) => void }[],
      };
      this.queues.set(kind, created);
      setImmediate(() => this.flush(kind));
      q = created;
    }
    const queue = q;
    return new Promise<string[]>((resolve, reject) => {
      queue.waiters.push({ from: queue.rows.length, n, resolve, reject });
      for (let i = 0; i < n; i++) queue.rows.push(ids);
    });
  }

  private flush(kind: string): void {
    const q = this.queues.get(kind);
    if (q === undefined) return;
    this.queues.delete(kind);
    try {
      const { temperature, topK, topP, minP, doSample } = this.opts;
      const texts: string[] = [];
      const chunk = this.opts.maxBatch ?? 256;
      for (let i = 0; i < q.rows.length; i += chunk) {
        const gens = generate(this.model, q.rows.slice(i, i + chunk), {
          temperature,
          topK,
          topP,
          minP,
          doSample,
          tokenizer: this.tokenizer,
          rng: this.rng,
          ...q.extra,
        });
        for (const g of gens) {
          texts.push(g.text ?? "");
          this.tokens += g.completionIds.length;
        }
        this.rowsSampled += gens.length;
      }
      for (const w of q.waiters) w.resolve(texts.slice(w.from, w.from + w.n));
    } catch (e) {
      for (const w of q.waiters) w.reject(e);
    }
  }

  private ended(prefix: readonly string[]): boolean {
    const f = this.opts.isFinal;
    return f !== undefined && prefix.length > 0 && f(prefix[prefix.length - 1]!);
  }

  async nextSteps(prompt: string, prefix: readonly string[], n: number): Promise<string[]> {
    if (this.ended(prefix)) return [];
    const out = await this.run(prompt, prefix, n, "step", { maxNewTokens: this.opts.maxStepTokens ?? 64, stop: [this.sep] });
    this.generated += out.length;
    return out;
  }

  async complete(prompt: string, prefix: readonly string[], n: number): Promise<string[][]> {
    if (this.ended(prefix)) return Array.from({ length: n }, () => []);
    const texts = await this.run(prompt, prefix, n, "complete", { maxNewTokens: this.opts.maxCompletionTokens ?? 512 });
    return texts.map((t) => {
      let steps = splitSteps(t, this.sep);
      const f = this.opts.isFinal;
      if (f !== undefined) {
        const end = steps.findIndex(f);
        if (end >= 0) steps = steps.slice(0, end + 1);
      }
      this.generated += steps.length;
      return steps;
    });
  }
}
