// AgentPRM's grid walk (env.ts GridNavEnv) as a multi-turn Environment: each row carries a `seed` column that
// resets the grid (so the row's prompt, `gridPromptRows`, is its first observation); each policy turn is one
// action word ended by the separator ("\n"); the environment answers with the next observation line and ends the
// episode on success or at the horizon. `env_reward` is 1 on success, else 0 (`environmentReward` reads it).
// Not here: PRM-guided acting (improve.ts), the rollout loop (src/train/sampling.ts).

import { GridNavEnv, type GridNavOptions } from "./env.js";
import { type EnvEpisode, type Environment, EnvironmentError } from "./environment.js";

export interface GridEnvironmentOptions extends GridNavOptions {
  /** Ends an action turn and each observation line. Default "\n". */
  separator?: string;
}

/** Prompt rows for `gridEnvironment`: the first observation of reset(seed) for seeds seed, seed + 1, ... */
export function gridPromptRows(n: number, opts: GridEnvironmentOptions & { seed?: number } = {}): { prompt: string; seed: number }[] {
  const sep = opts.separator ?? "\n";
  const env = new GridNavEnv(opts);
  const first = opts.seed ?? 0;
  return Array.from({ length: n }, (_, i) => ({ prompt: env.reset(first + i) + sep, seed: first + i }));
}

export function gridEnvironment(opts: GridEnvironmentOptions = {}): Environment {
  const sep = opts.separator ?? "\n";
  const probe = new GridNavEnv(opts);
  return {
    name: "grid",
    stop: [sep],
    maxTurns: probe.horizon,
    reset(row, _seed, tokenizer): EnvEpisode {
      const seed = row.columns.seed;
      if (typeof seed !== "number" || !Number.isInteger(seed)) {
        throw new EnvironmentError(`[grid] each row needs an integer "seed" column (the grid's reset seed), got ${JSON.stringify(seed)}`);
      }
      const env = new GridNavEnv(opts);
      env.reset(seed);
      return {
        step(turn) {
          const action = turn.text.endsWith(sep) ? turn.text.slice(0, turn.text.length - sep.length).trim() : turn.text.trim();
          if (!env.actions.includes(action)) return { observationIds: [], done: true, reward: 0, info: { invalid_action: 1 } };
          const r = env.step(action);
          return {
            observationIds: r.done ? [] : tokenizer.encode(r.observation + sep, { addSpecialTokens: false }),
            done: r.done,
            reward: r.success ? 1 : 0,
            info: { success: r.success ? 1 : 0 },
          };
        },
      };
    },
  };
}
