// Stage 5: use verifiers at inference on test problems with the SFT policy as generator: majority vote vs
// ORM best-of-N vs PRM best-of-N (min / product / last) vs PRM-weighted majority vote vs PRM step-level beam
// search vs MCTS with PRM values, at each budget N (Snell et al. 2408.03314); and the Titans surprise signal
// vs the gold PRM as detectors of wrong steps (AUROC against the exact step labels).

import { existsSync } from "node:fs";
import { arithmeticAnswer, arithmeticPrompt } from "../../data/tasks/arithmetic.js";
import { auroc } from "../../eval/calibration.js";
import { loadClassifier, type SequenceClassifier, type TokenClassifier } from "../../models/heads.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../../models/titans.js";
import { Rng } from "../../nn/rng.js";
import { ModelStepGenerator } from "../../rewards/labels/model_generator.js";
import { OrmScorer, PrmScorer } from "../../rewards/scoring.js";
import { collectStepSurprise, SurpriseReader } from "../../rewards/surprise.js";
import { beamSearch } from "../../search/beam.js";
import { bestOfN } from "../../search/best_of_n.js";
import type { SearchResult } from "../../search/common.js";
import { mcts, prmEvaluator } from "../../search/mcts.js";
import { problemsOf, round4 } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { Stage } from "../runner.js";
import { heldOutSolutions, ormDir, prmDir } from "./reward_models.js";

type Strategy = (gen: ModelStepGenerator, prompt: string, n: number) => Promise<SearchResult>;

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
    const strategies: Record<string, Strategy> = {
      majority: (g, p, n) => bestOfN(g, null, p, { n, selection: "majority" }),
      prm_bon_min: (g, p, n) => bestOfN(g, prm.aggregate("min"), p, { n }),
      prm_bon_product: (g, p, n) => bestOfN(g, prm.aggregate("product"), p, { n }),
      prm_bon_last: (g, p, n) => bestOfN(g, prm.aggregate("last"), p, { n }),
      // weighted majority vote: each distinct answer scores the sum of its solutions' PRM scores (Snell et al.)
      prm_weighted_vote: (g, p, n) => bestOfN(g, prm.aggregate("last"), p, { n, selection: "weighted" }),
      prm_beam: (g, p, n) => beamSearch(g, prm, p, { n, width: Math.min(n, profile.search.beamWidth), maxRounds: 8 }),
      mcts: (g, p, n) => mcts(g, prmEvaluator(prm, "last"), p, { simulations: n, expansions: 2, maxDepth: 8, seed }),
    };
    if (orm !== null) strategies.orm_bon = (g, p, n) => bestOfN(g, orm, p, { n });
    const problems = problemsOf(profile, "test", seed).slice(0, profile.search.problems);
    const accuracy: Record<string, Record<string, number>> = {};
    const budget: Record<string, Record<string, number>> = {};
    for (const [name, run] of Object.entries(strategies)) {
      accuracy[name] = {};
      budget[name] = {};
      for (const n of profile.search.budgets) {
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
        const correct = results.filter((r, i) => r.answer !== null && Number(r.answer) === arithmeticAnswer(problems[i])).length;
        accuracy[name][String(n)] = round4(correct / problems.length);
        budget[name][String(n)] = round4(gen.stepsGenerated / problems.length);
      }
    }
    // Titans surprise vs the gold PRM on held-out solutions' steps
    const held = await heldOutSolutions(ctx);
    const memory = new NeuralMemory(resolveNeuralMemoryConfig({ dim: policy.config.hiddenSize }), { rng: new Rng(seed + 701) });
    const reader = new SurpriseReader(policy, tok, memory);
    const rows = held.test.map((x) => ({ prompt: x.prompt, steps: x.steps, correct: x.goldLabels }));
    const surprise = collectStepSurprise(reader, rows);
    const prmScores = (await prm.scoreBatch(rows)).flat();
    return {
      problems: problems.length,
      budgets: profile.search.budgets,
      accuracy,
      stepsPerProblem: budget,
      wrongStepAuroc: {
        titansSurprise: round4(auroc(surprise.scores, surprise.wrong)),
        prmGold: round4(
          auroc(
            prmScores.map((s) => 1 - s),
            surprise.wrong,
          ),
        ),
        steps: surprise.scores.length,
      },
    };
  },
};
