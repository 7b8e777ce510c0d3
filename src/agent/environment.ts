// The multi-turn rollout contract (TRL's environment_factory / rollout_func, verl's agent loop): an episode is
// reset from a dataset row, then the policy and the environment alternate. Each policy turn ends at one of the
// environment's stop strings (a tool call's closing tag) or at EOS; `step` receives that turn token-in (ids and
// text) and answers token-out: the ids appended to the context (a tool result), whether the episode is over, and
// an optional reward and info that the reward functions see as columns (`env_reward`, `env_info`). Observation
// tokens are context, not actions: the trainers mask them out of every loss.
// Not here: the rollout loop that drives episodes (src/train/sampling.ts), particular tools (calculator.ts).

import type { Tokenizer } from "../io/tokenizer.js";
import { namedReward, RewardError, type RewardFn } from "../rewards/types.js";

/** What the policy produced in one turn. */
export interface EnvTurn {
  /** The turn's token ids (ending with the token that completed a stop string, or EOS). */
  ids: readonly number[];
  /** The decoded turn, stop string included. */
  text: string;
  /** Why the turn ended: a stop string (a tool call), EOS, or the token budget. */
  finishReason: "eos" | "stop" | "length";
}

/** The environment's answer to a turn. */
export interface EnvReply {
  /** Tokens appended to the context before the next policy turn (the tool result); [] for none. */
  observationIds: number[];
  /** No further policy turn. */
  done: boolean;
  /** Added to the episode's `env_reward` column. */
  reward?: number;
  /** Merged into the episode's `env_info` column. */
  info?: Record<string, unknown>;
}

/** One running episode (per completion). */
export interface EnvEpisode {
  step(turn: EnvTurn): EnvReply | Promise<EnvReply>;
}

/** The dataset row an episode starts from: the prompt text and the row's other columns. */
export interface EnvRow {
  prompt: string;
  columns: Record<string, unknown>;
}

export interface Environment {
  /** Names the environment in metrics and errors. */
  readonly name: string;
  /** Strings that end a policy turn besides EOS (e.g. a tool call's closing tag). */
  readonly stop: readonly string[];
  /** Policy turns per episode at most (the last turn is not answered). */
  readonly maxTurns: number;
  /** Start an episode; `seed` is drawn from the sampler's stream (so resumed runs replay it). */
  reset(row: EnvRow, seed: number, tokenizer: Tokenizer): EnvEpisode;
}

export class EnvironmentError extends Error {
  override name = "EnvironmentError";
}

/** The reward an environment reported (the `env_reward` column the multi-turn sampler adds); null without one. */
export function environmentReward(name = "env_reward"): RewardFn {
  return namedReward(name, (args) => {
    const col = args.env_reward;
    if (col === undefined) throw new RewardError(`[${name}] the batch has no "env_reward" column: train with an environment`);
    return col.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : null));
  });
}
