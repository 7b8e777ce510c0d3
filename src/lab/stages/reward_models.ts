// Stage 3: train an ORM (Bradley-Terry on correct vs incorrect samples of the same prompt) and one PRM per
// label source (gold, Monte Carlo hard, judge, consensus), then measure each PRM ProcessBench-style: the
// threshold is fitted on solutions to validation problems and applied to solutions to test problems,
// both labelled by the exact checker.

import { join } from "node:path";
import { readJsonl } from "../../data/jsonl.js";
import { auroc } from "../../eval/calibration.js";
import { evaluateProcessBench, fitThreshold, type ProcessBenchRow, rowPredictions } from "../../eval/processbench.js";
import { type Classifier, type SequenceClassifier, saveClassifier, type TokenClassifier } from "../../models/heads.js";
import { STEP_AGGREGATIONS, type StepAggregation } from "../../rewards/interfaces.js";
import { OrmScorer, PrmScorer } from "../../rewards/scoring.js";
import { trainPrm } from "../../train/prm_trainer.js";
import { trainRewardModel } from "../../train/reward_trainer.js";
import { problemsOf, round4, type Sampled, samplePolicy } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { LabContext, Stage } from "../runner.js";
import { type LabelledSample, labelledPath } from "./labels.js";

export const PRM_SOURCES = ["gold", "mcHard", "judge", "consensus"] as const;
export type PrmSource = (typeof PRM_SOURCES)[number];

function rowsFor(source: PrmSource, samples: readonly LabelledSample[]) {
  // consensus: MC and judge name the same first error; judge: only samples whose reply parsed (judge labels null otherwise)
  const pick =
    source === "consensus"
      ? samples.filter((s) => s.mcFirstError === s.judgeFirstError)
      : source === "judge"
        ? samples.filter((s) => s.judge !== null)
        : samples;
  const labels = (s: LabelledSample) => (source === "gold" ? s.gold : source === "judge" ? (s.judge as boolean[]) : s.mcHard);
  return pick.map((s) => ({ prompt: s.prompt, completions: s.steps, labels: labels(s) }));
}

export function prmDir(ctx: LabContext, source: PrmSource): string {
  return join(ctx.stageDir("reward_models"), `prm_${source}`);
}

export function ormDir(ctx: LabContext): string {
  return join(ctx.stageDir("reward_models"), "orm");
}

/** Held-out solutions with exact first-error labels: validation (threshold fitting) and test (evaluation). */
export async function heldOutSolutions(ctx: LabContext): Promise<{ validation: Sampled[]; test: Sampled[] }> {
  const { profile, seed, tokenizer: tok } = ctx;
  const policy = await loadSftPolicy(ctx);
  const draw = (split: "validation" | "test", s: number) =>
    samplePolicy(policy, tok, problemsOf(profile, split, seed).slice(0, profile.eval.problems / 2), 2, {
      temperature: profile.sample.temperature,
      maxNewTokens: profile.sample.maxNewTokens,
      seed: s,
    })
      .flat()
      .filter((x) => x.steps.length > 0);
  return { validation: draw("validation", seed + 401), test: draw("test", seed + 402) };
}

/** Aggregations a PRM best-of-N may use; the search pre-registers the one with the best outcome AUROC on validation solutions. */
export const BON_AGGREGATIONS = ["min", "product", "last"] as const satisfies readonly StepAggregation[];

async function processBench(prm: TokenClassifier, ctx: LabContext, held: { validation: Sampled[]; test: Sampled[] }) {
  const scorer = new PrmScorer(prm, ctx.tokenizer);
  const rows = async (xs: Sampled[]): Promise<ProcessBenchRow[]> => {
    const scores = await scorer.scoreBatch(xs.map((x) => ({ prompt: x.prompt, steps: x.steps })));
    return xs.map((x, i) => ({ label: x.firstError, scores: scores[i] }));
  };
  const val = await rows(held.validation);
  const test = await rows(held.test);
  const { threshold } = fitThreshold(val);
  const m = evaluateProcessBench(test, threshold);
  // step-level AUROC of P(correct) against gold step correctness, on test solutions
  const stepScores = test.flatMap((r) => r.scores ?? []);
  const stepGold = held.test.flatMap((x) => x.goldLabels);
  // outcome AUROC of each aggregation on validation solutions (chooses the search's aggregation) and on test ones
  const outcome = (rs: ProcessBenchRow[], xs: Sampled[], how: StepAggregation) =>
    round4(
      auroc(
        rs.map((r) => STEP_AGGREGATIONS[how](r.scores ?? [])),
        xs.map((x) => x.correct),
      ),
    );
  const validationOutcomeAuroc = Object.fromEntries(BON_AGGREGATIONS.map((a) => [a, outcome(val, held.validation, a)]));
  const testOutcomeAuroc = Object.fromEntries(BON_AGGREGATIONS.map((a) => [a, outcome(test, held.test, a)]));
  return {
    metrics: {
      threshold: round4(threshold),
      f1: round4(m.f1),
      accErr: round4(m.accErr),
      accCor: round4(m.accCor),
      stepAuroc: round4(auroc(stepScores, stepGold)),
      validationOutcomeAuroc,
      testOutcomeAuroc,
    },
    predictions: rowPredictions(test, threshold),
  };
}

export const rewardModelsStage: Stage = {
  name: "reward_models",
  title: "train the ORM and a PRM per label source; ProcessBench F1",
  async run(ctx) {
    const { profile, seed, tokenizer: tok } = ctx;
    const samples = readJsonl(labelledPath(ctx)) as unknown as LabelledSample[];
    const policy = await loadSftPolicy(ctx);
    const held = await heldOutSolutions(ctx);
    const common = {
      maxSteps: profile.rm.steps,
      perDeviceTrainBatchSize: profile.rm.batchSize,
      learningRate: profile.rm.learningRate,
      warmupSteps: Math.ceil(profile.rm.steps / 20),
      lrSchedulerType: "cosine" as const,
      loggingSteps: Math.max(1, Math.floor(profile.rm.steps / 20)),
      seed,
    };
    const prms: Record<string, unknown> = {};
    const pred: Record<string, number[]> = {};
    for (const source of PRM_SOURCES) {
      const data = rowsFor(source, samples);
      if (data.length === 0) {
        prms[source] = { trainRows: 0, note: "no training rows" };
        continue;
      }
      const res = await trainPrm({ model: policy, tokenizer: tok, data, config: common, outputDir: null, quiet: ctx.quiet });
      saveClassifier(res.model as Classifier, prmDir(ctx, source));
      const pb = await processBench(res.model, ctx, held);
      prms[source] = { trainRows: data.length, ...pb.metrics };
      pred[source] = pb.predictions;
    }
    // ORM pairs: every correct sample against every incorrect sample of the same prompt (at most 4 per prompt)
    const byPrompt = new Map<string, LabelledSample[]>();
    for (const s of samples) byPrompt.set(s.prompt, [...(byPrompt.get(s.prompt) ?? []), s]);
    const pairs: { prompt: string; chosen: string; rejected: string }[] = [];
    for (const [prompt, group] of byPrompt) {
      const good = group.filter((g) => g.correct);
      const bad = group.filter((g) => !g.correct);
      for (let i = 0; i < Math.min(4, good.length * bad.length); i++) {
        pairs.push({ prompt, chosen: joinLines(good[i % good.length].steps), rejected: joinLines(bad[i % bad.length].steps) });
      }
    }
    let orm: Record<string, unknown> = { trainPairs: 0, note: "no prompt had both a correct and an incorrect sample" };
    if (pairs.length > 0) {
      const res = await trainRewardModel({ model: policy, tokenizer: tok, data: pairs, config: common, outputDir: null, quiet: ctx.quiet });
      saveClassifier(res.model as Classifier, ormDir(ctx));
      const scorer = new OrmScorer(res.model as SequenceClassifier, tok);
      const scores = await scorer.scoreBatch(held.test.map((x) => ({ prompt: x.prompt, steps: x.steps })));
      orm = {
        trainPairs: pairs.length,
        outcomeAuroc: round4(
          auroc(
            scores,
            held.test.map((x) => x.correct),
          ),
        ),
      };
    }
    // the gold PRM's best-of-N aggregation, chosen on validation solutions only (ties: the order of BON_AGGREGATIONS)
    const val = obj(obj(prms.gold).validationOutcomeAuroc);
    const chosenAggregation = BON_AGGREGATIONS.reduce((a, b) => ((val[b] ?? -1) > (val[a] ?? -1) ? b : a));
    return {
      heldOut: { validation: held.validation.length, test: held.test.length },
      prms,
      orm,
      chosenAggregation,
      // per held-out test solution: the exact first error and each PRM's predicted one (claims' paired bootstrap)
      perSolution: { label: held.test.map((x) => x.firstError), pred },
    };
  },
};

function obj(x: unknown): Record<string, number> {
  return x !== null && typeof x === "object" ? (x as Record<string, number>) : {};
}

function joinLines(steps: readonly string[]): string {
  return steps.map((s) => `${s}\n`).join("");
}
