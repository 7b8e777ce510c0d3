// The one sampling function of every online trainer: completions for prompt ids from the local engine (`generate`,
// so the rollout engine's batching and caching apply everywhere) or an OpenAI-compatible server (RemoteGenerator),
// single-turn or multi-turn with an Environment (the policy's turns end at the environment's stop strings; its
// replies are appended as context tokens that carry mask 0 and log-prob 0, so no loss ever trains on them).
// Also the prompt stream: a seeded permutation per epoch, consumed in order, its position checkpointed.
// Not here: scoring, advantages, the loop (online_loop.ts); tokenising the dataset (rollout.ts tokenizePrompts).

import type { EnvEpisode, Environment, EnvRow } from "../agent/environment.js";
import { type FinishReason, type Generation, type GenerativeLM, generate } from "../generate/generate.js";
import type { RemoteGenerator } from "../generate/remote.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { Rng } from "../nn/rng.js";
import { epochOrder } from "./loop.js";

/** Where completions come from. */
export type SampleSource = { kind: "local"; model: GenerativeLM } | { kind: "remote"; remote: RemoteGenerator; model?: string };

export interface SampleOptions {
  maxCompletionLength: number;
  /** Sampling temperature; 0 is greedy. */
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  /** The sampling stream (advanced in place, so a checkpointed state resumes exactly). */
  rng: Rng;
  tokenizer: Tokenizer;
  /** Ends a completion; default: the tokenizer's EOS. */
  eosTokenId?: number | readonly number[] | null;
  /** Multi-turn rollouts: the environment that answers the policy's turns. */
  environment?: Environment | null;
}

/** One sampled completion (all turns of a multi-turn episode, observations included). */
export interface SampledCompletion {
  completionIds: number[];
  /** Sampling log-probs per completion token (0 on environment tokens). */
  logprobs: number[];
  finishReason: FinishReason;
  /** The decoded completion (special tokens skipped), observations included. */
  text: string;
  /** Per completion token: 1 = sampled by the policy, 0 = environment (null: single-turn, all 1). */
  tokenMask: number[] | null;
  /** Sum of the environment's rewards (null without an environment). */
  envReward: number | null;
  /** The environment's merged info (null without an environment). */
  envInfo: Record<string, unknown> | null;
  /** Policy turns taken. */
  turns: number;
}

/** One call to the engine: a completion per prompt (local generate or the remote server). */
async function engine(
  src: SampleSource,
  prompts: readonly (readonly number[])[],
  o: SampleOptions,
  maxNewTokens: number,
  stop: readonly string[],
): Promise<Generation[]> {
  const eos = o.eosTokenId === undefined ? o.tokenizer.eosTokenId : o.eosTokenId;
  const common = {
    maxNewTokens,
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    minP: o.minP,
    rng: o.rng,
    eosTokenId: eos,
    ...(stop.length > 0 ? { stop: [...stop], includeStopStrInOutput: true } : {}),
  };
  if (src.kind === "local") return generate(src.model, prompts, { ...common, tokenizer: o.tokenizer });
  return src.remote.generate(prompts, { ...common, ...(src.model !== undefined ? { model: src.model } : {}) });
}

/**
 * Sample one completion per prompt. `rows` (for environments) are the prompts' dataset rows; episodes are
 * reset with seeds drawn from `o.rng`, so a run replays them exactly.
 */
export async function sampleCompletions(
  src: SampleSource,
  promptIds: readonly (readonly number[])[],
  o: SampleOptions,
  rows?: readonly EnvRow[],
): Promise<SampledCompletion[]> {
  const env = o.environment ?? null;
  const decode = (ids: readonly number[]) => o.tokenizer.decode(ids, { skipSpecialTokens: true });
  if (env === null) {
    const gens = await engine(src, promptIds, o, o.maxCompletionLength, []);
    return gens.map((g) => ({
      completionIds: g.completionIds,
      logprobs: g.logprobs,
      finishReason: g.finishReason,
      text: g.text ?? decode(g.completionIds),
      tokenMask: null,
      envReward: null,
      envInfo: null,
      turns: 1,
    }));
  }
  if (rows === undefined || rows.length !== promptIds.length)
    throw new Error(`[sampling] ${env.name}: one dataset row per prompt is needed`);
  const episodes: EnvEpisode[] = rows.map((r) => env.reset(r, Math.floor(o.rng.next() * 2 ** 31), o.tokenizer));
  const out: SampledCompletion[] = promptIds.map(() => ({
    completionIds: [],
    logprobs: [],
    finishReason: "length" as FinishReason,
    text: "",
    tokenMask: [],
    envReward: 0,
    envInfo: {},
    turns: 0,
  }));
  const context = promptIds.map((p) => [...p]);
  let active = promptIds.map((_, i) => i);
  for (let turn = 0; turn < env.maxTurns && active.length > 0; turn++) {
    const budget = active.map((i) => o.maxCompletionLength - out[i].completionIds.length);
    const gens = await engine(
      src,
      active.map((i) => context[i]),
      o,
      Math.max(...budget),
      env.stop,
    );
    const next: number[] = [];
    for (const [k, i] of active.entries()) {
      const c = out[i];
      let ids = gens[k].completionIds;
      let lps = gens[k].logprobs;
      let finish = gens[k].finishReason;
      if (ids.length > budget[k]) {
        // the batch ran to the longest budget; this row's ends at its own
        ids = ids.slice(0, budget[k]);
        lps = lps.slice(0, budget[k]);
        finish = "length";
      }
      c.completionIds.push(...ids);
      c.logprobs.push(...lps);
      c.tokenMask?.push(...ids.map(() => 1));
      c.turns++;
      c.finishReason = finish;
      context[i].push(...ids);
      const left = o.maxCompletionLength - c.completionIds.length;
      if (finish !== "stop" || left <= 0 || turn === env.maxTurns - 1) continue;
      const reply = await episodes[i].step({ ids, text: decode(ids), finishReason: finish });
      c.envReward = (c.envReward ?? 0) + (reply.reward ?? 0);
      if (reply.info !== undefined) Object.assign(c.envInfo as Record<string, unknown>, reply.info);
      if (reply.done) continue;
      const obs = reply.observationIds.slice(0, left);
      c.completionIds.push(...obs);
      c.logprobs.push(...obs.map(() => 0));
      c.tokenMask?.push(...obs.map(() => 0));
      context[i].push(...obs);
      if (obs.length < reply.observationIds.length || c.completionIds.length >= o.maxCompletionLength) c.finishReason = "length";
      else next.push(i);
    }
    active = next;
  }
  for (const c of out) c.text = decode(c.completionIds);
  return out;
}

/** The prompt stream: epoch e visits the rows in epochOrder(n, seed, e); `cursor` counts prompts taken. */
export class PromptStream<P> {
  cursor = 0;
  private cache = new Map<number, number[]>();

  constructor(
    readonly rows: readonly P[],
    readonly seed: number,
  ) {
    if (rows.length === 0) throw new Error("[sampling] the dataset has no prompts");
  }

  /** The next n rows (wrapping into the next epoch). */
  take(n: number): P[] {
    const np = this.rows.length;
    const out: P[] = [];
    for (let i = 0; i < n; i++, this.cursor++) {
      const epoch = Math.floor(this.cursor / np);
      let order = this.cache.get(epoch);
      if (order === undefined) {
        order = epochOrder(np, this.seed, epoch);
        this.cache.clear();
        this.cache.set(epoch, order);
      }
      out.push(this.rows[order[this.cursor - epoch * np]]);
    }
    return out;
  }

  /** Fractional epochs consumed. */
  get epoch(): number {
    return this.cursor / this.rows.length;
  }
}
