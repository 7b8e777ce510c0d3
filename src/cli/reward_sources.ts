// Reward sources of the online CLIs (grpo, rloo, ppo, online-dpo): reward functions by name or from a module
// (reward_loading.ts), a reward model folder (--reward-model, a *ForSequenceClassification with num_labels 1, read
// with its own tokenizer when the folder has one) and a PRM folder (--prm-model, aggregated by min over the
// completion's steps), mixed by the trainer's rewardWeights in that order. Not here: training.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { expectFolderKind } from "../io/folder_kind.js";
import { loadTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { loadClassifier, SequenceClassifier } from "../models/heads.js";
import type { StepScorer } from "../rewards/interfaces.js";
import { loadPrmScorer } from "../rewards/scoring.js";
import type { RewardFn } from "../rewards/types.js";
import { loadRewardFunctions, REWARD_CLI_FIELDS, type RewardContext } from "./reward_loading.js";

/** CLI-only reward fields of every online command (stripped before the trainer's config). */
export const REWARD_SOURCE_FIELDS = {
  ...REWARD_CLI_FIELDS,
  rewardModel: z.string().nullable().default(null).describe("Reward model folder (HF *ForSequenceClassification, num_labels 1)"),
  prmModel: z.string().nullable().default(null).describe("PRM folder (token classifier from nexus prm); the min over steps is the reward"),
};

export interface RewardSources {
  rewardFuncs: RewardFn[];
  rewardModel: SequenceClassifier | null;
  rewardModelTokenizer?: Tokenizer;
  prm: StepScorer | null;
}

/** Load the reward model, the PRM and the reward functions that the flags name. */
export async function loadRewardSources(
  o: {
    rewardFuncs: string[];
    rewardModule: string | null;
    answerPattern: string | null;
    rewardModel: string | null;
    prmModel: string | null;
  },
  ctx: RewardContext,
): Promise<RewardSources> {
  let rewardModel: SequenceClassifier | null = null;
  let rewardModelTokenizer: Tokenizer | undefined;
  if (o.rewardModel !== null) {
    expectFolderKind(o.rewardModel, ["sequence-classifier"], "cli", "--reward-model");
    const rm = loadClassifier(o.rewardModel, { kind: "sequence", numLabels: 1 });
    if (!(rm instanceof SequenceClassifier)) throw new Error(`[cli] ${o.rewardModel} is not a sequence classifier`);
    rewardModel = rm;
    if (existsSync(join(o.rewardModel, "tokenizer.json"))) rewardModelTokenizer = loadTokenizer(o.rewardModel);
  }
  const prm = o.prmModel === null ? null : loadPrmScorer(o.prmModel);
  const wantFns = o.rewardFuncs.length > 0 || o.rewardModule !== null;
  if (!wantFns && rewardModel === null && prm === null) {
    throw new Error("[cli] give --reward-funcs / --reward-module, --reward-model and/or --prm-model");
  }
  const rewardFuncs = wantFns ? await loadRewardFunctions(o.rewardFuncs, o.rewardModule, { ...ctx, answerPattern: o.answerPattern }) : [];
  return { rewardFuncs, rewardModel, ...(rewardModelTokenizer ? { rewardModelTokenizer } : {}), prm };
}

type SourceKeys = "rewardFuncs" | "rewardModule" | "answerPattern" | "rewardModel" | "prmModel";

/** Split a resolved online CLI config into the trainer's config and the reward-source flags. */
export function splitRewardSources<
  C extends {
    rewardFuncs: string[];
    rewardModule: string | null;
    answerPattern: string | null;
    rewardModel: string | null;
    prmModel: string | null;
  },
>(c: C): { config: Omit<C, SourceKeys>; sources: Pick<C, SourceKeys> } {
  const { rewardFuncs, rewardModule, answerPattern, rewardModel, prmModel, ...config } = c;
  return { config, sources: { rewardFuncs, rewardModule, answerPattern, rewardModel, prmModel } };
}
