// Stage 4: align the SFT policy with each method and compare on held-out problems: DPO (pairs of a correct
// and an incorrect sample of the same prompt), GRPO / Dr. GRPO / GSPO (verifiable accuracy reward), and PPO
// with a value model (same reward). Each reports pass@1, maj@k, its reward curve, KL to the SFT policy and
// the bytes of model state it holds (parameters, gradients and AdamW moments of every model in memory).
// Methods are a table; each entry trains a fresh copy of the SFT policy.

import { batchLogprobs, collate } from "../../data/batch.js";
import { readJsonl } from "../../data/jsonl.js";
import { arithmeticAnswer, arithmeticPrompt } from "../../data/tasks/arithmetic.js";
import { generate } from "../../generate/generate.js";
import type { CausalLM } from "../../models/causal_lm.js";
import { Rng } from "../../nn/rng.js";
import { accuracyReward } from "../../rewards/rule.js";
import { hostMemoryMode, memoryStats, resetPeakRss, rssStats, setHostMemoryMode } from "../../tensor/memory.js";
import { noGrad } from "../../tensor/tensor.js";
import { trainCpo } from "../../train/cpo.js";
import { trainDpo } from "../../train/dpo.js";
import { trainGrpo } from "../../train/grpo.js";
import { trainKto } from "../../train/kto.js";
import type { Metrics } from "../../train/metrics.js";
import { trainOrpo } from "../../train/orpo.js";
import { trainPpo } from "../../train/ppo.js";
import { evaluatePolicy, problemsOf, round4, trainingStateBytes } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { LabContext, Stage } from "../runner.js";
import { type LabelledSample, labelledPath } from "./labels.js";

interface MethodRun {
  policy: CausalLM;
  /** Reward (or margin) curve: [step, value]. */
  curve: [number, number][];
  curveMetric: string;
  stateBytes: number;
  /** Tokens processed in training (the trainer's num_tokens total), null when it does not count them. */
  tokens?: number | null;
}

/** How a method is run: its steps (default: the profile's), and for the memory probe the same rollout batch for every RL method. */
interface MethodOptions {
  steps?: number;
  /** Rollouts per step = promptsPerStep x numGenerations for GRPO and PPO alike (the memory probe). */
  sameRolloutBatch?: boolean;
  /** GRPO's KL coefficient (the probe measures GRPO with and without a reference). */
  beta?: number;
}

/** A method returns null (with a reason) when this run gives it nothing to train on. */
type Method = (ctx: LabContext, policy: CausalLM, opts?: MethodOptions) => Promise<MethodRun | { skipped: string }>;

function curveOf(history: readonly Metrics[], key: string): [number, number][] {
  return history.filter((h) => typeof h[key] === "number").map((h) => [h.step as number, round4(h[key] as number)]);
}

function promptRows(ctx: LabContext) {
  return problemsOf(ctx.profile, "train", ctx.seed).map((p) => ({ prompt: arithmeticPrompt(p), answer: arithmeticAnswer(p) }));
}

function grpoVariant(overrides: Record<string, unknown>): Method {
  return async (ctx, policy, opts = {}) => {
    const { profile: pr, seed } = ctx;
    const rl = { ...pr.rl, steps: opts.steps ?? pr.rl.steps, beta: opts.beta ?? pr.rl.beta };
    const res = await trainGrpo({
      model: policy,
      tokenizer: ctx.tokenizer,
      data: promptRows(ctx).slice(0, rl.steps * rl.promptsPerStep),
      rewardFuncs: [accuracyReward()],
      config: {
        learningRate: rl.learningRate,
        maxSteps: rl.steps,
        numGenerations: rl.numGenerations,
        perDeviceTrainBatchSize: rl.promptsPerStep * rl.numGenerations,
        maxCompletionLength: pr.sample.maxNewTokens,
        temperature: rl.temperature,
        beta: rl.beta,
        loggingSteps: 1,
        seed,
        ...overrides,
      },
      outputDir: null,
      quiet: ctx.quiet,
    });
    return {
      policy,
      curve: curveOf(res.run.history, "reward"),
      curveMetric: "reward",
      tokens: tokensOf(res.run.history),
      stateBytes: trainingStateBytes([policy], rl.beta > 0 ? [policy] : []),
    };
  };
}

/** Preference pairs from the labelled samples: a correct and an incorrect sample of the same prompt. */
function preferencePairs(ctx: LabContext): { prompt: string; chosen: string; rejected: string }[] {
  const samples = readJsonl(labelledPath(ctx)) as unknown as LabelledSample[];
  const byPrompt = new Map<string, LabelledSample[]>();
  for (const s of samples) byPrompt.set(s.prompt, [...(byPrompt.get(s.prompt) ?? []), s]);
  const rows: { prompt: string; chosen: string; rejected: string }[] = [];
  for (const [prompt, g] of byPrompt) {
    const good = g.filter((s) => s.correct);
    const bad = g.filter((s) => !s.correct);
    for (let i = 0; i < Math.min(good.length, bad.length); i++) {
      rows.push({ prompt, chosen: lines(good[i].steps), rejected: lines(bad[i].steps) });
    }
  }
  return rows;
}

const NO_PAIRS = { skipped: "no prompt had both a correct and an incorrect sample" };

/** Tokens a run processed: the trainer's running num_tokens total when it logs one. */
function tokensOf(history: readonly Metrics[]): number | null {
  for (let i = history.length - 1; i >= 0; i--) if (typeof history[i]!.num_tokens === "number") return history[i]!.num_tokens as number;
  return null;
}

/** Reference-free and unpaired preference methods on the DPO stage's data, steps, batch and learning rate. */
function offlineMethod(kind: "orpo" | "simpo" | "kto"): Method {
  return async (ctx, policy, opts = {}) => {
    const { profile: pr, seed } = ctx;
    const pairs = preferencePairs(ctx);
    if (pairs.length === 0) return NO_PAIRS;
    const common = {
      learningRate: pr.dpo.learningRate,
      maxSteps: opts.steps ?? pr.dpo.steps,
      perDeviceTrainBatchSize: pr.dpo.batchSize,
      loggingSteps: 1,
      seed,
    };
    const base = { model: policy, tokenizer: ctx.tokenizer, outputDir: null, quiet: ctx.quiet };
    let res: { history: Metrics[] };
    if (kind === "orpo") res = await trainOrpo({ ...base, rows: pairs, config: { ...common, beta: pr.dpo.beta } });
    // SimPO (Meng et al. 2024): length-averaged log-probs, target margin gamma, no NLL term; beta as the paper's 2.0
    else if (kind === "simpo")
      res = await trainCpo({ ...base, rows: pairs, config: { ...common, lossType: "simpo", cpoAlpha: 0, beta: 2, simpoGamma: 0.5 } });
    else {
      // KTO: the same samples unpaired, each completion labelled desirable (correct) or not
      const rows = pairs.flatMap((r) => [
        { prompt: r.prompt, completion: r.chosen, label: true },
        { prompt: r.prompt, completion: r.rejected, label: false },
      ]);
      res = await trainKto({ ...base, rows, config: { ...common, beta: pr.dpo.beta } });
    }
    const metric = kind === "kto" ? "rewards/chosen" : "rewards/margins";
    return {
      policy,
      curve: curveOf(res.history, metric),
      curveMetric: metric,
      stateBytes: trainingStateBytes([policy], kind === "kto" ? [policy] : []),
      tokens: tokensOf(res.history),
    };
  };
}

export const ALIGN_METHODS: Record<string, Method> = {
  dpo: async (ctx, policy, opts = {}) => {
    const { profile: pr, seed } = ctx;
    const rows = preferencePairs(ctx);
    if (rows.length === 0) return NO_PAIRS;
    const res = await trainDpo({
      model: policy,
      tokenizer: ctx.tokenizer,
      rows,
      config: {
        learningRate: pr.dpo.learningRate,
        beta: pr.dpo.beta,
        maxSteps: opts.steps ?? pr.dpo.steps,
        perDeviceTrainBatchSize: pr.dpo.batchSize,
        loggingSteps: 1,
        seed,
      },
      outputDir: null,
      quiet: ctx.quiet,
    });
    return {
      policy,
      curve: curveOf(res.history, "rewards/margins"),
      curveMetric: "rewards/margins",
      stateBytes: trainingStateBytes([policy], [policy]),
      tokens: tokensOf(res.history),
    };
  },
  orpo: offlineMethod("orpo"),
  kto: offlineMethod("kto"),
  simpo: offlineMethod("simpo"),
  grpo: grpoVariant({ lossType: "grpo", scaleRewards: "group" }),
  dr_grpo: grpoVariant({ lossType: "dr_grpo", scaleRewards: "none" }),
  // GSPO reuses each generation batch for two optimizer steps (numIterations 2): with one pass the sequence-level
  // ratio is 1 and its update equals GRPO's (Zheng et al. 2507.18071 train off-policy minibatches); the same
  // optimizer steps then sample half the rollouts
  gspo: grpoVariant({ lossType: "grpo", importanceSamplingLevel: "sequence", scaleRewards: "group", numIterations: 2 }),
  ppo: async (ctx, policy, opts = {}) => {
    const { profile: pr, seed } = ctx;
    const rl = { ...pr.rl, steps: opts.steps ?? pr.rl.steps };
    // training: one completion per prompt, 2 x promptsPerStep prompts a step; the memory probe: GRPO's rollout batch
    const gens = opts.sameRolloutBatch ? rl.numGenerations : 1;
    const rows = opts.sameRolloutBatch ? rl.promptsPerStep * rl.numGenerations : rl.promptsPerStep * 2;
    const res = await trainPpo({
      model: policy,
      tokenizer: ctx.tokenizer,
      data: promptRows(ctx).slice(0, rl.steps * rows),
      rewardFuncs: [accuracyReward()],
      config: {
        learningRate: rl.learningRate,
        maxSteps: rl.steps,
        numGenerations: gens,
        perDeviceTrainBatchSize: rows,
        maxCompletionLength: pr.sample.maxNewTokens,
        temperature: rl.temperature,
        loggingSteps: 1,
        seed,
      },
      outputDir: null,
      quiet: ctx.quiet,
    });
    // policy + value trained; reference frozen (PPO's k1 penalty needs it)
    return {
      policy,
      curve: curveOf(res.run.history, "objective/scores"),
      curveMetric: "objective/scores",
      tokens: tokensOf(res.run.history),
      stateBytes: trainingStateBytes([policy, res.valueModel], [policy]),
    };
  },
};

/** Mean over prompts of sum_t [log pi(y_t) - log pi_sft(y_t)] on samples of pi (the k1 estimate of KL(pi || sft)). */
export function klToReference(policy: CausalLM, ref: CausalLM, ctx: LabContext): number {
  const tok = ctx.tokenizer;
  const probs = problemsOf(ctx.profile, "test", ctx.seed).slice(0, 32);
  return noGrad(() => {
    const gens = generate(
      policy,
      probs.map((p) => tok.encode(arithmeticPrompt(p), { addSpecialTokens: true })),
      { maxNewTokens: ctx.profile.sample.maxNewTokens, temperature: 1, eosTokenId: tok.eosTokenId, rng: new Rng(ctx.seed + 501) },
    );
    const examples = gens.map((g) => ({
      ids: [...g.promptIds, ...g.completionIds],
      lossMask: [...g.promptIds.map(() => 0), ...g.completionIds.map(() => 1)],
    }));
    const batch = collate(examples, tok.padTokenId ?? 0);
    const lp = batchLogprobs(ref, batch);
    const t = batch.inputIds.shape[1];
    const lpd = lp.hostData();
    let total = 0;
    gens.forEach((g, i) => {
      let refSum = 0;
      for (let j = g.promptIds.length; j < g.promptIds.length + g.completionIds.length; j++) refSum += lpd[i * t + j];
      total += g.logprobs.reduce((a, b) => a + b, 0) - refSum;
    });
    return round4(total / gens.length);
  });
}

function lines(steps: readonly string[]): string {
  return steps.map((s) => `${s}\n`).join("");
}

/** Steps each method runs in the memory probe (peaks are reached within the first steps). */
const PROBE_STEPS = 2;

/**
 * Measured memory of one method at the same rollout batch: `PROBE_STEPS` steps with exact host accounting
 * (live tensor bytes after a full collection at the engine's checkpoints: before backward, once a generation's
 * KV cache exists, after an optimizer step) and the peak RSS sampled over the run, both from a reset.
 */
async function probeMemory(ctx: LabContext, method: Method, opts: MethodOptions) {
  const mode = hostMemoryMode();
  const policy = await loadSftPolicy(ctx);
  setHostMemoryMode("exact");
  try {
    const before = memoryStats().allocated;
    resetPeakRss();
    const start = Date.now();
    const run = await method(ctx, policy, { ...opts, steps: PROBE_STEPS, sameRolloutBatch: true });
    if ("skipped" in run) return null;
    const stats = memoryStats();
    return {
      // the method's own high-water mark: peak live tensor bytes above what was live when it started
      peakBytes: Math.max(0, stats.peakAllocated - before),
      baselineBytes: before,
      peakRssBytes: rssStats().peakRss,
      secondsPerStep: round4((Date.now() - start) / 1000 / PROBE_STEPS),
    };
  } finally {
    setHostMemoryMode(mode);
  }
}

export const alignStage: Stage = {
  name: "align",
  title: "align with DPO, GRPO, Dr. GRPO, GSPO and PPO",
  async run(ctx) {
    const sft = await loadSftPolicy(ctx);
    const test = problemsOf(ctx.profile, "test", ctx.seed);
    const out: Record<string, unknown> = {};
    for (const [name, method] of Object.entries(ALIGN_METHODS)) {
      ctx.log(`[lab] align: ${name}`);
      const start = Date.now();
      const run = await method(ctx, await loadSftPolicy(ctx));
      ctx.timePart(name, (Date.now() - start) / 1000);
      if ("skipped" in run) {
        ctx.log(`[lab] align: ${name} skipped: ${run.skipped}`);
        out[name] = run;
        continue;
      }
      out[name] = {
        ...evaluatePolicy(run.policy, ctx.tokenizer, ctx.profile, test, ctx.seed + 101),
        klToSft: klToReference(run.policy, sft, ctx),
        curveMetric: run.curveMetric,
        curve: run.curve,
        stateBytes: run.stateBytes,
        tokensProcessed: run.tokens ?? null,
        wallSeconds: Math.round((Date.now() - start) / 100) / 10,
      };
    }
    // measured memory at the same rollout batch (promptsPerStep x numGenerations): GRPO without and with a
    // reference model, PPO with its value model (and its reference), DPO at its batch
    ctx.log(`[lab] align: memory probe (${PROBE_STEPS} steps per method, exact host accounting)`);
    const probes: Record<string, MethodOptions & { method: string }> = {
      grpo: { method: "grpo" },
      grpo_with_ref: { method: "grpo", beta: 0.04 },
      ppo: { method: "ppo" },
      dpo: { method: "dpo" },
    };
    const memory: Record<string, unknown> = {};
    for (const [key, o] of Object.entries(probes)) {
      const m = await probeMemory(ctx, ALIGN_METHODS[o.method]!, o);
      if (m === null) continue;
      memory[key] = m;
      const entry = out[key] as Record<string, unknown> | undefined;
      if (entry !== undefined && !("skipped" in entry)) {
        entry.peakBytes = m.peakBytes;
        entry.peakRssBytes = m.peakRssBytes;
      }
    }
    out.memoryProbe = {
      steps: PROBE_STEPS,
      rolloutBatch: { prompts: ctx.profile.rl.promptsPerStep, completionsPerPrompt: ctx.profile.rl.numGenerations },
      methods: memory,
    };
    return out;
  },
};
