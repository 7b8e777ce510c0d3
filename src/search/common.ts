// What every search strategy shares: a candidate solution with its score, the budget report read from the
// StepGenerator's counter, the final-answer test for a step, answer keys for voting, and selection rules
// (best score, majority vote, weighted majority vote of Uesato et al. / Snell et al. 2408.03314 §5.1).
// maj@k, pass@k and best-of-N accuracy metrics live in src/eval/selection.ts; the votes here also return the
// chosen candidate and take weights, which that module leaves out.
// Not here: any strategy (best_of_n.ts, beam.ts, lookahead.ts, mcts.ts).

import { joinSteps } from "../data/tasks/task.js";
import { type AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import type { OutcomeScorer, StepGenerator, StepScorer } from "../rewards/interfaces.js";

export class SearchError extends Error {
  override name = "SearchError";
}

/** One finished (or budget-cut) solution a search produced. */
export interface Candidate {
  steps: string[];
  /** The strategy's solution score (higher is better). */
  score: number;
  /** Ended with a final-answer step (false: cut by maxRounds / maxDepth). */
  finished: boolean;
}

/** Generation spent by one search call. */
export interface SearchBudget {
  /** Steps the generator produced during the call (its `stepsGenerated` counter difference). */
  stepsGenerated: number;
  /** Tokens, when the generator counts them (model-backed generators do). */
  tokensGenerated?: number;
  /** Calls to the scorer (solutions or prefixes scored). */
  scorerCalls: number;
}

export interface SearchResult {
  /** The chosen solution's steps. */
  steps: string[];
  /** Its answer key (see answerKey), null when it states none. */
  answer: string | null;
  score: number;
  candidates: Candidate[];
  budget: SearchBudget;
}

/** A generator that also counts tokens (optional part of the contract). */
type Counting = StepGenerator & { readonly tokensGenerated?: number };

/** Snapshot generator counters now; call the returned function at the end to get the budget. */
export function startBudget(gens: readonly StepGenerator[]): (scorerCalls: number) => SearchBudget {
  const uniq = [...new Set(gens)] as Counting[];
  const s0 = uniq.map((g) => g.stepsGenerated);
  const t0 = uniq.map((g) => g.tokensGenerated);
  return (scorerCalls) => {
    const budget: SearchBudget = { stepsGenerated: uniq.reduce((a, g, i) => a + g.stepsGenerated - s0[i], 0), scorerCalls };
    if (uniq.every((g) => g.tokensGenerated !== undefined))
      budget.tokensGenerated = uniq.reduce((a, g, i) => a + (g.tokensGenerated as number) - (t0[i] as number), 0);
    return budget;
  };
}

/** Whether a prefix ends with a final-answer step. */
export type IsFinished = (steps: readonly string[]) => boolean;

/** A final-answer test: the last step states an answer as `answer` reads it (its pattern or stated forms). */
export function statesAnswer(answer: AnswerExtractor = DEFAULT_ANSWER): IsFinished {
  return (steps) => steps.length > 0 && answer.stated(steps[steps.length - 1]!) !== null;
}

/** Default: the last step states an answer ("answer is X", "#### X" or \boxed{X}). */
export const stepStatesAnswer: IsFinished = statesAnswer(DEFAULT_ANSWER);

/** The answer a solution gives, normalised so that 0.5 and 1/2 vote together; null when none (answer.ts). */
export function answerKey(steps: readonly string[], answer: AnswerExtractor = DEFAULT_ANSWER): string | null {
  return answer.key(joinSteps(steps));
}

/** Index of the highest score; ties go to the earliest. -1 for an empty list. */
export function argmax(xs: readonly number[]): number {
  let best = -1;
  for (let i = 0; i < xs.length; i++) if (best < 0 || xs[i] > xs[best]) best = i;
  return best;
}

export interface Vote {
  answer: string | null;
  /** Total weight (count for plain majority) behind the answer. */
  weight: number;
  /** Index of the best-scored candidate with that answer (the one returned). */
  index: number;
}

/**
 * Weighted majority vote: â = argmax_a Σ_i 1[ans(S_i) = a] · w_i (Li et al. DIVERSE, Uesato et al., Snell et al.).
 * Candidates with no answer do not vote. Ties: the answer seen first. Plain majority is w_i = 1.
 */
export function weightedMajorityVote(answers: readonly (string | null)[], weights: readonly number[]): Vote | null {
  if (answers.length !== weights.length) throw new SearchError(`[vote] ${answers.length} answers but ${weights.length} weights`);
  const total = new Map<string, { weight: number; index: number }>();
  answers.forEach((a, i) => {
    if (a === null) return;
    const cur = total.get(a);
    if (cur === undefined) total.set(a, { weight: weights[i], index: i });
    else {
      cur.weight += weights[i];
      if (weights[i] > weights[cur.index]) cur.index = i;
    }
  });
  let best: Vote | null = null;
  for (const [answer, v] of total) if (best === null || v.weight > best.weight) best = { answer, ...v };
  return best;
}

/** Plain majority vote (self-consistency): every answer counts 1. */
export function majorityVote(answers: readonly (string | null)[]): Vote | null {
  return weightedMajorityVote(
    answers,
    answers.map(() => 1),
  );
}

/** How a strategy picks its final answer among candidates. */
export type Selection = "best" | "weighted" | "majority";

export const SELECTIONS: Record<Selection, (cands: readonly Candidate[], answer: AnswerExtractor) => number> = {
  best: (c) => argmax(c.map((x) => x.score)),
  weighted: (c, a) => voteIndex(c, (x) => x.score, a),
  majority: (c, a) => voteIndex(c, () => 1, a),
};

function voteIndex(c: readonly Candidate[], w: (x: Candidate) => number, answer: AnswerExtractor): number {
  const v = weightedMajorityVote(
    c.map((x) => answerKey(x.steps, answer)),
    c.map(w),
  );
  return v === null ? argmax(c.map((x) => x.score)) : v.index;
}

/** Choose among candidates (finished ones first, if any) and build the result. */
export function selectResult(
  cands: Candidate[],
  how: Selection,
  budget: SearchBudget,
  answer: AnswerExtractor = DEFAULT_ANSWER,
): SearchResult {
  if (cands.length === 0) return { steps: [], answer: null, score: Number.NEGATIVE_INFINITY, candidates: cands, budget };
  const finished = cands.filter((c) => c.finished);
  const pool = finished.length > 0 ? finished : cands;
  const pick = pool[SELECTIONS[how](pool, answer)];
  return { steps: pick.steps, answer: answerKey(pick.steps, answer), score: pick.score, candidates: cands, budget };
}

export function checkPositiveInt(tag: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new SearchError(`[${tag}] ${name} must be an integer >= 1, got ${v}`);
}

/** Scorers may score many rows per forward pass (PrmScorer, OrmScorer); plain ones are called per row. */
type BatchOutcome = OutcomeScorer & { scoreBatch?: (rows: readonly { prompt: string; steps: readonly string[] }[]) => Promise<number[]> };
type BatchStep = StepScorer & { scoreBatch?: (rows: readonly { prompt: string; steps: readonly string[] }[]) => Promise<number[][]> };

export async function scoreSolutions(scorer: OutcomeScorer, prompt: string, sols: readonly (readonly string[])[]): Promise<number[]> {
  const s = scorer as BatchOutcome;
  if (s.scoreBatch !== undefined) return s.scoreBatch(sols.map((steps) => ({ prompt, steps })));
  const out: number[] = [];
  for (const steps of sols) out.push(await scorer.scoreSolution(prompt, steps));
  return out;
}

export async function scoreStepLists(scorer: StepScorer, prompt: string, sols: readonly (readonly string[])[]): Promise<number[][]> {
  const s = scorer as BatchStep;
  if (s.scoreBatch !== undefined) return s.scoreBatch(sols.map((steps) => ({ prompt, steps })));
  const out: number[][] = [];
  for (const steps of sols) out.push(await scorer.scoreSteps(prompt, steps));
  return out;
}
