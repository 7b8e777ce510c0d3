// Titans surprise as a reward signal (the memory of Behrouz et al. 2501.00663, src/models/titans.ts): a fresh
// memory is written with a frozen model's hidden states of prompt + solution; each token's surprise is the
// associative loss before its update (or the gradient norm), a step's surprise is the max or mean over its
// tokens, and Platt scaling or isotonic regression fitted on labelled validation steps turns it into P(step wrong).
// Not in the paper (it never uses memory as a reward; see reference §8.5): everything runs under noGrad, so
// the signal is detached from any policy gradient; it is a novelty score, only as good as its AUROC on gold labels.

import { joinSteps, splitSteps } from "../data/tasks/task.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { DecoderInputs } from "../models/decoder.js";
import type { NeuralMemory } from "../models/titans.js";
import { noGrad, type Tensor, tensor } from "../tensor/index.js";
import type { OutcomeScorer, StepScorer } from "./interfaces.js";
import { namedReward, RewardError, type RewardFn } from "./types.js";

/** What surprise needs from the frozen model: final hidden states [B, T, D] (CausalLM fits). */
export interface HiddenStateModel {
  forwardHidden(inputs: DecoderInputs): Tensor;
}

export type SurpriseSignal = "loss" | "gradNorm";
export type SurpriseAggregation = "max" | "mean";

const AGGREGATE: Record<SurpriseAggregation, (xs: readonly number[]) => number> = {
  max: (xs) => Math.max(...xs),
  mean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
};

export interface SurpriseOptions {
  /** Per-token signal: associative loss before the update (default) or ||∇ℓ||. */
  signal?: SurpriseSignal;
  /** How a step's tokens combine. Default "max". */
  aggregation?: SurpriseAggregation;
  /** Step separator appended to every step. Default "\n". */
  stepSeparator?: string;
  /** Tokens per memory chunk; default 1 (each token sees the memory after every earlier token). */
  chunkSize?: number;
}

export interface SolutionSurprise {
  /** Surprise of every token of prompt + solution. */
  tokens: number[];
  /** [start, end) token range of each step (its separator included). */
  spans: [number, number][];
  /** Aggregated surprise per step. */
  steps: number[];
}

/** Runs a fresh memory over a frozen model's hidden states and reads surprise per token and per step. */
export class SurpriseReader {
  readonly signal: SurpriseSignal;
  readonly aggregation: SurpriseAggregation;
  readonly separator: string;
  readonly chunkSize: number;

  constructor(
    readonly model: HiddenStateModel,
    readonly tokenizer: Pick<Tokenizer, "encode">,
    readonly memory: NeuralMemory,
    opts: SurpriseOptions = {},
  ) {
    this.signal = opts.signal ?? "loss";
    this.aggregation = opts.aggregation ?? "max";
    this.separator = opts.stepSeparator ?? "\n";
    this.chunkSize = opts.chunkSize ?? 1;
  }

  read(prompt: string, steps: readonly string[]): SolutionSurprise {
    if (steps.length === 0) return { tokens: [], spans: [], steps: [] };
    const enc = (s: string) => this.tokenizer.encode(s, { addSpecialTokens: false });
    const ids = enc(prompt + joinSteps(steps, this.separator));
    const spans: [number, number][] = [];
    let start = enc(prompt).length;
    for (let i = 0; i < steps.length; i++) {
      const end = i === steps.length - 1 ? ids.length : enc(prompt + joinSteps(steps.slice(0, i + 1), this.separator)).length;
      if (end <= start) throw new RewardError(`[surprise] step ${i} has no token of its own after tokenization`);
      spans.push([start, end]);
      start = end;
    }
    const tokens = noGrad(() => {
      const hidden = this.model.forwardHidden({ inputIds: tensor(ids, { dtype: "i32", shape: [1, ids.length] }) }); // (1, T, D)
      const run = this.memory.forward(hidden.dtype === "f32" ? hidden : hidden.cast("f32"), { chunkSize: this.chunkSize });
      return Array.from((this.signal === "loss" ? run.loss : run.gradNorm).hostData());
    });
    const agg = AGGREGATE[this.aggregation];
    return { tokens, spans, steps: spans.map(([a, b]) => agg(tokens.slice(a, b))) };
  }
}

// ---- calibration: surprise → P(step wrong) ------------------------------------------------------------

export interface Calibrator {
  readonly kind: "platt" | "isotonic";
  /** P(wrong) for a raw surprise score. */
  predict(score: number): number;
}

/**
 * Platt scaling: P(wrong) = σ(a·s + b), maximum likelihood by Newton's method (tiny ridge so separable data
 * stays finite). `wrong[i]` is true when step i is wrong.
 */
export function fitPlatt(
  scores: readonly number[],
  wrong: readonly boolean[],
  opts: { ridge?: number; iters?: number } = {},
): Calibrator & { a: number; b: number } {
  checkFit(scores, wrong, "fitPlatt");
  const ridge = opts.ridge ?? 1e-6;
  // standardise for conditioning, map back at the end
  const n = scores.length;
  const mu = scores.reduce((s, x) => s + x, 0) / n;
  const sd = Math.sqrt(scores.reduce((s, x) => s + (x - mu) ** 2, 0) / n) || 1;
  let a = 0;
  let b = 0;
  for (let it = 0; it < (opts.iters ?? 100); it++) {
    let ga = ridge * a;
    let gb = 0;
    let haa = ridge;
    let hab = 0;
    let hbb = 1e-12;
    for (let i = 0; i < n; i++) {
      const z = (scores[i]! - mu) / sd;
      const p = 1 / (1 + Math.exp(-(a * z + b)));
      const r = p - (wrong[i] ? 1 : 0);
      const w = p * (1 - p);
      ga += r * z;
      gb += r;
      haa += w * z * z;
      hab += w * z;
      hbb += w;
    }
    const det = haa * hbb - hab * hab;
    const da = (hbb * ga - hab * gb) / det;
    const db = (haa * gb - hab * ga) / det;
    a -= da;
    b -= db;
    if (Math.abs(da) + Math.abs(db) < 1e-12) break;
  }
  const A = a / sd;
  const B = b - (a * mu) / sd;
  return { kind: "platt", a: A, b: B, predict: (s) => 1 / (1 + Math.exp(-(A * s + B))) };
}

/**
 * Isotonic regression (pool-adjacent-violators): the non-decreasing step function of the score that best fits
 * the 0/1 labels in squared error; a new score takes the value of the block it falls in (between blocks: the
 * lower block's value, below the first: the first's).
 */
export function fitIsotonic(scores: readonly number[], wrong: readonly boolean[]): Calibrator & { thresholds: number[]; values: number[] } {
  checkFit(scores, wrong, "fitIsotonic");
  const order = scores.map((_, i) => i).sort((i, j) => scores[i]! - scores[j]!);
  const blocks: { lo: number; sum: number; n: number }[] = [];
  for (const i of order) {
    const s = scores[i]!;
    const last = blocks[blocks.length - 1];
    if (last !== undefined && last.lo === s) {
      last.sum += wrong[i] ? 1 : 0; // equal scores share one block
      last.n++;
    } else blocks.push({ lo: s, sum: wrong[i] ? 1 : 0, n: 1 });
    while (
      blocks.length > 1 &&
      blocks[blocks.length - 2]!.sum / blocks[blocks.length - 2]!.n >= blocks[blocks.length - 1]!.sum / blocks[blocks.length - 1]!.n
    ) {
      const top = blocks.pop() as { lo: number; sum: number; n: number };
      const prev = blocks[blocks.length - 1]!;
      prev.sum += top.sum;
      prev.n += top.n;
    }
  }
  const thresholds = blocks.map((x) => x.lo);
  const values = blocks.map((x) => x.sum / x.n);
  const predict = (s: number) => {
    let k = 0;
    while (k + 1 < thresholds.length && thresholds[k + 1]! <= s) k++;
    return values[k]!;
  };
  return { kind: "isotonic", thresholds, values, predict };
}

function checkFit(scores: readonly number[], wrong: readonly boolean[], tag: string): void {
  if (scores.length !== wrong.length || scores.length === 0) {
    throw new RewardError(`[${tag}] need equal, non-empty scores and labels, got ${scores.length} and ${wrong.length}`);
  }
  if (scores.some((s) => !Number.isFinite(s))) throw new RewardError(`[${tag}] scores must be finite`);
}

export type CalibrationMethod = "platt" | "isotonic";
const CALIBRATORS: Record<CalibrationMethod, (s: readonly number[], w: readonly boolean[]) => Calibrator> = {
  platt: (s, w) => fitPlatt(s, w),
  isotonic: (s, w) => fitIsotonic(s, w),
};

/** A labelled solution: `correct[i]` is the gold label of step i. */
export interface LabelledSolution {
  prompt: string;
  steps: readonly string[];
  correct: readonly boolean[];
}

/** Step surprise and wrong-step labels over a labelled set (steps after the first error included as labelled). */
export function collectStepSurprise(reader: SurpriseReader, rows: readonly LabelledSolution[]): { scores: number[]; wrong: boolean[] } {
  const scores: number[] = [];
  const wrong: boolean[] = [];
  for (const [r, row] of rows.entries()) {
    if (row.correct.length !== row.steps.length)
      throw new RewardError(`[surprise] row ${r}: ${row.steps.length} steps, ${row.correct.length} labels`);
    reader.read(row.prompt, row.steps).steps.forEach((s, i) => {
      scores.push(s);
      wrong.push(!row.correct[i]);
    });
  }
  return { scores, wrong };
}

/** Fit a calibrator on labelled validation rows (its AUROC is src/eval/surprise.ts calibrateSurprise). */
export function fitSurpriseCalibrator(reader: SurpriseReader, rows: readonly LabelledSolution[], method: CalibrationMethod = "platt") {
  const { scores, wrong } = collectStepSurprise(reader, rows);
  return { calibrator: CALIBRATORS[method](scores, wrong), scores, wrong };
}

/**
 * StepScorer / OutcomeScorer adapter: step i scores 1 − max_{j≤i} P(wrong_j) (the interface's "this step and
 * all before it are correct"); the solution scores its last step's value, i.e. 1 − max over steps.
 */
export class SurpriseScorer implements StepScorer, OutcomeScorer {
  constructor(
    readonly reader: SurpriseReader,
    readonly calibrator: Calibrator,
  ) {}

  /** P(wrong) of each step on its own. */
  stepWrongProbs(prompt: string, steps: readonly string[]): number[] {
    return this.reader.read(prompt, steps).steps.map((s) => this.calibrator.predict(s));
  }

  async scoreSteps(prompt: string, steps: readonly string[]): Promise<number[]> {
    let worst = 0;
    return this.stepWrongProbs(prompt, steps).map((p) => 1 - (worst = Math.max(worst, p)));
  }

  async scoreSolution(prompt: string, steps: readonly string[]): Promise<number> {
    const s = await this.scoreSteps(prompt, steps);
    return s.length === 0 ? 0 : s[s.length - 1]!;
  }
}

/** RewardFn `titans_surprise`: 1 − max step P(wrong) of each completion (split on the separator); null if empty. */
export function surpriseReward(scorer: SurpriseScorer, opts: { separator?: string; name?: string } = {}): RewardFn {
  const sep = opts.separator ?? scorer.reader.separator;
  return namedReward(opts.name ?? "titans_surprise", (args) =>
    args.completions.map((c, i) => {
      const steps = splitSteps(c, sep);
      if (steps.length === 0) return null;
      return 1 - Math.max(...scorer.stepWrongProbs(args.prompts[i] ?? "", steps));
    }),
  );
}
