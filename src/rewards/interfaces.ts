// The contracts between step-level reward modeling, labelling and search: who proposes steps, who scores
// them. Solutions are lists of steps (text without the separator); a prompt is the problem text.
// Implementations: policy models (src/generate adapters), PRMs/ORMs/verifiers (src/rewards), test doubles.

/** Proposes continuations of a partial solution. */
export interface StepGenerator {
  /** n candidate next steps after `prefix` (each one step; may be the final-answer step). */
  nextSteps(prompt: string, prefix: readonly string[], n: number): Promise<string[]>;
  /** n full continuations after `prefix` (the remaining steps, ending with the answer step or cut by a budget). */
  complete(prompt: string, prefix: readonly string[], n: number): Promise<string[][]>;
  /** Steps generated so far (the budget every search strategy reports). */
  readonly stepsGenerated: number;
}

/** Scores every step of a solution: values in [0, 1], the probability that the step (and all before it) is correct. */
export interface StepScorer {
  scoreSteps(prompt: string, steps: readonly string[]): Promise<number[]>;
}

/** Scores a whole solution (ORM, or a PRM aggregated over steps). Higher is better. */
export interface OutcomeScorer {
  scoreSolution(prompt: string, steps: readonly string[]): Promise<number>;
}

/** An OutcomeScorer that also scores many solutions per forward pass (search uses the batch when present). */
export interface BatchOutcomeScorer extends OutcomeScorer {
  scoreBatch(rows: readonly { prompt: string; steps: readonly string[] }[]): Promise<number[]>;
}

/** Whether a finished solution reaches the gold answer (the exact checker, or a rule reward). */
export type AnswerChecker = (prompt: string, steps: readonly string[]) => boolean;

/** How per-step scores become one solution score (Lightman et al. use product and min; Snell et al. last). */
export type StepAggregation = "min" | "product" | "last" | "mean";

export const STEP_AGGREGATIONS: Record<StepAggregation, (scores: readonly number[]) => number> = {
  min: (s) => (s.length === 0 ? 0 : Math.min(...s)),
  product: (s) => s.reduce((a, b) => a * b, 1),
  last: (s) => (s.length === 0 ? 0 : s[s.length - 1]),
  mean: (s) => (s.length === 0 ? 0 : s.reduce((a, b) => a + b, 0) / s.length),
};

/** A StepScorer seen as an OutcomeScorer through an aggregation. */
export function aggregateScorer(scorer: StepScorer, how: StepAggregation): OutcomeScorer {
  const agg = STEP_AGGREGATIONS[how];
  return { scoreSolution: async (prompt, steps) => agg(await scorer.scoreSteps(prompt, steps)) };
}
