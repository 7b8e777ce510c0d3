// Stage 2: sample G solutions per training prompt from the SFT policy and label their steps four ways:
// gold (the exact checker), Monte Carlo completion (Math-Shepherd hard and soft, N rollouts per prefix),
// an LLM judge (the SFT model itself: it re-solves the problem greedily and marks the first step where the
// candidate departs from its own solution), and the consensus of MC and judge (Qwen 2501.07301).
// Reports each labeller's quality against gold; writes the labelled samples for the reward-model stage.

import { join } from "node:path";
import { writeJsonl } from "../../data/jsonl.js";
import { labelQuality } from "../../eval/label_quality.js";
import { mcLabels } from "../../rewards/labels/mc.js";
import { ModelStepGenerator } from "../../rewards/labels/model_generator.js";
import { ARITHMETIC_ANSWER, firstErrorOf, labelsFromFirstError } from "../../rewards/labels/steps.js";
import { problemsOf, round4, type Sampled, samplePolicy } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { LabContext, Stage } from "../runner.js";

export interface LabelledSample {
  prompt: string;
  steps: string[];
  correct: boolean;
  answer: number | null;
  gold: boolean[];
  mcHard: boolean[];
  mcSoft: number[];
  judge: boolean[];
  judgeFirstError: number;
  mcFirstError: number;
  goldFirstError: number;
}

export function labelledPath(ctx: LabContext): string {
  return join(ctx.stageDir("labels"), "samples.jsonl");
}

/** First step where `steps` departs from the judge's own solution, -1 if it never does. */
function judgeFirstError(own: readonly string[], steps: readonly string[]): number {
  for (let i = 0; i < steps.length; i++) if (own[i] !== steps[i]) return i;
  return -1;
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
    // judge: the policy's own greedy solution of each problem
    const own = samplePolicy(policy, tok, problems, 1, { temperature: 1, maxNewTokens: profile.sample.maxNewTokens, seed, greedy: true });
    const ownByPrompt = new Map(own.map((g) => [g[0].prompt, g[0].steps]));
    const gen = new ModelStepGenerator(policy, tok, {
      seed: seed + 301,
      temperature: 1,
      maxStepTokens: 24,
      maxCompletionTokens: profile.sample.maxNewTokens,
      isFinal: (s) => s.startsWith("The answer is"),
    });
    let rollouts = 0;
    const mc = await Promise.all(
      samples.map((s) => mcLabels(gen, ARITHMETIC_ANSWER, s.prompt, s.steps, { rollouts: profile.mc.rollouts })),
    );
    const labelled: LabelledSample[] = samples.map((s, i) => {
      rollouts += mc[i].rollouts;
      const jf = judgeFirstError(ownByPrompt.get(s.prompt) ?? [], s.steps);
      return {
        prompt: s.prompt,
        steps: s.steps,
        correct: s.correct,
        answer: s.answer,
        gold: s.goldLabels,
        mcHard: mc[i].hard,
        mcSoft: mc[i].soft.map(round4),
        judge: labelsFromFirstError(s.steps.length, jf),
        judgeFirstError: jf,
        mcFirstError: firstErrorOf(mc[i].hard),
        goldFirstError: s.firstError,
      };
    });
    writeJsonl(labelledPath(ctx), labelled);
    const gold = labelled.map((l) => l.gold);
    const agree = labelled.filter((l) => l.mcFirstError === l.judgeFirstError);
    const quality = (pred: boolean[][], ref: boolean[][]) => {
      const q = labelQuality(pred, ref);
      return { precision: round4(q.precision), recall: round4(q.recall), f1: round4(q.f1), accuracy: round4(q.accuracy) };
    };
    return {
      samples: labelled.length,
      correctFraction: round4(labelled.filter((l) => l.correct).length / labelled.length),
      mcRollouts: rollouts,
      consensusKept: agree.length,
      consensusKeptFraction: round4(agree.length / labelled.length),
      // per sample, for the claims' paired bootstrap on the same samples
      perSample: {
        goldFirstError: labelled.map((l) => l.goldFirstError),
        mcFirstError: labelled.map((l) => l.mcFirstError),
        judgeFirstError: labelled.map((l) => l.judgeFirstError),
      },
      labelQuality: {
        mcHard: quality(
          labelled.map((l) => l.mcHard),
          gold,
        ),
        judge: quality(
          labelled.map((l) => l.judge),
          gold,
        ),
        consensus: quality(
          agree.map((l) => l.mcHard),
          agree.map((l) => l.gold),
        ),
      },
    };
  },
};
