// The one loop of every online trainer (GRPO family, RLOO, PPO, online DPO, SPIN, GKD, distillation): per
// generation batch, sample (sampling.ts: local engine or remote server, single or multi-turn) -> score (the
// weighted reward mix; DAPO dynamic sampling keeps the groups that carry a signal, with their first scores) ->
// advantages (the algorithm's prepare) -> update (the algorithm's plan: logged steps of optimizer steps of
// micro-batches, each micro-batch's loss from the algorithm). Generation may run up to maxOffPolicySteps batches
// ahead of the update (asynchronous rollouts; 0 is synchronous); completions from another engine or an older
// policy get rollout-correction weights. Checkpoints hold the whole run (run_state.ts) including the batches in
// flight, so an interrupted run resumes exactly. Not here: losses (src/losses), algorithms (grpo.ts, ...).

import type { Environment } from "../agent/environment.js";
import { RemoteGenerator } from "../generate/remote.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import type { LoraModel } from "../models/lora.js";
import { clipGradNorm } from "../nn/clip.js";
import type { Module } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import type { RewardBreakdown, RewardFn } from "../rewards/types.js";
import { scope, type Tensor } from "../tensor/index.js";
import { syncGradients } from "./grad_sync.js";
import { afterStep, createLoopSchedule, createOptimizer, type RunResult, TrainingError } from "./loop.js";
import { type Metrics, MetricsLogger } from "./metrics.js";
import { NonFiniteGuard } from "./nonfinite.js";
import { correctionApplies, type OnlineConfig } from "./online_config.js";
import { type PendingBatch, type PendingBatchJson, pendingFromJson, pendingToJson } from "./online_resume.js";
import { createReferencePolicy, type ReferencePolicy, referenceTensors, resolvePolicy } from "./policy.js";
import { atPrecision } from "./precision.js";
import {
  completionLogprobsNoGrad,
  concatScored,
  groupsWithSignal,
  type PackedRollout,
  type PromptExample,
  type Rollout,
  rolloutFromSamples,
  rolloutMetrics,
  scoreRollout,
  selectScored,
} from "./rollout.js";
import { RunCheckpointer, type RunControl, runControl } from "./run_state.js";
import { PromptStream, type SampleSource, sampleCompletions } from "./sampling.js";

/** One generation batch as the algorithm sees it. */
export interface GenerationBatch {
  rollout: Rollout;
  /** Rewards per completion (null for algorithms that do not score). */
  rewards: RewardBreakdown | null;
  /** Per completion: false when maskTruncatedCompletions zeroes its loss. */
  counts: boolean[];
  /** Per-completion token log-probs of the training policy before this batch's updates (when needed). */
  old: Float32Array[] | null;
  /** Per-completion reference log-probs (when the algorithm needs them). */
  ref: Float32Array[] | null;
  /** Whether the rollout/training correction weights apply to this batch. */
  corrected: boolean;
  /** Policy tokens that count over the whole batch (DAPO's normaliser). */
  activeTokens: number;
  /** Metrics of this batch (rollout metrics; prepare() adds its own). */
  metrics: Record<string, number>;
}

/** What micro-batch losses get besides the batch: the models and the run's settings. */
export interface OnlineContext<C extends OnlineConfig> {
  config: C;
  policy: CausalLM;
  tokenizer: Tokenizer;
  padId: number;
  /** The reference (when the algorithm asked for one). */
  reference: ReferencePolicy | null;
}

/** The tensors of one policy micro-batch (rows of the generation batch), for inspection in hooks and tests. */
export interface MicroBatch {
  /** Row indices into the generation batch. */
  rows: number[];
  packed: PackedRollout;
  /** [b, Tc]: completion tokens that count (policy tokens of counted completions). */
  mask: Tensor;
  /** [b, Tc] policy log-probs (with gradient). */
  logps: Tensor;
  /** [b, Tc] old / reference log-probs (zero-padded), when the batch has them. */
  old?: Tensor;
  ref?: Tensor;
}

/** A micro-batch loss plus metrics as (numerator, denominator) pairs, summed over the logged step then divided. */
export interface MicroLoss {
  loss: Tensor;
  sums?: Record<string, [number, number]>;
  /** The advantages the loss used ([b] or [b, Tc]), for inspection. */
  advantages?: Tensor;
  /** The micro-batch's tensors (algorithms that score completions token by token). */
  micro?: MicroBatch;
}

/** The updates on one batch: logged steps, each a list of optimizer steps, each a list of micro-batches (row ids). */
export type UpdatePlan = number[][][][];

/** Consecutive micro-batches of `size` rows over rows 0..n-1 (rollout order, as TRL without shuffling). */
export function consecutiveMicroBatches(n: number, size: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < n; s += size) out.push(Array.from({ length: Math.min(size, n - s) }, (_, j) => s + j));
  return out;
}

export interface OnlineAlgorithm<C extends OnlineConfig, S> {
  readonly label: string;
  /** Prompts per generation batch. */
  promptsPerBatch(c: C): number;
  /** Completions per prompt. */
  numGenerations(c: C): number;
  /** Logged steps per generation batch (the length of every plan): mu for GRPO / RLOO, 1 for PPO. */
  stepsPerBatch(c: C): number;
  /** Whether completions are scored by the reward mix (false: distillation, SPIN). */
  readonly scored: boolean;
  /** Completions other than the policy's samples (GKD: data or teacher); default: sampleCompletions. */
  collect?(prompts: PromptExample[], ctx: CollectContext<C>): Promise<Rollout>;
  /** Temperature of the old / reference log-probs (default the sampling temperature; DPO-style losses use 1). */
  scoringTemperature?(c: C): number;
  /** Token ids that end a completion besides EOS (PPO's stopTokenId). */
  stopTokenIds?(c: C): number[];
  /** Whether old log-probs are computed before the updates (mu > 1; correction adds them anyway). */
  needsOld(c: C): boolean;
  /** Whether reference per-token log-probs are computed and a reference is held. */
  needsRef(c: C): boolean;
  /** Whether the reference moves during training (TR-DPO sync, SPIN refresh): it is then checkpointed. */
  syncsReference?(c: C): boolean;
  /** Modules trained besides the policy (PPO's value model), wrapped with it into one optimizer. */
  trainable?(policyTrainable: Module): Module;
  /** Before a batch is sampled: the prompt stream's position (SPIN refreshes its reference per epoch). */
  beforeBatch?(cursor: number, numPrompts: number, ctx: OnlineContext<C>): void;
  /** Once per batch, before its updates: advantages, pairs, values. */
  prepare(batch: GenerationBatch, ctx: OnlineContext<C>): S | Promise<S>;
  /** The updates on a batch (may draw from the update RNG, e.g. PPO's shuffles). */
  plan(batch: GenerationBatch, state: S, c: C, rng: Rng): UpdatePlan;
  /**
   * One micro-batch's loss, already scaled so that an optimizer step's gradient is the sum over its micro-batches;
   * `share` is 1 / the number of micro-batches in this optimizer step (for losses that are means over them).
   */
  microLoss(batch: GenerationBatch, state: S, rows: number[], ctx: OnlineContext<C>, share: number): MicroLoss;
  /** After every optimizer step (TR-DPO's reference mixup). */
  afterOptimizerStep?(optimizerSteps: number, ctx: OnlineContext<C>): void;
}

export interface CollectContext<C extends OnlineConfig> extends OnlineContext<C> {
  /** The sampling stream (also the source of any per-batch random choice, e.g. GKD's lmbda draw). */
  rng: Rng;
  /** The policy sampler (local engine or remote), with the run's sampling options. */
  sample(prompts: PromptExample[], numGenerations: number): Promise<Rollout>;
}

export interface OnlineRunOptions<C extends OnlineConfig, S> extends RunControl {
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  prompts: PromptExample[];
  /** The weighted reward mix (weights: config.rewardWeights). */
  rewardFuncs: RewardFn[];
  config: C;
  algorithm: OnlineAlgorithm<C, S>;
  /** Explicit frozen reference; default: the base under LoRA, else a frozen copy of the policy. */
  refModel?: CausalLM;
  /** Multi-turn rollouts. */
  environment?: Environment | null;
  outputDir: string | null;
  fullConfig?: Record<string, unknown>;
  quiet?: boolean;
  stopAfterStep?: number;
  evaluate?: (step: number) => Metrics | Promise<Metrics>;
  /** Called after every micro-batch loss (tests read ratios and gradients here). */
  onMicroBatch?: (batch: GenerationBatch, rows: number[], out: MicroLoss) => void;
  /** Called with every generation batch once prepared. */
  onBatch?: (batch: GenerationBatch) => void;
}

/** A batch in flight in a checkpoint: sampled, or a step that dynamic sampling left without one. */
type InFlightJson = { batch: PendingBatchJson } | { skipped: Metrics };

/** The checkpoint's trainer state: batches in flight (the current one first) and the update RNG. */
interface OnlineTrainerState extends Record<string, unknown> {
  pending: InFlightJson[];
  updateRng: number[];
  /** Optimizer steps taken (PPO takes several per logged step); TR-DPO syncs count them. */
  optimizerSteps: number;
}

/** A sampled batch, or a step without one (dynamic sampling kept no group). */
type Sampled = { batch: PendingBatch; skipped: null } | { batch: null; skipped: Metrics };

/** The one online loop, at the config's precision. */
export async function runOnline<C extends OnlineConfig, S>(o: OnlineRunOptions<C, S>): Promise<RunResult> {
  return atPrecision(o.config.precision, () => runOnlineAt(o));
}

async function runOnlineAt<C extends OnlineConfig, S>(o: OnlineRunOptions<C, S>): Promise<RunResult> {
  const { config: cfg, algorithm: algo, tokenizer: tok } = o;
  const label = algo.label;
  if (o.prompts.length === 0) throw new TrainingError(`[${label}] the dataset has no prompts`);
  const { policy, trainable: policyTrainable } = resolvePolicy(o.model);
  const trainable = algo.trainable?.(policyTrainable) ?? policyTrainable;
  const { optimizer, named, optNames } = createOptimizer(trainable, cfg, label);
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const reference = algo.needsRef(cfg) ? createReferencePolicy(o.model, { refModel: o.refModel }) : null;
  const ctx: OnlineContext<C> = { config: cfg, policy, tokenizer: tok, padId, reference };
  const perBatch = algo.promptsPerBatch(cfg);
  const g = algo.numGenerations(cfg);
  const batchesPerEpoch = Math.ceil(o.prompts.length / perBatch);
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * batchesPerEpoch) * algo.stepsPerBatch(cfg);
  const schedule = createLoopSchedule(cfg, totalSteps);
  const stream = new PromptStream(o.prompts, cfg.seed);
  const sampleRng = new Rng(cfg.seed); // generation: sampling, episode seeds, per-batch draws
  const updateRng = new Rng(cfg.seed + 1); // updates: shuffles
  const syncs = algo.syncsReference?.(cfg) === true;
  if (syncs && (reference === null || reference.model === null)) {
    throw new TrainingError(`[${label}] the reference must follow the policy, so it needs a full model (not the LoRA base)`);
  }
  const checkpointer = new RunCheckpointer<OnlineTrainerState>({
    outputDir: o.outputDir,
    label,
    quiet: o.quiet,
    named,
    optimizer,
    optNames,
    rng: sampleRng,
    cursor: true,
    trainerTensors: syncs && reference !== null ? referenceTensors(reference) : undefined,
    config: o.fullConfig ?? ({ ...cfg } as Record<string, unknown>),
    keep: cfg.saveTotalLimit,
    totalSteps,
    control: runControl(o),
  });
  const restored = checkpointer.start();
  const guard = new NonFiniteGuard(label, cfg.onNonfinite, named, { watchCollapse: false });
  let step = restored?.step ?? 0;
  let optimizerSteps = restored?.trainer?.optimizerSteps ?? 0;
  stream.cursor = restored?.cursor ?? 0;
  const totals: Record<string, number> = restored?.totals ?? {};
  if (restored?.trainer?.updateRng !== undefined) updateRng.setState(restored.trainer.updateRng);
  const logger = new MetricsLogger(o.outputDir === null ? null : `${o.outputDir}/metrics.jsonl`, {
    total: totalSteps,
    label,
    quiet: o.quiet,
  });

  // ---- sampling ----
  const source: SampleSource = cfg.generatorUrl
    ? {
        kind: "remote",
        remote: new RemoteGenerator({ url: cfg.generatorUrl, tokenizer: tok }),
        ...(cfg.generatorModel !== null ? { model: cfg.generatorModel } : {}),
      }
    : { kind: "local", model: policy };
  const extraStops = algo.stopTokenIds?.(cfg) ?? [];
  const eosIds = extraStops.length === 0 ? tok.eosTokenId : [...(tok.eosTokenId === null ? [] : [tok.eosTokenId]), ...extraStops];
  const scoreTemp = algo.scoringTemperature?.(cfg) ?? cfg.temperature;
  const samplePolicy = async (prompts: PromptExample[], numGenerations: number): Promise<Rollout> => {
    const rows = prompts.flatMap((p) => Array.from({ length: numGenerations }, () => p));
    if (source.kind === "local") trainable.eval();
    const samples = await sampleCompletions(
      source,
      rows.map((p) => p.promptIds),
      {
        maxCompletionLength: cfg.maxCompletionLength,
        temperature: cfg.temperature,
        topP: cfg.topP,
        topK: cfg.topK,
        minP: cfg.minP,
        rng: sampleRng,
        tokenizer: tok,
        eosTokenId: eosIds,
        environment: o.environment ?? null,
      },
      rows.map((p) => ({ prompt: p.promptText, columns: p.columns })),
    );
    if (source.kind === "local") trainable.train();
    return rolloutFromSamples(prompts, numGenerations, samples);
  };
  const collectCtx: CollectContext<C> = { ...ctx, rng: sampleRng, sample: samplePolicy };
  const collect = (prompts: PromptExample[]) => (algo.collect !== undefined ? algo.collect(prompts, collectCtx) : samplePolicy(prompts, g));

  /** Sample, score and (DAPO) filter one generation batch. */
  const sampleBatch = async (): Promise<Sampled> => {
    algo.beforeBatch?.(stream.cursor, o.prompts.length, ctx);
    let rollout = await collect(stream.take(perBatch));
    let rewards = algo.scored ? await scoreRollout(rollout, o.rewardFuncs, cfg.rewardWeights, cfg.missingEosPenalty) : null;
    const extra: Record<string, number> = {};
    if (cfg.dynamicSampling && rewards !== null) {
      // DAPO: keep groups whose rewards differ (with the scores they already have); refill from fresh prompts
      let kept = selectScored(rollout, rewards, groupsWithSignal(rewards.total, g));
      let generated = rollout.prompts.length;
      let rounds = 1;
      while (kept.rollout.prompts.length < perBatch && rounds < cfg.dynamicSamplingMaxRounds) {
        const more = await collect(stream.take(perBatch));
        const r = await scoreRollout(more, o.rewardFuncs, cfg.rewardWeights, cfg.missingEosPenalty);
        kept = concatScored(kept, selectScored(more, r, groupsWithSignal(r.total, g)));
        generated += more.prompts.length;
        rounds++;
      }
      const n = Math.min(kept.rollout.prompts.length, perBatch);
      ({ rollout, rewards } = selectScored(
        kept.rollout,
        kept.rewards,
        Array.from({ length: n }, (_, k) => k),
      ));
      extra["dynamic_sampling/rounds"] = rounds;
      extra["dynamic_sampling/generated_groups"] = generated;
      extra["dynamic_sampling/kept_groups"] = n;
    }
    // the data position of this batch (with batches sampled ahead, the stream is further on when it is trained)
    const metrics = {
      ...(rewards === null || rollout.completionIds.length === 0 ? {} : rolloutMetrics(rollout, rewards)),
      ...extra,
      epoch: stream.epoch,
    };
    if (rollout.completionIds.length === 0) return { batch: null, skipped: metrics };
    const counts = rollout.finishReasons.map((f) => !(cfg.maskTruncatedCompletions && f === "length"));
    return { batch: { rollout, rewards, counts, old: null, ref: null, metrics, iteration: 0, plan: null, version: step }, skipped: null };
  };

  // batches in flight, oldest first; with maxOffPolicySteps 0 there is never more than the one being trained
  const queue: Promise<Sampled>[] = [];
  for (const p of restored?.trainer?.pending ?? []) {
    const s: Sampled =
      "skipped" in p
        ? { batch: null, skipped: p.skipped }
        : { batch: pendingFromJson(p.batch, o.prompts, `[${label}] ${restored?.dir}`), skipped: null };
    queue.push(Promise.resolve(s));
  }
  let chain: Promise<unknown> = Promise.resolve();
  /** Start sampling the next batch after the ones in flight (generation is sequential, so RNG use is too). */
  const enqueue = () => {
    const next = chain.then(() => sampleBatch());
    chain = next.catch(() => undefined);
    queue.push(next);
  };
  // local generation shares the CPU with the update: a batch sampled ahead is sampled right away, with the weights
  // of that moment (which is what off-policy means); a remote server samples while the update runs
  const fill = async (wanted: number) => {
    while (queue.length < wanted) {
      enqueue();
      if (source.kind === "local") await queue[queue.length - 1];
    }
  };

  let current: PendingBatch | null = null;
  const inProgress = (b: PendingBatch | null): b is PendingBatch => b !== null && b.plan !== null && b.iteration < b.plan.length;
  const save = async () => {
    const pending: InFlightJson[] = inProgress(current) ? [{ batch: pendingToJson(current) }] : [];
    for (const s of await Promise.all(queue)) pending.push(s.batch === null ? { skipped: s.skipped } : { batch: pendingToJson(s.batch) });
    return checkpointer.save({
      step,
      epoch: stream.epoch,
      totalSteps,
      totals,
      cursor: stream.cursor,
      trainer: { pending, updateRng: updateRng.getState(), optimizerSteps },
    });
  };
  const done = async (metrics: Metrics): Promise<boolean> =>
    afterStep({
      step,
      totalSteps,
      cfg,
      metrics,
      history,
      logger,
      model: trainable,
      evaluate: o.evaluate === undefined ? undefined : () => (o.evaluate as (s: number) => Metrics | Promise<Metrics>)(step),
      save,
      stopAfterStep: o.stopAfterStep,
      run: checkpointer,
      label,
    });

  const history: Metrics[] = [];
  trainable.train();
  while (step < totalSteps) {
    const t0 = performance.now();
    // a resumed batch in progress comes first; then batch k and (asynchronous) up to maxOffPolicySteps more
    if (!inProgress(current)) {
      // batch k, and (asynchronous) up to maxOffPolicySteps more sampled ahead with the current weights
      // never sample past the batches the run still needs (a skipped step asks for one more later)
      await fill(Math.min(1 + cfg.maxOffPolicySteps, Math.ceil((totalSteps - step) / algo.stepsPerBatch(cfg))));
      const s = await (queue.shift() as Promise<Sampled>);
      if (s.batch === null) {
        // dynamic sampling kept no group: the step passes without an update, but logs, evaluates and checkpoints
        current = null;
        step++;
        const m: Metrics = { skipped: 1, learning_rate: schedule.lrAt(step - 1), ...s.skipped };
        if (await done(m)) return { step, history, interrupted: true };
        continue;
      }
      current = s.batch;
    }
    const pending = current;
    const genSeconds = (performance.now() - t0) / 1000;
    const { rollout, counts } = pending;
    const corrected = correctionApplies(cfg);
    if (pending.old === null && (algo.needsOld(cfg) || corrected)) {
      pending.old = completionLogprobsNoGrad(policy, rollout, padId, cfg.perDeviceTrainBatchSize, scoreTemp);
    }
    if (pending.ref === null && reference !== null && algo.needsRef(cfg)) {
      pending.ref = reference.run((m) => completionLogprobsNoGrad(m, rollout, padId, cfg.perDeviceTrainBatchSize, scoreTemp));
    }
    // staleness: steps between sampling and the first update on the batch (recorded once, so a resumed batch agrees)
    if (pending.plan === null && cfg.maxOffPolicySteps > 0) pending.metrics["async/staleness"] = step - pending.version;
    const metrics: Record<string, number> = { ...pending.metrics };
    const batch: GenerationBatch = {
      rollout,
      rewards: pending.rewards,
      counts,
      old: pending.old,
      ref: pending.ref,
      corrected,
      activeTokens: counts.reduce((a, keep, i) => a + (keep ? policyTokens(rollout, i) : 0), 0),
      metrics,
    };
    const state = await algo.prepare(batch, ctx);
    if (pending.plan === null) {
      pending.plan = algo.plan(batch, state, cfg, updateRng);
      if (pending.plan.length !== algo.stepsPerBatch(cfg))
        throw new TrainingError(`[${label}] internal: a plan of ${pending.plan.length} steps, expected ${algo.stepsPerBatch(cfg)}`);
    }
    const plan = pending.plan;
    o.onBatch?.(batch);
    // the update below runs without yielding: let the requests for batches sampled ahead reach the server first
    if (source.kind === "remote" && queue.length > 0) await letRequestsGo();

    while (pending.iteration < plan.length && step < totalSteps) {
      const t1 = performance.now();
      const optSteps = plan[pending.iteration];
      let lossTotal = 0;
      let gradNorm = Number.NaN;
      const sums: Record<string, [number, number]> = {};
      const lr = schedule.lrAt(step);
      for (const micros of optSteps) {
        let stepLoss = 0;
        for (const rows of micros) {
          if (source.kind === "remote" && queue.length > 0) await new Promise((r) => setImmediate(r)); // socket I/O
          // on a device, what the micro-batch allocated is freed at the end of its scope (gradients are kept)
          scope(() => {
            const out = algo.microLoss(batch, state, rows, ctx, 1 / micros.length);
            stepLoss += out.loss.item(); // non-finite: caught with the gradients before the update
            out.loss.backward();
            o.onMicroBatch?.(batch, rows, out);
            for (const [k, [num, den]] of Object.entries(out.sums ?? {})) {
              const cur = sums[k] ?? [0, 0];
              sums[k] = [cur[0] + num, cur[1] + den];
            }
          });
        }
        syncGradients(optimizer.params());
        lossTotal += stepLoss;
        const verdict = guard.check(step + 1, stepLoss);
        gradNorm = verdict.norm;
        if (verdict.apply) {
          if (cfg.maxGradNorm > 0) gradNorm = clipGradNorm(optimizer.params(), cfg.maxGradNorm);
          optimizer.lr = lr;
          optimizer.step();
        } else {
          totals.nonfinite_skipped = (totals.nonfinite_skipped ?? 0) + 1;
        }
        optimizer.zeroGrad();
        optimizerSteps++;
        algo.afterOptimizerStep?.(optimizerSteps, ctx);
      }
      pending.iteration++;
      step++;
      totals.num_tokens =
        (totals.num_tokens ?? 0) + rollout.completionIds.reduce((a, c, i) => a + c.length + rollout.promptIds[i].length, 0) / plan.length;
      // the progress line shows the first metrics: loss, then the reward (when there is one)
      const m: Metrics = { loss: lossTotal / Math.max(1, optSteps.length) };
      for (const k of ["reward", "reward_std"]) if (k in metrics) m[k] = metrics[k];
      Object.assign(m, metrics);
      for (const [k, [num, den]] of Object.entries(sums)) m[k] = den > 0 ? num / den : 0;
      m.learning_rate = lr;
      if (cfg.maxGradNorm > 0) m.grad_norm = gradNorm;
      m.step_time = genSeconds / plan.length + (performance.now() - t1) / 1000;
      Object.assign(m, totals);
      if (await done(m)) return { step, history, interrupted: true };
    }
  }
  await Promise.allSettled(queue);
  trainable.eval();
  return { step, history, interrupted: false };
}

/** A few event-loop turns with timers, so that fetch() calls just made connect and write their requests. */
async function letRequestsGo(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 1));
}

/** Tokens the policy sampled in completion i (environment tokens excluded). */
export function policyTokens(r: Rollout, i: number): number {
  const m = r.tokenMasks?.[i];
  return m == null ? r.completionIds[i].length : m.reduce((a, x) => a + x, 0);
}
