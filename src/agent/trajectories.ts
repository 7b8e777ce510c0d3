// Policies and trajectory collection for AgentPRM (2502.10325): a policy maps an observation to a distribution
// over the environment's actions; an actor turns that into one action (sampling, or PRM-guided best-of-N in
// improve.ts); `collectTrajectories` rolls actors out with seeded resets and sampling. `lmPolicy` adapts a
// causal LM: P(action) ∝ exp(Σ log p(action tokens | observation + "|") / temperature).
// Not here: reasoning text before the action (the paper's ReAct format), batched multi-env stepping.

import { batchLogprobs, collate } from "../data/batch.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { Rng } from "../nn/rng.js";
import { noGrad } from "../tensor/index.js";
import { AgentError, type TextEnv } from "./env.js";

/** obs → probabilities over `actions` (same order, summing to 1). */
export type Policy = (observation: string, actions: readonly string[]) => number[];

/** obs → the action to take (may sample from `rng`). */
export type Actor = (observation: string, actions: readonly string[], rng: Rng) => string;

export interface Transition {
  observation: string;
  action: string;
  /** Step index in the episode (0-based). */
  t: number;
}

export interface Trajectory {
  /** The reset seed. */
  seed: number;
  transitions: Transition[];
  success: boolean;
}

export const uniformPolicy: Policy = (_obs, actions) => actions.map(() => 1 / actions.length);

/** Draw an index from probabilities. */
export function sampleIndex(probs: readonly number[], rng: Rng): number {
  const u = rng.next();
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i];
    if (u < acc) return i;
  }
  return probs.length - 1;
}

/** The actor that samples from the policy. */
export function samplingActor(policy: Policy): Actor {
  return (obs, actions, rng) => actions[sampleIndex(policy(obs, actions), rng)];
}

/** One episode from reset(seed) until done (or maxSteps as a guard against environments with no horizon). */
export function runEpisode(env: TextEnv, actor: Actor, seed: number, rng: Rng, maxSteps = 1000): Trajectory {
  let obs = env.reset(seed);
  const transitions: Transition[] = [];
  for (let t = 0; t < maxSteps; t++) {
    const action = actor(obs, env.actions, rng);
    transitions.push({ observation: obs, action, t });
    const r = env.step(action);
    if (r.done) return { seed, transitions, success: r.success };
    obs = r.observation;
  }
  throw new AgentError(`[runEpisode] episode with seed ${seed} did not end in ${maxSteps} steps`);
}

export interface CollectOptions {
  episodes: number;
  /** Reset seeds are seed, seed + 1, ...; the actor's sampling stream is Rng(seed) too. */
  seed?: number;
}

export function collectTrajectories(env: TextEnv, actor: Actor, opts: CollectOptions): Trajectory[] {
  const seed = opts.seed ?? 0;
  const rng = new Rng(seed);
  return Array.from({ length: opts.episodes }, (_, i) => runEpisode(env, actor, seed + i, rng));
}

export const successRate = (trajs: readonly Trajectory[]): number =>
  trajs.length === 0 ? 0 : trajs.filter((t) => t.success).length / trajs.length;

export interface LmPolicyOptions {
  /** Text between the observation and the action. Default "|". */
  separator?: string;
  /** Softmax temperature over the action log-likelihoods. Default 1. */
  temperature?: number;
}

/** A causal LM as a policy over a discrete action set (one forward over all actions of an observation). */
export function lmPolicy(model: CausalLM, tok: Tokenizer, opts: LmPolicyOptions = {}): Policy {
  const sep = opts.separator ?? "|";
  const temp = opts.temperature ?? 1;
  return (obs, actions) => {
    const ctx = tok.encode(obs + sep);
    const rows = actions.map((a) => {
      const ids = tok.encode(obs + sep + a);
      return { ids, lossMask: ids.map((_, j) => (j >= ctx.length ? 1 : 0)) };
    });
    const batch = collate(rows, tok.padTokenId ?? 0);
    const lp = noGrad(() => batchLogprobs(model, batch)); // (A, T)
    const [, t] = lp.shape;
    const d = lp.hostData();
    const ll = rows.map((r, i) => {
      let s = 0;
      r.lossMask.forEach((m, j) => {
        if (m) s += d[i * t + j];
      });
      return s / temp;
    });
    const mx = Math.max(...ll);
    const e = ll.map((x) => Math.exp(x - mx));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };
}
