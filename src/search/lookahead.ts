// Lookahead search (Snell et al. 2408.03314 §5.2): beam search in which each candidate prefix is ranked by
// rolling it out up to k more steps (greedy, temperature 0, from `rolloutGenerator`) and reading the PRM at the
// end of the rollout; only the candidate step is kept, the rollout is thrown away. k = 0 is beam search; the
// cost is about N·(k+1) steps per round, and both generators' steps are counted in the budget.
// Differences: rollouts stop early at a final-answer step; the final score of a kept solution is the PRM
// aggregated over its own steps (the rollout's scores of those steps, which are the same forward pass).

import { type AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import { STEP_AGGREGATIONS, type StepAggregation, type StepGenerator, type StepScorer } from "../rewards/interfaces.js";
import { type PrefixEvaluator, type StepSearchResult, stepSearch } from "./beam.js";
import { checkPositiveInt, type IsFinished, SearchError, type Selection, scoreStepLists, statesAnswer } from "./common.js";

export interface LookaheadOptions {
  /** Total beams N. */
  n: number;
  /** Expansions per kept beam M (N/M kept). */
  width: number;
  /** Rollout steps k after each candidate (0 = beam search). */
  k: number;
  /** Generator for the rollouts (a greedy one, as Snell et al.); default: the search generator. */
  rolloutGenerator?: StepGenerator;
  maxRounds?: number;
  /** Aggregation read at the end of a rollout to rank the candidate. Default "last". */
  prefixAggregation?: StepAggregation;
  finalAggregation?: StepAggregation;
  selection?: Selection;
  isFinished?: IsFinished;
  /** How a solution's answer is read (final-answer test, voting keys); default DEFAULT_ANSWER. */
  answer?: AnswerExtractor;
}

/** Roll `prefix` forward by up to k single steps (stopping at a final-answer step). */
export async function rollout(
  gen: StepGenerator,
  prompt: string,
  prefix: readonly string[],
  k: number,
  isFinished: IsFinished,
): Promise<string[]> {
  const cur = [...prefix];
  for (let i = 0; i < k && !isFinished(cur); i++) {
    const next = await gen.nextSteps(prompt, cur, 1);
    if (next.length === 0) break;
    cur.push(next[0]);
  }
  return cur;
}

export async function lookaheadSearch(
  gen: StepGenerator,
  scorer: StepScorer,
  prompt: string,
  opts: LookaheadOptions,
): Promise<StepSearchResult> {
  if (!Number.isInteger(opts.k) || opts.k < 0) throw new SearchError(`[lookahead] k must be an integer >= 0, got ${opts.k}`);
  checkPositiveInt("lookahead", "n", opts.n);
  const roll = opts.rolloutGenerator ?? gen;
  const isFinished = opts.isFinished ?? statesAnswer(opts.answer);
  const pre = STEP_AGGREGATIONS[opts.prefixAggregation ?? "last"];
  const fin = STEP_AGGREGATIONS[opts.finalAggregation ?? opts.prefixAggregation ?? "last"];
  let calls = 0;
  const evaluate: PrefixEvaluator = async (p, prefixes) => {
    const rolled: string[][] = [];
    for (const x of prefixes) rolled.push(await rollout(roll, p, x, opts.k, isFinished));
    calls += rolled.length;
    const scores = await scoreStepLists(scorer, p, rolled);
    return scores.map((s, i) => ({ value: pre(s), final: fin(s.slice(0, prefixes[i].length)) }));
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
      isFinished,
      answer: opts.answer ?? DEFAULT_ANSWER,
    },
    [roll],
    () => calls,
  );
}
