// AgentPRM's test-time policy improvement (Choudhury 2502.10325): per step, sample N actions from the base
// policy and take the one the PRM scores highest (best-of-N per step). Not here: the paper's training-time
// improvement by online DPO against the PRM (pairs of sampled actions ranked by Q_φ).

import type { TextEnv } from "./env.js";
import type { ActionScorer } from "./prm.js";
import { type Actor, collectTrajectories, type Policy, sampleIndex, successRate } from "./trajectories.js";

/** Best-of-N per step: N samples from `policy` (with replacement), argmax of the PRM among them (ties: first drawn). */
export function prmBestOfNActor(policy: Policy, scorer: ActionScorer, n: number): Actor {
  return (obs, actions, rng) => {
    const probs = policy(obs, actions);
    const drawn = [...new Set(Array.from({ length: n }, () => actions[sampleIndex(probs, rng)]))];
    const s = scorer.scoreActions(obs, drawn);
    let best = 0;
    for (let i = 1; i < drawn.length; i++) if (s[i] > s[best]) best = i;
    return drawn[best];
  };
}

/** Success rate of an actor over `episodes` seeded resets. */
export function evaluateActor(env: TextEnv, actor: Actor, episodes: number, seed = 10_000): number {
  return successRate(collectTrajectories(env, actor, { episodes, seed }));
}
