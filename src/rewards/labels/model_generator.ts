// A StepGenerator backed by a local CausalLM and its tokenizer: the context is prompt + steps joined with the
// separator; nextSteps samples n single steps (generation stops at the separator), complete samples n full
// continuations (until eos or the token budget) split into steps. Counts every step produced in stepsGenerated.
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
  /** Seed of the sampling stream (advanced across calls). Default 0. */
  seed?: number;
  /** Prepend the tokenizer's special tokens (BOS) when encoding. Default true. */
  addSpecialTokens?: boolean;
}

export class ModelStepGenerator implements StepGenerator {
  private generated = 0;
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

  private run(prompt: string, prefix: readonly string[], n: number, extra: Partial<GenerateOptions> & { maxNewTokens: number }): string[] {
    if (!Number.isInteger(n) || n < 0) throw new LabelError(`[ModelStepGenerator] n must be an integer >= 0, got ${n}`);
    if (n === 0) return [];
    const ids = this.tokenizer.encode(prompt + joinSteps(prefix, this.sep), { addSpecialTokens: this.opts.addSpecialTokens ?? true });
    const { temperature, topK, topP, minP, doSample } = this.opts;
    const gens = generate(
      this.model,
      Array.from({ length: n }, () => ids),
      { temperature, topK, topP, minP, doSample, tokenizer: this.tokenizer, rng: this.rng, ...extra },
    );
    return gens.map((g) => g.text ?? "");
  }

  private ended(prefix: readonly string[]): boolean {
    const f = this.opts.isFinal;
    return f !== undefined && prefix.length > 0 && f(prefix[prefix.length - 1]!);
  }

  async nextSteps(prompt: string, prefix: readonly string[], n: number): Promise<string[]> {
    if (this.ended(prefix)) return [];
    const out = this.run(prompt, prefix, n, { maxNewTokens: this.opts.maxStepTokens ?? 64, stop: [this.sep] });
    this.generated += out.length;
    return out;
  }

  async complete(prompt: string, prefix: readonly string[], n: number): Promise<string[][]> {
    if (this.ended(prefix)) return Array.from({ length: n }, () => []);
    const texts = this.run(prompt, prefix, n, { maxNewTokens: this.opts.maxCompletionTokens ?? 512 });
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
