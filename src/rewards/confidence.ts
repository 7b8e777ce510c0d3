// Self-certainty: a causal LM's own token log-probs as a verifier, with no labels and no training. A step scores
// the lowest log-prob among its tokens (step text + separator), a solution (aggregate "min") the lowest over its
// steps: an arithmetic slip sampled at T = 1 is one token drawn from the tail of the policy's distribution, and what
// follows it is likely. Kang et al. 2025 (2502.18581) rank best-of-N by the policy's self-certainty; the lab uses
// the policy that sampled the solutions. Steps are tokenized one by one after the prompt, as PRM rows are
// (row_tokenize.ts), so with a BPE tokenizer a boundary may split differently from the sampled text.
// Not here: trained verifiers (scoring.ts), the step generator (labels/model_generator.ts).

import { batchLogprobs, collate } from "../data/batch.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { noGrad } from "../tensor/index.js";
import type { BatchOutcomeScorer, StepScorer } from "./interfaces.js";
import type { ScoredRow } from "./scoring.js";

export interface ConfidenceScorerOptions {
  /** Text appended to every step (the separator the solutions were sampled with). Default "\n". */
  stepSeparator?: string;
  /** Add the tokenizer's special tokens (BOS) before the prompt, as generation does. Default true. */
  addSpecialTokens?: boolean;
  /** Rows per forward pass. Default 32. */
  batchSize?: number;
}

/** Per-step min token log-prob under `model` (higher: more certain). */
export class ConfidenceScorer implements StepScorer {
  readonly stepSeparator: string;
  readonly addSpecialTokens: boolean;
  readonly batchSize: number;

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer,
    opts: ConfidenceScorerOptions = {},
  ) {
    this.stepSeparator = opts.stepSeparator ?? "\n";
    if (this.stepSeparator === "") throw new Error("[ConfidenceScorer] stepSeparator must not be empty (a step needs a token)");
    this.addSpecialTokens = opts.addSpecialTokens ?? true;
    this.batchSize = opts.batchSize ?? 32;
  }

  /** Token ids of prompt + steps and each step's [start, end) token range. */
  encode(row: ScoredRow): { ids: number[]; spans: [number, number][] } {
    const ids = this.tokenizer.encode(row.prompt, { addSpecialTokens: this.addSpecialTokens });
    const spans: [number, number][] = [];
    for (const step of row.steps) {
      const start = ids.length;
      ids.push(...this.tokenizer.encode(step + this.stepSeparator, { addSpecialTokens: false }));
      spans.push([start, ids.length]);
    }
    return { ids, spans };
  }

  async scoreSteps(prompt: string, steps: readonly string[]): Promise<number[]> {
    return (await this.scoreBatch([{ prompt, steps }]))[0];
  }

  /** Per-step scores of many solutions, `batchSize` rows per forward. A solution with no steps gets []. */
  async scoreBatch(rows: readonly ScoredRow[]): Promise<number[][]> {
    const pad = this.tokenizer.padTokenId ?? this.tokenizer.eosTokenId ?? 0;
    const out: number[][] = [];
    for (let b = 0; b < rows.length; b += this.batchSize) {
      const enc = rows.slice(b, b + this.batchSize).map((r) => this.encode(r));
      const batch = collate(
        enc.map((e) => ({ ids: e.ids, lossMask: [] })),
        pad,
      );
      const lp = noGrad(() => batchLogprobs(this.model, batch)).hostData();
      const t = batch.inputIds.shape[1];
      enc.forEach((e, r) => {
        out.push(
          e.spans.map(([s, end]) => {
            let m = Number.POSITIVE_INFINITY;
            for (let j = s; j < end; j++) m = Math.min(m, lp[r * t + j]);
            return m;
          }),
        );
      });
    }
    return out;
  }

  /** The solution score: its least certain step. */
  outcome(): BatchOutcomeScorer {
    const least = (xs: readonly number[]) => (xs.length === 0 ? Number.NEGATIVE_INFINITY : Math.min(...xs));
    return {
      scoreSolution: async (prompt, steps) => least(await this.scoreSteps(prompt, steps)),
      scoreBatch: async (rows) => (await this.scoreBatch(rows)).map(least),
    };
  }
}
