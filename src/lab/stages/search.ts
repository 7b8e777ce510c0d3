// Stage 5: use verifiers at inference on test problems with the SFT policy as generator: majority vote vs
// ORM best-of-N vs PRM best-of-N (min / product / last) vs PRM-weighted majority vote vs PRM step-level beam
// search vs MCTS with PRM values, and a random pick among the same N samples, at each budget N (Snell et al.
// 2408.03314). The PRM strategy the claims use is pre-registered: best-of-N with the aggregation the reward-model
// stage chose on validation solutions. Every strategy reports per-problem correctness and its budget (sequences
// and tokens sampled per problem). Then the Titans surprise vs the gold PRM as detectors of wrong steps.

import { existsSync } from "node:fs";
import { arithmeticAnswer, arithmeticPrompt } from "../../data/tasks/arithmetic.js";
import { auroc } from "../../eval/calibration.js";
import { loadClassifier, type SequenceClassifier, type TokenClassifier } from "../../models/heads.js";
import type { OutcomeScorer, StepAggregation } from "../../rewards/interfaces.js";
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

/** A random pick among the N samples: the first one (samples are i.i.d.), with the same finished-first rule as the verifiers. */
export const FIRST_SAMPLE: OutcomeScorer & { scoreBatch(rows: readonly unknown[]): Promise<number[]> } = {
  scoreSolution: async () => 0,
  scoreBatch: async (rows) => rows.map((_, i) => (i === 0 ? 1 : 0)),
};

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
    const strategies: Record<string, Strategy> = {
      random: (g, p, n) => bestOfN(g, FIRST_SAMPLE, p, { n }),
      majority: (g, p, n) => bestOfN(g, null, p, { n, selection: "majority" }),
      prm_bon_min: (g, p, n) => bestOfN(g, prm.aggregate("min"), p, { n }),
      prm_bon_product: (g, p, n) => bestOfN(g, prm.aggregate("product"), p, { n }),
      prm_bon_last: (g, p, n) => bestOfN(g, prm.aggregate("last"), p, { n }),
      // weighted majority vote: each distinct answer scores the sum of its solutions' PRM scores (Snell et al.)
      prm_weighted_vote: (g, p, n) => bestOfN(g, prm.aggregate(aggregation), p, { n, selection: "weighted" }),
      prm_beam: (g, p, n) => beamSearch(g, prm, p, { n, width: Math.min(n, profile.search.beamWidth), maxRounds: 8 }),
      mcts: (g, p, n) => mcts(g, prmEvaluator(prm, "last"), p, { simulations: n, expansions: 2, maxDepth: 8, seed }),
    };
    if (orm !== null) strategies.orm_bon = (g, p, n) => bestOfN(g, orm, p, { n });
    const problems = problemsOf(profile, "test", seed).slice(0, profile.search.problems);
    const accuracy: Record<string, Record<string, number>> = {};
    const perProblem: Record<string, Record<string, number[]>> = {};
    const budget: Record<string, Record<string, { completions: number; tokens: number; steps: number }>> = {};
    for (const [name, run] of Object.entries(strategies)) {
      accuracy[name] = {};
      perProblem[name] = {};
      budget[name] = {};
      for (const n of profile.search.budgets) {
        // the same seed for every strategy at one N: best-of-N strategies choose among the very same samples
        const gen = new ModelStepGenerator(policy, tok, {
          seed: seed + 601 + n,
          // the evaluation temperature: diverse samples that are still mostly well-formed
          temperature: profile.eval.temperature,
          maxStepTokens: 24,
          maxCompletionTokens: profile.sample.maxNewTokens,
          isFinal: (s) => s.startsWith("The answer is"),
        });
        // problems run concurrently so the generator merges their requests into batches
        const results = await Promise.all(problems.map((p) => run(gen, arithmeticPrompt(p), n)));
        const hits = results.map((r, i) => (r.answer !== null && Number(r.answer) === arithmeticAnswer(problems[i]) ? 1 : 0));
        accuracy[name][String(n)] = round4(hits.reduce((a: number, b) => a + b, 0) / problems.length);
        perProblem[name][String(n)] = hits;
        budget[name][String(n)] = {
          completions: round4(gen.sequencesGenerated / problems.length),
          tokens: round4(gen.tokensGenerated / problems.length),
          steps: round4(gen.stepsGenerated / problems.length),
        };
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
      preRegistered: { prm: `prm_bon_${aggregation}`, aggregation },
      accuracy,
      budget,
      perProblem,
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
