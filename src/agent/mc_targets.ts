// AgentPRM's Monte Carlo step targets (Choudhury 2502.10325): every visited (observation, action) pair gets
// Q̂(s, a) = the mean over its visits of a discounted episode outcome; duplicates are merged by hashing the
// pair. Two forms: "stepsToGo" (default) = γ^(T−1−t)·success with T actions in the episode (the last action
// gets the full outcome), and "agentPrmCode" = ((γ^t)·(2·success − 1) + 1) / 2, what the released code computes
// (γ^t from the episode start, R ∈ {−1, +1} mapped back to [0, 1]). Not here: shaping with a reference value.

import type { Trajectory } from "./trajectories.js";

export type TargetForm = "stepsToGo" | "agentPrmCode";

/** Target of the action at index t of an episode of T actions. */
export const TARGET_FORMS = Object.freeze({
  stepsToGo: (success: boolean, t: number, T: number, gamma: number) => (success ? gamma ** (T - 1 - t) : 0),
  agentPrmCode: (success: boolean, t: number, _T: number, gamma: number) => (gamma ** t * (success ? 1 : -1) + 1) / 2,
} satisfies Record<TargetForm, (success: boolean, t: number, T: number, gamma: number) => number>);

export interface StepTarget {
  observation: string;
  action: string;
  /** Q̂(s, a) in [0, 1]. */
  target: number;
  visits: number;
}

export interface McTargetOptions {
  /** Discount γ. Default 0.95 (AgentPRM). */
  gamma?: number;
  form?: TargetForm;
}

/** The (observation, action) hash key. */
export const pairKey = (observation: string, action: string): string => JSON.stringify([observation, action]);

/** Q̂ per distinct (observation, action), in order of first visit. */
export function mcTargets(trajs: readonly Trajectory[], opts: McTargetOptions = {}): StepTarget[] {
  const gamma = opts.gamma ?? 0.95;
  const f = TARGET_FORMS[opts.form ?? "stepsToGo"];
  const acc = new Map<string, { observation: string; action: string; sum: number; visits: number }>();
  for (const tr of trajs) {
    const T = tr.transitions.length;
    for (const { observation, action, t } of tr.transitions) {
      const k = pairKey(observation, action);
      const cur = acc.get(k) ?? { observation, action, sum: 0, visits: 0 };
      cur.sum += f(tr.success, t, T, gamma);
      cur.visits++;
      acc.set(k, cur);
    }
  }
  return [...acc.values()].map((v) => ({ observation: v.observation, action: v.action, target: v.sum / v.visits, visits: v.visits }));
}
