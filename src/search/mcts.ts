// Monte Carlo tree search over solution steps, after rStar-Math (Guan et al. 2501.04519): a node is a prefix,
// selection by UCT `Q(s) + c·sqrt(ln N(parent) / N(s))` with `Q = q/N`, expansion with `nextSteps`, and one of
// two evaluations of the new node: its PRM value (rStar's PPM rounds) or a terminal-guided backup (roll out to
// the end, back up 1/0 from the answer checker: rStar rounds 1-2, which use ±1). The answer is the most-visited
// path or the finished node with the best mean value. Seeded tie-breaking; budget from the generators' counters.
// Differences: one evaluation per simulation (no PPM prior added to the terminal backup); values in [0, 1].

import { Rng } from "../nn/rng.js";
import { type AnswerExtractor, DEFAULT_ANSWER } from "../rewards/answer.js";
import { type AnswerChecker, STEP_AGGREGATIONS, type StepAggregation, type StepGenerator, type StepScorer } from "../rewards/interfaces.js";
import {
  answerKey,
  type Candidate,
  checkPositiveInt,
  type IsFinished,
  SearchError,
  type SearchResult,
  startBudget,
  statesAnswer,
} from "./common.js";

/** How a newly reached node is valued (in [0, 1]); `generators` lists those whose steps count in the budget. */
export interface NodeEvaluator {
  evaluate(prompt: string, steps: readonly string[], finished: boolean): Promise<number>;
  readonly generators?: readonly StepGenerator[];
  /** Scorer calls made so far. */
  readonly calls: number;
}

/** rStar PPM-style: the PRM's score of the prefix (aggregation "last" by default). */
export function prmEvaluator(scorer: StepScorer, how: StepAggregation = "last"): NodeEvaluator {
  const agg = STEP_AGGREGATIONS[how];
  const ev = {
    calls: 0,
    async evaluate(prompt: string, steps: readonly string[]) {
      ev.calls++;
      return agg(await scorer.scoreSteps(prompt, steps));
    },
  };
  return ev;
}

/** Terminal-guided: a finished node is checked; an open one is completed once by `gen` and the result checked. */
export function terminalEvaluator(gen: StepGenerator, checker: AnswerChecker): NodeEvaluator {
  return {
    calls: 0,
    generators: [gen],
    async evaluate(prompt, steps, finished) {
      if (finished) return checker(prompt, steps) ? 1 : 0;
      const [rest] = await gen.complete(prompt, steps, 1);
      return rest !== undefined && checker(prompt, [...steps, ...rest]) ? 1 : 0;
    },
  };
}

export interface MctsOptions {
  /** Simulations (select, expand, evaluate, back up). */
  simulations: number;
  /** Children proposed when a node is expanded (identical steps merged). Default 4. */
  expansions?: number;
  /** UCT exploration constant c. Default 2 (rStar-Math). */
  exploration?: number;
  /** Steps at most on a path; deeper nodes are not expanded. Default 16 (rStar-Math). */
  maxDepth?: number;
  /** "visits": follow the most-visited child from the root; "value": the finished node with the best Q. */
  select?: "visits" | "value";
  seed?: number;
  isFinished?: IsFinished;
  /** How a solution's answer is read (final-answer test, voting keys); default DEFAULT_ANSWER. */
  answer?: AnswerExtractor;
}

export interface MctsNode {
  steps: string[];
  parent: MctsNode | null;
  children: MctsNode[];
  visits: number;
  /** Sum of backed-up values (rStar's q). */
  valueSum: number;
  finished: boolean;
  expanded: boolean;
}

export interface MctsResult extends SearchResult {
  root: MctsNode;
}

const q = (n: MctsNode) => (n.visits === 0 ? 0 : n.valueSum / n.visits);

export async function mcts(gen: StepGenerator, evaluator: NodeEvaluator, prompt: string, opts: MctsOptions): Promise<MctsResult> {
  checkPositiveInt("mcts", "simulations", opts.simulations);
  const expansions = opts.expansions ?? 4;
  checkPositiveInt("mcts", "expansions", expansions);
  const c = opts.exploration ?? 2;
  if (!(c >= 0)) throw new SearchError(`[mcts] exploration must be >= 0, got ${c}`);
  const maxDepth = opts.maxDepth ?? 16;
  const isFinished = opts.isFinished ?? statesAnswer(opts.answer);
  const rng = new Rng(opts.seed ?? 0);
  const budget = startBudget([gen, ...(evaluator.generators ?? [])]);
  const root: MctsNode = { steps: [], parent: null, children: [], visits: 0, valueSum: 0, finished: false, expanded: false };

  /** Uniform among the maximisers of f (seeded), so that ties do not always favour the first child. */
  const pickMax = (xs: MctsNode[], f: (n: MctsNode) => number): MctsNode => {
    let best: MctsNode[] = [];
    let bv = Number.NEGATIVE_INFINITY;
    for (const x of xs) {
      const v = f(x);
      if (v > bv) {
        bv = v;
        best = [x];
      } else if (v === bv) best.push(x);
    }
    return best[best.length === 1 ? 0 : rng.int(best.length)];
  };
  const uct = (parent: MctsNode) => (n: MctsNode) =>
    n.visits === 0 ? Number.POSITIVE_INFINITY : q(n) + c * Math.sqrt(Math.log(parent.visits) / n.visits);

  for (let sim = 0; sim < opts.simulations; sim++) {
    let node = root;
    while (node.expanded && node.children.length > 0) node = pickMax(node.children, uct(node));
    if (!node.finished && !node.expanded && node.steps.length < maxDepth) {
      const seen = new Set<string>();
      for (const s of await gen.nextSteps(prompt, node.steps, expansions)) {
        if (seen.has(s)) continue;
        seen.add(s);
        const steps = [...node.steps, s];
        node.children.push({ steps, parent: node, children: [], visits: 0, valueSum: 0, finished: isFinished(steps), expanded: false });
      }
      node.expanded = true;
      if (node.children.length > 0) node = pickMax(node.children, () => 0);
    }
    const v = await evaluator.evaluate(prompt, node.steps, node.finished);
    for (let n: MctsNode | null = node; n !== null; n = n.parent) {
      n.visits++;
      n.valueSum += v;
    }
  }

  const finishedNodes: MctsNode[] = [];
  const walk = (n: MctsNode) => {
    if (n.finished && n.visits > 0) finishedNodes.push(n);
    for (const ch of n.children) walk(ch);
  };
  walk(root);
  const candidates: Candidate[] = finishedNodes.map((n) => ({ steps: n.steps, score: q(n), finished: true }));
  let chosen: MctsNode;
  if ((opts.select ?? "visits") === "value" && finishedNodes.length > 0) {
    chosen = finishedNodes.reduce((a, b) => (q(b) > q(a) || (q(b) === q(a) && b.visits > a.visits) ? b : a));
  } else {
    chosen = root;
    while (chosen.children.length > 0 && chosen.children.some((ch) => ch.visits > 0)) {
      chosen = chosen.children.reduce((a, b) => (b.visits > a.visits || (b.visits === a.visits && q(b) > q(a)) ? b : a));
    }
  }
  if (!chosen.finished) candidates.push({ steps: chosen.steps, score: q(chosen), finished: false });
  return {
    steps: chosen.steps,
    answer: answerKey(chosen.steps, opts.answer ?? DEFAULT_ANSWER),
    score: q(chosen),
    candidates,
    budget: budget(evaluator.calls),
    root,
  };
}
