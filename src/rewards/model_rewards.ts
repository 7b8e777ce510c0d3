// Model-based rewards as RewardFns, so an online trainer mixes them with rule functions under one list of weights
// (TRL GRPO's reward_funcs): a reward model (SequenceClassifier, TRL's `logits[:, 0]` on prompt + completion text,
// batched), a PRM or any StepScorer (steps split at a separator, aggregated by min / product / last / mean), any
// OutcomeScorer, and an LLM judge that names the first wrong step (1 when it finds none, 0 otherwise).
// Not here: the models' training (src/train), step labelling with a judge (labels/judge.ts).

import { collate } from "../data/batch.js";
import { splitSteps } from "../data/tasks/task.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { SequenceClassifier } from "../models/heads.js";
import { noGrad } from "../tensor/index.js";
import { type OutcomeScorer, STEP_AGGREGATIONS, type StepAggregation, type StepScorer } from "./interfaces.js";
import { type JudgeFn, judgePrompt, parseJudgeReply } from "./labels/judge.js";
import { namedReward, RewardError, type RewardFn } from "./types.js";

export interface RewardModelRewardOptions {
  /** Metric name (`rewards/<name>/mean`). Default "reward_model". */
  name?: string;
  /** Sequences per forward pass. Default 16. */
  batchSize?: number;
}

/**
 * A reward model as a reward function: prompt + completion text is tokenized with the reward model's own
 * tokenizer (so policy and reward model may differ, as in TRL) and scored at the last real token.
 */
export function rewardModelReward(model: SequenceClassifier, tokenizer: Tokenizer, opts: RewardModelRewardOptions = {}): RewardFn {
  if (model.numLabels !== 1) throw new RewardError(`[rewardModelReward] the reward model needs num_labels 1, got ${model.numLabels}`);
  const bs = opts.batchSize ?? 16;
  const pad = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  return namedReward(opts.name ?? "reward_model", (args) => {
    const out: number[] = [];
    for (let s = 0; s < args.completions.length; s += bs) {
      const rows = args.completions.slice(s, s + bs).map((c, j) => {
        const ids = tokenizer.encode(`${args.prompts[s + j] ?? ""}${c}`);
        return { ids: ids.length > 0 ? ids : [pad], lossMask: [] };
      });
      const batch = collate(rows, pad);
      const r = noGrad(() => model.rewards({ inputIds: batch.inputIds, attentionMask: batch.attentionMask })); // (b)
      out.push(...Array.from(r.hostData() as ArrayLike<number>, Number));
    }
    return out;
  });
}

export interface StepScorerRewardOptions {
  /** What ends a step in a completion. Default "\n". */
  separator?: string;
  /** How step scores become one number. Default "min" (Lightman et al.). */
  aggregation?: StepAggregation;
  /** Default "prm". */
  name?: string;
}

/** A PRM (or any StepScorer) as a reward: the aggregated step scores of each completion; null when it has no step. */
export function stepScorerReward(scorer: StepScorer, opts: StepScorerRewardOptions = {}): RewardFn {
  const sep = opts.separator ?? "\n";
  const agg = STEP_AGGREGATIONS[opts.aggregation ?? "min"];
  if (agg === undefined) throw new RewardError(`[stepScorerReward] unknown aggregation '${opts.aggregation}'`);
  return namedReward(opts.name ?? "prm", async (args) => {
    const out: (number | null)[] = [];
    for (const [i, c] of args.completions.entries()) {
      const steps = splitSteps(c, sep);
      out.push(steps.length === 0 ? null : agg(await scorer.scoreSteps(args.prompts[i] ?? "", steps)));
    }
    return out;
  });
}

/** An ORM (or any OutcomeScorer) as a reward over the completion's steps. */
export function outcomeScorerReward(scorer: OutcomeScorer, opts: { separator?: string; name?: string } = {}): RewardFn {
  const sep = opts.separator ?? "\n";
  return namedReward(opts.name ?? "orm", async (args) => {
    const out: number[] = [];
    for (const [i, c] of args.completions.entries()) out.push(await scorer.scoreSolution(args.prompts[i] ?? "", splitSteps(c, sep)));
    return out;
  });
}

/**
 * An LLM judge as a reward: the judge reads the problem and the numbered steps (labels/judge.ts prompt) and names
 * the first wrong step; reward 1 for "none", 0 for a wrong step, null when the reply has no verdict. Judges run
 * concurrently (they are usually remote).
 */
export function judgeReward(judge: JudgeFn, opts: { separator?: string; name?: string; template?: string } = {}): RewardFn {
  const sep = opts.separator ?? "\n";
  return namedReward(opts.name ?? "judge", async (args) =>
    Promise.all(
      args.completions.map(async (c, i) => {
        const steps = splitSteps(c, sep);
        if (steps.length === 0) return null;
        const first = parseJudgeReply(await judge(judgePrompt(args.prompts[i] ?? "", steps, opts.template)), steps.length);
        return first === null ? null : first === -1 ? 1 : 0;
      }),
    ),
  );
}
