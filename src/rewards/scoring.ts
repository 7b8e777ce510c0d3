// Scoring solutions with trained reward models: `PrmScorer` (a 2-label TokenClassifier read at every step end,
// P(correct) = softmax(logits)[1], Lightman et al. 2305.20050 / TRL PRMTrainer layout) and `OrmScorer` (a
// SequenceClassifier's scalar at the last real token, as TRL's RewardTrainer). Inputs are tokenized by the
// trainers' tokenisation (data/row_tokenize.ts), so scores are read where labels were trained.
// Not here: generative verifiers (ThinkPRM) and Titans surprise (their own files), search (src/search/).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { collate } from "../data/batch.js";
import { type PrmRowOptions, tokenizePrmRow, tokenizeRewardRow } from "../data/row_tokenize.js";
import { joinSteps } from "../data/tasks/task.js";
import { expectFolderKind } from "../io/folder_kind.js";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { loadClassifier, SequenceClassifier, TokenClassifier } from "../models/heads.js";
import { noGrad, sigmoid } from "../tensor/index.js";
import {
  aggregateScorer,
  type BatchOutcomeScorer,
  type OutcomeScorer,
  STEP_AGGREGATIONS,
  type StepAggregation,
  type StepScorer,
} from "./interfaces.js";

export class ScoringError extends Error {
  override name = "ScoringError";
}

/** A solution to score: the prompt and its steps (text without separators). */
export interface ScoredRow {
  prompt: string;
  steps: readonly string[];
}

export interface PrmScorerOptions {
  /** Text appended to every step (must be the PRM's training stepSeparator). Default "\n". */
  stepSeparator?: string;
  /** Keep the last N prompt tokens, as in training; null (default) keeps all. */
  maxPromptLength?: number | null;
  /** Rows per forward pass. Default 16. */
  batchSize?: number;
}

/** Token positions of the step ends in `tokenizePrmRow`'s ids (the positions that carry a label in training). */
export function prmStepPositions(tok: Tokenizer, row: ScoredRow, sep: string, maxPromptLength: number | null = null) {
  const cfg: PrmRowOptions = {
    stepSeparator: sep,
    trainOnLastStepOnly: false,
    maxLength: null,
    maxPromptLength,
    maxCompletionLength: null,
  };
  const e = tokenizePrmRow(tok, { prompt: row.prompt, completions: row.steps, labels: row.steps.map(() => true) }, cfg, true);
  const positions: number[] = [];
  e.labels.forEach((l, i) => {
    if (l !== -100) positions.push(i);
  });
  if (positions.length !== row.steps.length) {
    throw new ScoringError(
      `[PrmScorer] ${row.steps.length} steps but ${positions.length} step ends after tokenization (an empty separator?)`,
    );
  }
  return { ids: e.ids, positions };
}

/** Discriminative PRM: per-step P(correct) from a 2-label token classifier, batched over solutions. */
export class PrmScorer implements StepScorer {
  readonly stepSeparator: string;
  readonly maxPromptLength: number | null;
  readonly batchSize: number;
  /** Forward passes run (rows, not calls). */
  rowsScored = 0;

  constructor(
    readonly model: TokenClassifier,
    readonly tokenizer: Tokenizer,
    opts: PrmScorerOptions = {},
  ) {
    if (model.numLabels !== 2) throw new ScoringError(`[PrmScorer] the PRM needs num_labels 2, got ${model.numLabels}`);
    this.stepSeparator = opts.stepSeparator ?? "\n";
    if (this.stepSeparator === "") throw new ScoringError("[PrmScorer] stepSeparator must not be empty");
    this.maxPromptLength = opts.maxPromptLength ?? null;
    this.batchSize = opts.batchSize ?? 16;
  }

  async scoreSteps(prompt: string, steps: readonly string[]): Promise<number[]> {
    return (await this.scoreBatch([{ prompt, steps }]))[0];
  }

  /** Per-step scores of many solutions, `batchSize` rows per forward. A solution with no steps gets []. */
  async scoreBatch(rows: readonly ScoredRow[]): Promise<number[][]> {
    const out: number[][] = rows.map(() => []);
    const todo = rows.map((r, i) => ({ r, i })).filter(({ r }) => r.steps.length > 0);
    const pad = this.tokenizer.padTokenId ?? this.tokenizer.eosTokenId ?? 0;
    for (let b = 0; b < todo.length; b += this.batchSize) {
      const part = todo.slice(b, b + this.batchSize);
      const enc = part.map(({ r }) => prmStepPositions(this.tokenizer, r, this.stepSeparator, this.maxPromptLength));
      const batch = collate(
        enc.map((e) => ({ ids: e.ids, lossMask: [] })),
        pad,
      );
      const logits = noGrad(() =>
        this.model.logitsAt(
          { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
          enc.map((e) => e.positions),
        ),
      ); // (N, 2)
      const d = logits.hostData();
      let k = 0;
      part.forEach(({ i }, j) => {
        // softmax([l0, l1])[1] = sigmoid(l1 - l0)
        out[i] = enc[j].positions.map(() => {
          const p = 1 / (1 + Math.exp(d[2 * k] - d[2 * k + 1]));
          k++;
          return p;
        });
      });
      this.rowsScored += part.length;
    }
    return out;
  }

  /** This PRM as an OutcomeScorer (min / product / last / mean over steps). */
  aggregate(how: StepAggregation): BatchOutcomeScorer {
    const agg = STEP_AGGREGATIONS[how];
    return {
      ...aggregateScorer(this, how),
      scoreBatch: async (rows) => (await this.scoreBatch(rows)).map(agg),
    };
  }
}

export interface OrmScorerOptions {
  /** Separator that joins the steps into the completion text. Default "\n" (every step ends with it). */
  stepSeparator?: string;
  /** Map the raw reward through a sigmoid to (0, 1). Default false (the Bradley-Terry logit). */
  sigmoid?: boolean;
  /** Rows per forward pass. Default 16. */
  batchSize?: number;
}

/** ORM: the SequenceClassifier reward of prompt + joined steps (+ EOS), read at the last real token. */
export class OrmScorer implements OutcomeScorer {
  readonly stepSeparator: string;
  readonly sigmoid: boolean;
  readonly batchSize: number;
  rowsScored = 0;

  constructor(
    readonly model: SequenceClassifier,
    readonly tokenizer: Tokenizer,
    opts: OrmScorerOptions = {},
  ) {
    if (model.numLabels !== 1) throw new ScoringError(`[OrmScorer] the ORM needs num_labels 1, got ${model.numLabels}`);
    this.stepSeparator = opts.stepSeparator ?? "\n";
    this.sigmoid = opts.sigmoid ?? false;
    this.batchSize = opts.batchSize ?? 16;
  }

  /** Token ids exactly as RewardTrainer builds a chosen sequence: prompt + completion (+ EOS). */
  encode(prompt: string, steps: readonly string[]): number[] {
    const completion = joinSteps(steps, this.stepSeparator);
    return tokenizeRewardRow(this.tokenizer, { prompt, chosen: completion, rejected: completion }).chosen;
  }

  async scoreSolution(prompt: string, steps: readonly string[]): Promise<number> {
    return (await this.scoreBatch([{ prompt, steps }]))[0];
  }

  async scoreBatch(rows: readonly ScoredRow[]): Promise<number[]> {
    const out: number[] = [];
    const pad = this.tokenizer.padTokenId ?? this.tokenizer.eosTokenId ?? 0;
    for (let b = 0; b < rows.length; b += this.batchSize) {
      const part = rows.slice(b, b + this.batchSize);
      const batch = collate(
        part.map((r) => ({ ids: this.encode(r.prompt, r.steps), lossMask: [] })),
        pad,
      );
      const r = noGrad(() => {
        const raw = this.model.rewards({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }); // (B)
        return this.sigmoid ? sigmoid(raw) : raw;
      });
      out.push(...Array.from(r.hostData(), Number));
      this.rowsScored += part.length;
    }
    return out;
  }
}

/** The training config a trainer wrote next to the model (training_config.json), or {}. */
function trainingConfig(dir: string): Record<string, unknown> {
  const f = join(dir, "training_config.json");
  if (!existsSync(f)) return {};
  try {
    return JSON.parse(readFileSync(f, "utf-8")) as Record<string, unknown>;
  } catch (e) {
    throw new ScoringError(`[scoring] ${f}: cannot parse (${(e as Error).message})`);
  }
}

/** A PRM folder (TokenClassifier + tokenizer); the separator defaults to the one it was trained with. */
export function loadPrmScorer(dir: string, opts: PrmScorerOptions & { tokenizer?: string } = {}): PrmScorer {
  expectFolderKind(dir, ["token-classifier"], "scoring", "a PRM");
  const m = loadClassifier(dir, { kind: "token", numLabels: 2 });
  if (!(m instanceof TokenClassifier)) throw new ScoringError(`[scoring] ${dir} did not load as a token classifier`);
  const cfg = trainingConfig(dir);
  const sep = opts.stepSeparator ?? (typeof cfg.stepSeparator === "string" ? cfg.stepSeparator : undefined);
  const mpl = opts.maxPromptLength ?? (typeof cfg.maxPromptLength === "number" ? cfg.maxPromptLength : null);
  return new PrmScorer(m, loadTokenizer(opts.tokenizer ?? dir), { ...opts, stepSeparator: sep, maxPromptLength: mpl });
}

/** An ORM folder (SequenceClassifier with one label + tokenizer). */
export function loadOrmScorer(dir: string, opts: OrmScorerOptions & { tokenizer?: string } = {}): OrmScorer {
  expectFolderKind(dir, ["sequence-classifier"], "scoring", "an ORM");
  const m = loadClassifier(dir, { kind: "sequence", numLabels: 1 });
  if (!(m instanceof SequenceClassifier)) throw new ScoringError(`[scoring] ${dir} did not load as a sequence classifier`);
  return new OrmScorer(m, loadTokenizer(opts.tokenizer ?? dir), opts);
}
