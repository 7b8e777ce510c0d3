// Labels stage (after the judge stage): sample G solutions per training prompt from the SFT policy and label
// their steps four ways: gold (the exact checker), Monte Carlo completion (Math-Shepherd hard and soft, N
// rollouts per prefix), an LLM judge asked to check each step through rewards/labels/judge.ts (the lab's local
// judge from stages/judge.ts, or an outside OpenAI-compatible server with --judge-url), and the consensus of
// MC and judge (Qwen 2501.07301: keep a sample only when both name the same first error; an unparseable judge
// reply never agrees). Every labeller is scored against gold on the same samples, and the consensus's keep
// rate and MC's first-error rate on all vs kept samples are reported; the per-sample first errors are kept
// for the claims' bootstrap. Writes the labelled samples for the reward-model stage.

import { join } from "node:path";
import { writeJsonl } from "../../data/jsonl.js";
import { labelQuality } from "../../eval/label_quality.js";
import { consensusFilter } from "../../rewards/labels/consensus.js";
import { judgeLabels } from "../../rewards/labels/judge.js";
import { mcLabels } from "../../rewards/labels/mc.js";
import { ModelStepGenerator } from "../../rewards/labels/model_generator.js";
import { ARITHMETIC_ANSWER, firstErrorOf, labelsFromFirstError } from "../../rewards/labels/steps.js";
import { problemsOf, round4, type Sampled, samplePolicy } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { LabContext, Stage } from "../runner.js";
import { labJudge } from "./judge.js";

export interface LabelledSample {
  prompt: string;
  steps: string[];
  correct: boolean;
  answer: number | null;
  gold: boolean[];
  mcHard: boolean[];
  mcSoft: number[];
  /** Judge step labels (true up to its first wrong step); null when its reply named no parseable first wrong step. */
  judge: boolean[] | null;
  /** -1: no wrong step; null: unparseable reply. */
  judgeFirstError: number | null;
  /** The judge's reply, as written. */
  judgeReply: string;
  mcFirstError: number;
  goldFirstError: number;
}

export function labelledPath(ctx: LabContext): string {
  return join(ctx.stageDir("labels"), "samples.jsonl");
}

function quality(pred: boolean[][], ref: boolean[][]) {
  if (pred.length === 0) return { precision: null, recall: null, f1: null, accuracy: null, solutions: 0 };
  const q = labelQuality(pred, ref);
  return {
    precision: round4(q.precision),
    recall: round4(q.recall),
    f1: round4(q.f1),
    accuracy: round4(q.accuracy),
    solutions: pred.length,
  };
}

export const labelsStage: Stage = {
  name: "labels",
  title: "sample solutions and label steps (gold, Monte Carlo, judge, consensus)",
  async run(ctx) {
    const { profile, seed, tokenizer: tok } = ctx;
    const policy = await loadSftPolicy(ctx);
    const problems = problemsOf(profile, "train", seed).slice(0, profile.sample.prompts);
    const groups = samplePolicy(policy, tok, problems, profile.sample.perPrompt, {
      temperature: profile.sample.temperature,
      maxNewTokens: profile.sample.maxNewTokens,
      seed: seed + 201,
    });
    const samples: Sampled[] = groups.flat().filter((s) => s.steps.length > 0);
    const gen = new ModelStepGenerator(policy, tok, {
      seed: seed + 301,
      temperature: 1,
      maxStepTokens: 24,
      maxCompletionTokens: profile.sample.maxNewTokens,
      isFinal: (s) => s.startsWith("The answer is"),
    });
    const mc = await Promise.all(
      samples.map((s) => mcLabels(gen, ARITHMETIC_ANSWER, s.prompt, s.steps, { rollouts: profile.mc.rollouts })),
    );
    const start = Date.now();
    const { judge, template, concurrency } = await labJudge(ctx);
    const judged = await judgeLabels(judge, samples, { template, concurrency });
    ctx.timePart("judge", (Date.now() - start) / 1000);
    const labelled: LabelledSample[] = samples.map((s, i) => {
      const jf = judged.labels[i]!.firstError;
      return {
        prompt: s.prompt,
        steps: s.steps,
        correct: s.correct,
        answer: s.answer,
        gold: s.goldLabels,
        mcHard: mc[i]!.hard,
        mcSoft: mc[i]!.soft.map(round4),
        judge: jf === null ? null : labelsFromFirstError(s.steps.length, jf),
        judgeFirstError: jf,
        judgeReply: judged.labels[i]!.reply,
        mcFirstError: firstErrorOf(mc[i]!.hard),
        goldFirstError: s.firstError,
      };
    });
    writeJsonl(labelledPath(ctx), labelled);
    const cons = consensusFilter(
      labelled,
      (l) => l.mcFirstError,
      (l) => l.judgeFirstError,
    );
    const kept = cons.kept.map((k) => k.row);
    const keptSet = new Set(kept);
    const parsed = labelled.filter((l) => l.judge !== null);
    // how often MC names the wrong first error, on a set of samples
    const mcError = (xs: readonly LabelledSample[]) =>
      xs.length === 0 ? null : round4(xs.filter((l) => l.mcFirstError !== l.goldFirstError).length / xs.length);
    return {
      samples: labelled.length,
      correctFraction: round4(labelled.filter((l) => l.correct).length / labelled.length),
      mcRollouts: mc.reduce((a, m) => a + m.rollouts, 0),
      judge: {
        source: ctx.judge === undefined ? "local" : "remote",
        ...(ctx.judge === undefined ? {} : { url: ctx.judge.url, model: ctx.judge.model }),
        parsed: judged.stats.parsed,
        unparseable: judged.stats.unparseable,
        // share of samples the judge calls free of errors (compare correctFraction: a judge that says "none" to most
        // agrees with MC mostly on correct samples, so consensus then keeps mostly those)
        noErrorFraction: round4(labelled.filter((l) => l.judgeFirstError === -1).length / labelled.length),
        // an unparseable reply counts as a miss
        firstErrorAccuracy: round4(labelled.filter((l) => l.judgeFirstError === l.goldFirstError).length / labelled.length),
      },
      consensusKept: cons.stats.kept,
      consensusKeptFraction: round4(cons.stats.keepRate),
      // on the same samples: what consensus drops (judge unparseable or disagreeing) and MC's first-error rate before and after
      consensus: {
        total: cons.stats.total,
        kept: cons.stats.kept,
        judgeMissing: cons.stats.judgeMissing,
        disagreed: cons.stats.disagreed,
        mcErrorAll: mcError(labelled),
        mcErrorKept: mcError(kept),
      },
      // per sample, for the claims' paired bootstrap on the same samples (judge null: unparseable reply)
      perSample: {
        goldFirstError: labelled.map((l) => l.goldFirstError),
        mcFirstError: labelled.map((l) => l.mcFirstError),
        judgeFirstError: labelled.map((l) => l.judgeFirstError),
        consensusKept: labelled.map((l) => (keptSet.has(l) ? 1 : 0)),
      },
      labelQuality: {
        mcHard: quality(
          labelled.map((l) => l.mcHard),
          labelled.map((l) => l.gold),
        ),
        // on the samples whose reply parsed (how many: judge.parsed)
        judge: quality(
          parsed.map((l) => l.judge as boolean[]),
          parsed.map((l) => l.gold),
        ),
        consensus: quality(
          kept.map((l) => l.mcHard),
          kept.map((l) => l.gold),
        ),
      },
    };
  },
};
