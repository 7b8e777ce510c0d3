// Step-level beam search guided by a PRM (Snell et al. 2408.03314 §5.2, "BFS-V"): sample N first steps, score
// each prefix, keep the top N/M, expand each kept prefix with M next steps (N prefixes again), repeat until no
// beam is open or maxRounds. A kept prefix that ends with a final-answer step is collected as a finished
// candidate and stops expanding (HF search-and-learn does the same), so later rounds may hold fewer beams.
// The answer is the best final score, or a weighted / plain vote over the collected candidates.
// Differences: prefix score is an aggregation of the PRM's step scores (default "last", Snell's choice for an
// MC-trained PRM); beams cut by maxRounds are returned as unfinished candidates, used only if none finished.

import { type AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import { STEP_AGGREGATIONS, type StepAggregation, type StepGenerator, type StepScorer } from "../rewards/interfaces.js";
import {
  type Candidate,
  checkPositiveInt,
  type IsFinished,
  SearchError,
  type SearchResult,
  type Selection,
  scoreStepLists,
  selectResult,
  startBudget,
  statesAnswer,
} from "./common.js";

export interface BeamOptions {
  /** Total beams N: prefixes scored per round. */
  n: number;
  /** Expansions per kept beam M; N/M beams are kept each round (N must be a multiple of M). */
  width: number;
  /** Rounds (steps per solution) at most. Default 40 (Snell et al.). */
  maxRounds?: number;
  /** How step scores make a prefix's score when ranking beams. Default "last". */
  prefixAggregation?: StepAggregation;
  /** How step scores make a finished solution's score. Default: prefixAggregation. */
  finalAggregation?: StepAggregation;
  /** best (default), weighted or majority over the collected candidates. */
  selection?: Selection;
  isFinished?: IsFinished;
  /** How a solution's answer is read (final-answer test, voting keys); default DEFAULT_ANSWER. */
  answer?: AnswerExtractor;
}

/** Per-round trace: every scored candidate prefix and the prefixes kept (tests and reports read it). */
export interface SearchRound {
  candidates: { steps: string[]; value: number }[];
  kept: string[][];
}

export interface StepSearchResult extends SearchResult {
  rounds: SearchRound[];
}

/** Ranking value and final score of each candidate prefix (the one thing beam and lookahead differ in). */
export type PrefixEvaluator = (prompt: string, prefixes: readonly string[][]) => Promise<{ value: number; final: number }[]>;

export interface StepSearchOptions {
  n: number;
  width: number;
  maxRounds: number;
  selection: Selection;
  isFinished: IsFinished;
  answer: AnswerExtractor;
}

/** The shared loop of beam and lookahead search. `extraGens` are generators whose steps also count (rollouts). */
export async function stepSearch(
  gen: StepGenerator,
  evaluate: PrefixEvaluator,
  prompt: string,
  o: StepSearchOptions,
  extraGens: readonly StepGenerator[] = [],
  countCalls: () => number = () => 0,
): Promise<StepSearchResult> {
  checkPositiveInt("beam", "n", o.n);
  checkPositiveInt("beam", "width", o.width);
  checkPositiveInt("beam", "maxRounds", o.maxRounds);
  if (o.n % o.width !== 0) throw new SearchError(`[beam] n (${o.n}) must be a multiple of width (${o.width})`);
  const keep = o.n / o.width;
  const budget = startBudget([gen, ...extraGens]);
  let active: { steps: string[]; final: number }[] = [{ steps: [], final: Number.NEGATIVE_INFINITY }];
  const done: Candidate[] = [];
  const rounds: SearchRound[] = [];
  for (let r = 0; r < o.maxRounds && active.length > 0; r++) {
    const prefixes: string[][] = [];
    for (const p of active) {
      const next = await gen.nextSteps(prompt, p.steps, r === 0 ? o.n : o.width);
      for (const s of next) prefixes.push([...p.steps, s]);
    }
    if (prefixes.length === 0) break; // the generator proposed nothing: the open beams are returned unfinished
    const evals = await evaluate(prompt, prefixes);
    const order = prefixes.map((_, i) => i).sort((a, b) => evals[b].value - evals[a].value || a - b); // stable, descending
    const kept = order.slice(0, keep);
    rounds.push({ candidates: prefixes.map((steps, i) => ({ steps, value: evals[i].value })), kept: kept.map((i) => prefixes[i]) });
    active = [];
    for (const i of kept) {
      if (o.isFinished(prefixes[i])) done.push({ steps: prefixes[i], score: evals[i].final, finished: true });
      else active.push({ steps: prefixes[i], final: evals[i].final });
    }
  }
  for (const a of active) if (a.steps.length > 0) done.push({ steps: a.steps, score: a.final, finished: false });
  const res = selectResult(done, o.selection, budget(countCalls()), o.answer);
  return { ...res, rounds };
}

/** PRM-guided step-level beam search. */
export async function beamSearch(gen: StepGenerator, scorer: StepScorer, prompt: string, opts: BeamOptions): Promise<StepSearchResult> {
  const pre = STEP_AGGREGATIONS[opts.prefixAggregation ?? "last"];
  const fin = STEP_AGGREGATIONS[opts.finalAggregation ?? opts.prefixAggregation ?? "last"];
  let calls = 0;
  const evaluate: PrefixEvaluator = async (p, prefixes) => {
    calls += prefixes.length;
    const scores = await scoreStepLists(scorer, p, prefixes);
    return scores.map((s) => ({ value: pre(s), final: fin(s) }));
  };
  return stepSearch(
    gen,
    evaluate,
    prompt,
    {
      n: opts.n,
      width: opts.width,
      maxRounds: opts.maxRounds ?? 40,
      selection: opts.selection ?? "best",
      isFinished: opts.isFinished ?? statesAnswer(opts.answer),
      answer: opts.answer ?? DEFAULT_ANSWER,
    },
    [],
    () => calls,
  );
}
