// Stage 5: use verifiers at inference on test problems with the SFT policy as generator: majority vote vs
// ORM best-of-N vs PRM best-of-N (min / product / last) vs PRM-weighted majority vote vs PRM step-level beam
// search vs MCTS with PRM values, and a random pick among the same N samples, at each budget N (Snell et al.
// 2408.03314); reported beside them, best-of-N by the policy's own certainty (rewards/confidence.ts). Best-of-N
// and voting rules choose among one shared sample set per N (so N = 64 is affordable); tree searches sample
// their own steps, up to the profile's tree budget. The PRM strategy the claims use is pre-registered:
// best-of-N with the aggregation the reward-model stage chose on validation solutions. Every strategy reports
// per-problem correctness and its budget (sequences and tokens sampled per problem). Then the Titans surprise
// vs the gold PRM as detectors of wrong steps.

import { existsSync } from "node:fs";
import { type ArithmeticProblem, arithmeticAnswer, arithmeticPrompt, checkArithmetic } from "../../data/tasks/arithmetic.js";
import { joinSteps } from "../../data/tasks/task.js";
import { auroc } from "../../eval/calibration.js";
import { stratifiedAuroc } from "../../eval/logistic.js";
import { loadClassifier, type SequenceClassifier, type TokenClassifier } from "../../models/heads.js";
import { ConfidenceScorer } from "../../rewards/confidence.js";
import {
  type BatchOutcomeScorer,
  type OutcomeScorer,
  STEP_AGGREGATIONS,
  type StepAggregation,
  type StepGenerator,
} from "../../rewards/interfaces.js";
import { ModelStepGenerator } from "../../rewards/labels/model_generator.js";
import { OrmScorer, PrmScorer } from "../../rewards/scoring.js";
import { beamSearch } from "../../search/beam.js";
import { bestOfN } from "../../search/best_of_n.js";
import type { SearchResult } from "../../search/common.js";
import { mcts, prmEvaluator } from "../../search/mcts.js";
import { problemsOf, round4 } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { Stage } from "../runner.js";
import { BON_AGGREGATIONS, heldOutSolutions, ormDir, prmDir } from "./reward_models.js";
import { titansSurprise } from "./titans.js";

type Strategy = (gen: ModelStepGenerator, prompt: string, n: number) => Promise<SearchResult>;
/** A best-of-N rule: how one solution is chosen among N given samples. */
type Selector = (gen: StepGenerator, prompt: string, n: number) => Promise<SearchResult>;

/** A random pick among the N samples: the first one (samples are i.i.d.), with the same finished-first rule as the verifiers. */
export const FIRST_SAMPLE: OutcomeScorer & { scoreBatch(rows: readonly unknown[]): Promise<number[]> } = {
  scoreSolution: async () => 0,
  scoreBatch: async (rows) => rows.map((_, i) => (i === 0 ? 1 : 0)),
};

/** A generator that hands out solutions sampled before (one problem's N samples), so several rules choose among the same ones. */
export function replaySamples(solutions: readonly (readonly string[])[]): StepGenerator {
  return {
    complete: async (_prompt, prefix, n) => {
      if (prefix.length > 0 || n !== solutions.length)
        throw new Error(`[search] replay holds ${solutions.length} whole solutions, asked for ${n} after ${prefix.length} steps`);
      return solutions.map((s) => [...s]);
    },
    nextSteps: async () => {
      throw new Error("[search] replayed samples are whole solutions; tree search samples its own steps");
    },
    stepsGenerated: 0,
  };
}

type Budget = { completions: number; tokens: number; steps: number };

export const searchStage: Stage = {
  name: "search",
  title: "verifier-guided search at N = budgets; Titans surprise vs PRM",
  async run(ctx) {
    const { profile, seed, tokenizer: tok } = ctx;
    const policy = await loadSftPolicy(ctx);
    const prm = new PrmScorer(loadClassifier(prmDir(ctx, "gold"), { kind: "token" }) as TokenClassifier, tok);
    // the reward-model stage trains no ORM when no prompt had both a correct and an incorrect sample
    const orm = existsSync(ormDir(ctx))
      ? new OrmScorer(loadClassifier(ormDir(ctx), { kind: "sequence" }) as SequenceClassifier, tok)
      : null;
    const chosen = ctx.results.reward_models?.chosenAggregation as StepAggregation | undefined;
    const aggregation: StepAggregation = chosen !== undefined && (BON_AGGREGATIONS as readonly string[]).includes(chosen) ? chosen : "min";
    // best-of-N and voting rules choose among one shared sample set per N (their budget is that set)
    const selectors: Record<string, Selector> = {
      random: (g, p, n) => bestOfN(g, FIRST_SAMPLE, p, { n }),
      majority: (g, p, n) => bestOfN(g, null, p, { n, selection: "majority" }),
      prm_bon_min: (g, p, n) => bestOfN(g, prm.aggregate("min"), p, { n }),
      prm_bon_product: (g, p, n) => bestOfN(g, prm.aggregate("product"), p, { n }),
      prm_bon_last: (g, p, n) => bestOfN(g, prm.aggregate("last"), p, { n }),
      // weighted majority vote: each distinct answer scores the sum of its solutions' PRM scores (Snell et al.)
      prm_weighted_vote: (g, p, n) => bestOfN(g, prm.aggregate(aggregation), p, { n, selection: "weighted" }),
    };
    if (orm !== null) selectors.orm_bon = (g, p, n) => bestOfN(g, orm, p, { n });
    // reported, not pre-registered: the policy's own certainty (its least likely token), no labels or training
    const confidence = new ConfidenceScorer(policy, tok).outcome();
    selectors.confidence_bon = (g, p, n) => bestOfN(g, confidence, p, { n });
    // tree searches sample their own steps, up to the profile's tree budget
    const trees: Record<string, Strategy> = {
      prm_beam: (g, p, n) => beamSearch(g, prm, p, { n, width: Math.min(n, profile.search.beamWidth), maxRounds: 8 }),
      mcts: (g, p, n) => mcts(g, prmEvaluator(prm, "last"), p, { simulations: n, expansions: 2, maxDepth: 8, seed }),
    };
    const problems = problemsOf(profile, "test", seed).slice(0, profile.search.problems);
    const prompts = problems.map((p) => arithmeticPrompt(p));
    const accuracy: Record<string, Record<string, number>> = {};
    const perProblem: Record<string, Record<string, number[]>> = {};
    const budget: Record<string, Record<string, Budget>> = {};
    const record = (name: string, n: number, results: readonly SearchResult[], b: Budget) => {
      const hits = results.map((r, i) => (r.answer !== null && Number(r.answer) === arithmeticAnswer(problems[i]) ? 1 : 0));
      accuracy[name] ??= {};
      perProblem[name] ??= {};
      budget[name] ??= {};
      accuracy[name][String(n)] = round4(hits.reduce((a: number, h) => a + h, 0) / problems.length);
      perProblem[name][String(n)] = hits;
      budget[name][String(n)] = b;
    };
    // one seed per N for every strategy; the evaluation temperature: diverse samples that are still mostly well-formed
    const generator = (n: number) =>
      new ModelStepGenerator(policy, tok, {
        seed: seed + 601 + n,
        temperature: profile.eval.temperature,
        maxStepTokens: 24,
        maxCompletionTokens: profile.sample.maxNewTokens,
        isFinal: (s) => s.startsWith("The answer is"),
      });
    let ranking: Record<string, unknown> = {};
    for (const n of profile.search.budgets) {
      const gen = generator(n);
      const used = (g: ModelStepGenerator): Budget => ({
        completions: round4(g.sequencesGenerated / problems.length),
        tokens: round4(g.tokensGenerated / problems.length),
        steps: round4(g.stepsGenerated / problems.length),
      });
      // problems run concurrently so the generator merges their requests into batches
      const samples = await Promise.all(prompts.map((p) => gen.complete(p, [], n)));
      const sampled = used(gen);
      if (n === Math.max(...profile.search.budgets)) ranking = await verifierRanking(samples, problems, prompts, prm, orm, confidence);
      for (const [name, select] of Object.entries(selectors)) {
        record(name, n, await Promise.all(prompts.map((p, i) => select(replaySamples(samples[i]!), p, n))), sampled);
      }
      if (n > profile.search.maxTreeBudget) continue;
      for (const [name, run] of Object.entries(trees)) {
        const own = generator(n);
        record(name, n, await Promise.all(prompts.map((p) => run(own, p, n))), used(own));
      }
    }
    // Titans surprise vs the gold PRM on held-out solutions' steps
    const held = await heldOutSolutions(ctx);
    const titans = await titansSurprise(ctx, policy, held);
    const rows = held.test.map((x) => ({ prompt: x.prompt, steps: x.steps }));
    const prmScores = (await prm.scoreBatch(rows)).flat();
    const wrong = held.test.flatMap((x) => x.goldLabels.map((c) => !c));
    return {
      problems: problems.length,
      budgets: profile.search.budgets,
      treeBudgets: profile.search.budgets.filter((n) => n <= profile.search.maxTreeBudget),
      preRegistered: { prm: `prm_bon_${aggregation}`, aggregation },
      accuracy,
      budget,
      perProblem,
      verifierRanking: ranking,
      wrongStepAuroc: {
        titansSurprise: titans.auroc,
        titansSurpriseWithinPosition: titans.withinPosition,
        positionBaselineWithinPosition: titans.baselineWithinPosition,
        prmGold: round4(
          auroc(
            prmScores.map((s) => 1 - s),
            wrong,
          ),
        ),
        steps: wrong.length,
      },
      titans: { training: titans.training, perStep: titans.perStep },
    };
  },
};

/**
 * How well each verifier separates correct from wrong solutions among one problem's samples (what best-of-N
 * needs) and across problems (what a pooled AUROC mostly measures: problem difficulty), on the largest N's samples.
 */
async function verifierRanking(
  samples: readonly (readonly string[][])[],
  problems: readonly ArithmeticProblem[],
  prompts: readonly string[],
  prm: PrmScorer,
  orm: OrmScorer | null,
  confidence: BatchOutcomeScorer,
): Promise<Record<string, unknown>> {
  const rows = samples.flatMap((group, i) => group.map((steps) => ({ prompt: prompts[i]!, steps })));
  const correct = samples.flatMap((group, i) => group.map((steps) => checkArithmetic(problems[i]!, joinSteps(steps)).answerCorrect));
  const problem = samples.flatMap((group, i) => group.map(() => String(i)));
  const stepScores = await prm.scoreBatch(rows);
  const scores: Record<string, number[]> = Object.fromEntries(
    BON_AGGREGATIONS.map((how) => [`prm_${how}`, stepScores.map((x) => STEP_AGGREGATIONS[how](x))]),
  );
  if (orm !== null) scores.orm = await orm.scoreBatch(rows);
  scores.confidence = await confidence.scoreBatch(rows);
  const within = (xs: number[]) => round4(stratifiedAuroc(xs, correct, problem).auroc);
  return {
    n: samples[0]?.length ?? 0,
    solutions: rows.length,
    correctFraction: round4(correct.filter(Boolean).length / Math.max(1, rows.length)),
    withinProblemAuroc: Object.fromEntries(Object.entries(scores).map(([k, xs]) => [k, within(xs)])),
    acrossProblemsAuroc: Object.fromEntries(Object.entries(scores).map(([k, xs]) => [k, round4(auroc(xs, correct))])),
  };
}
