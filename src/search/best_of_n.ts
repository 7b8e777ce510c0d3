// Best-of-N and voting over N sampled solutions (Snell et al. 2408.03314 §5.1; Cobbe et al. for BoN with an
// ORM; Uesato et al. / Li et al. for the weighted vote): sample N full solutions from the empty prefix, score
// each with any OutcomeScorer (an ORM, or a PRM aggregated by min / product / last), then pick the best, the
// answer with the largest summed score, or the plain majority answer. Not here: step-level search (beam.ts).

import { type AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import type { OutcomeScorer, StepGenerator } from "../rewards/interfaces.js";
import {
  type Candidate,
  checkPositiveInt,
  type IsFinished,
  type SearchResult,
  type Selection,
  scoreSolutions,
  selectResult,
  startBudget,
  statesAnswer,
} from "./common.js";

export interface BestOfNOptions {
  /** Solutions to sample. */
  n: number;
  /** best (argmax score), weighted (sum of scores per answer) or majority (count per answer). Default best. */
  selection?: Selection;
  /** Final-answer test for `finished`. Default: the last step states an answer. */
  isFinished?: IsFinished;
  /** How a solution's answer is read (final-answer test, voting keys); default DEFAULT_ANSWER. */
  answer?: AnswerExtractor;
}

/** Sample N solutions and choose one. `scorer` may be null for plain majority voting. */
export async function bestOfN(
  gen: StepGenerator,
  scorer: OutcomeScorer | null,
  prompt: string,
  opts: BestOfNOptions,
): Promise<SearchResult> {
  checkPositiveInt("bestOfN", "n", opts.n);
  const how = opts.selection ?? "best";
  if (scorer === null && how !== "majority") throw new Error(`[bestOfN] selection "${how}" needs a scorer`);
  const isFinished = opts.isFinished ?? statesAnswer(opts.answer);
  const budget = startBudget([gen]);
  const sols = await gen.complete(prompt, [], opts.n);
  const scores = scorer === null ? sols.map(() => 0) : await scoreSolutions(scorer, prompt, sols);
  const cands: Candidate[] = sols.map((steps, i) => ({ steps: [...steps], score: scores[i], finished: isFinished(steps) }));
  return selectResult(cands, how, budget(scorer === null ? 0 : sols.length), opts.answer ?? DEFAULT_ANSWER);
}
