// The outer loop of the group-RL trainers (GRPO family, RLOO): per generation round, take the next prompts,
// sample G completions each with the current policy, score them, optionally drop zero-signal groups (DAPO
// dynamic sampling), compute old / reference log-probs, let the algorithm turn rewards into advantages, then
// take `numIterations` optimizer steps over the same batch (gradientAccumulationSteps micro-batches each).
// As TRL with steps_per_generation = gradient_accumulation_steps: one generation batch = one optimizer step's
// perDeviceTrainBatchSize × gradientAccumulationSteps completions. Micro-batches keep rollout order (TRL shuffles).

import { RemoteGenerator } from "../generate/remote.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/causal_lm.js";
import { type LoraModel, withAdaptersDisabled } from "../models/lora.js";
import { clipGradNorm } from "../nn/clip.js";
import { Rng } from "../nn/rng.js";
import type { RewardBreakdown, RewardFn } from "../rewards/types.js";
import { fromArray, scope, type Tensor } from "../tensor/index.js";
import { frozenCopy, resolvePolicy } from "./dpo.js";
import { syncGradients } from "./grad_sync.js";
import { afterStep, createLoopSchedule, createOptimizer, epochOrder, type LoopConfig, type RunResult, TrainingError } from "./loop.js";
import { type Metrics, MetricsLogger } from "./metrics.js";
import { NonFiniteGuard } from "./nonfinite.js";
import { type PendingBatch, type PendingBatchJson, pendingFromJson, pendingToJson } from "./online_resume.js";
import { atPrecision } from "./precision.js";
import {
  completionLogprobs,
  completionLogprobsNoGrad,
  concatRollouts,
  generateRollouts,
  generateRolloutsRemote,
  groupsWithSignal,
  type PackedRollout,
  type PromptExample,
  packRollout,
  padRows,
  type Rollout,
  rolloutMetrics,
  scoreRollout,
  selectGroups,
} from "./rollout.js";
import { RunCheckpointer, type RunControl, runControl } from "./run_state.js";

/** The generation / rollout part of an online trainer's resolved config (TRL names). */
export interface OnlineConfig extends LoopConfig {
  numGenerations: number;
  maxCompletionLength: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  beta: number;
  numIterations: number;
  maskTruncatedCompletions: boolean;
  rewardWeights: number[] | null;
  /** Sample rollouts from this OpenAI-compatible server instead of the local policy. */
  generatorUrl?: string | null;
  dynamicSampling?: boolean;
  dynamicSamplingMaxRounds?: number;
}

/** One generation batch after scoring: what the algorithm and its micro-batch losses see. */
export interface GenerationBatch {
  rollout: Rollout;
  rewards: RewardBreakdown;
  /** Per completion: false when maskTruncatedCompletions zeroes its mask. */
  counts: boolean[];
  /** Per-completion token log-probs of the policy before this batch's updates (when the algorithm needs them). */
  old: Float32Array[] | null;
  /** Per-completion reference log-probs (when beta != 0). */
  ref: Float32Array[] | null;
  /** Completion tokens that count, over the whole batch (DAPO's normaliser). */
  activeTokens: number;
  /** Number of micro-batches one optimizer step takes over this batch. */
  numMicroBatches: number;
  /** Rollout metrics; prepare() may add its own. */
  metrics: Record<string, number>;
}

/** One micro-batch of a step, with the policy's differentiable log-probs. */
export interface MicroBatch {
  /** Row indices into the generation batch. */
  rows: number[];
  packed: PackedRollout;
  /** [b, Tc]: completion tokens that count. */
  mask: Tensor;
  /** [b, Tc] policy log-probs (with gradient). */
  logps: Tensor;
  /** [b, Tc] token entropies (no gradient). */
  entropies: Tensor;
  /** [b, Tc] old / reference log-probs (zero-padded), when the batch has them. */
  old?: Tensor;
  ref?: Tensor;
  /** 0-based pass over this batch (numIterations). */
  iteration: number;
}

/** A micro-batch loss plus metrics as (numerator, denominator) pairs, summed over the step then divided. */
export interface MicroLoss {
  loss: Tensor;
  sums?: Record<string, [number, number]>;
  /** The advantages the loss used ([b] or [b, Tc]), for inspection. */
  advantages?: Tensor;
}

export interface OnlineAlgorithm<C extends OnlineConfig> {
  label: string;
  /** Whether old log-probs are computed (always for μ > 1). */
  needsOld(cfg: C): boolean;
  /** Turn rewards into advantages (stored by the algorithm) and add metrics. */
  prepare(batch: GenerationBatch, cfg: C): void | Promise<void>;
  /** The loss of one micro-batch, already scaled for accumulation (the step's gradient is the sum). */
  microLoss(batch: GenerationBatch, mb: MicroBatch, cfg: C): MicroLoss;
}

export interface OnlineRunOptions<C extends OnlineConfig> extends RunControl {
  model: CausalLM | LoraModel<CausalLM>;
  tokenizer: Tokenizer;
  prompts: PromptExample[];
  rewardFuncs: RewardFn[];
  config: C;
  algorithm: OnlineAlgorithm<C>;
  /** Explicit frozen reference (beta != 0); default: the base under LoRA, else a frozen copy of the policy. */
  refModel?: CausalLM;
  outputDir: string | null;
  fullConfig?: Record<string, unknown>;
  quiet?: boolean;
  stopAfterStep?: number;
  evaluate?: () => Metrics | Promise<Metrics>;
  /** Called after every micro-batch loss (tests read ratios and gradients here). */
  onMicroBatch?: (batch: GenerationBatch, mb: MicroBatch, out: MicroLoss) => void;
  /** Called with every generation batch once prepared. */
  onBatch?: (batch: GenerationBatch) => void;
}

/** What the group-RL loop keeps in a checkpoint besides the common run state. */
type OnlineTrainerState = { pending?: PendingBatchJson };

/** The online group-RL loop, at the config's precision. */
export async function runOnlineRl<C extends OnlineConfig>(o: OnlineRunOptions<C>): Promise<RunResult> {
  return atPrecision(o.config.precision, () => runOnlineRlAt(o));
}

async function runOnlineRlAt<C extends OnlineConfig>(o: OnlineRunOptions<C>): Promise<RunResult> {
  const { config: cfg, algorithm: algo, tokenizer: tok } = o;
  const label = algo.label;
  if (o.prompts.length === 0) throw new TrainingError(`[${label}] the dataset has no prompts`);
  const g = cfg.numGenerations;
  const genSize = cfg.perDeviceTrainBatchSize * cfg.gradientAccumulationSteps;
  const promptsPerRound = genSize / g;
  const { policy, trainable, lora } = resolvePolicy(o.model);
  const { optimizer, named, optNames } = createOptimizer(trainable, cfg, label);
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  // the reference only when beta != 0 (TRL loads none with beta = 0)
  let refScore: ((r: Rollout) => Float32Array[]) | null = null;
  if (cfg.beta !== 0) {
    const bs = cfg.perDeviceTrainBatchSize;
    if (o.refModel !== undefined || lora === null) {
      const ref = o.refModel ?? frozenCopy(policy);
      refScore = (r) => completionLogprobsNoGrad(ref, r, padId, bs, cfg.temperature);
    } else {
      refScore = (r) => withAdaptersDisabled(lora, () => completionLogprobsNoGrad(policy, r, padId, bs, cfg.temperature));
    }
  }

  const roundsPerEpoch = Math.ceil(o.prompts.length / promptsPerRound);
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * roundsPerEpoch) * cfg.numIterations;
  const schedule = createLoopSchedule(cfg, totalSteps);
  const rng = new Rng(cfg.seed);
  const checkpointer = new RunCheckpointer<OnlineTrainerState>({
    outputDir: o.outputDir,
    label,
    quiet: o.quiet,
    named,
    optimizer,
    optNames,
    rng,
    cursor: true,
    config: o.fullConfig ?? ({ ...cfg } as Record<string, unknown>),
    keep: cfg.saveTotalLimit,
    totalSteps,
    control: runControl(o),
  });
  const restored = checkpointer.start();
  const guard = new NonFiniteGuard(label, cfg.onNonfinite, named, { watchCollapse: false });
  let cursor = restored?.cursor ?? 0; // prompts consumed so far (over epochs)
  let step = restored?.step ?? 0;
  const totals: Record<string, number> = restored?.totals ?? {};
  const logger = new MetricsLogger(o.outputDir === null ? null : `${o.outputDir}/metrics.jsonl`, {
    total: totalSteps,
    label,
    quiet: o.quiet,
  });
  // the generation batch being trained on; saved while passes over it remain (numIterations > 1)
  let current: PendingBatch | null = null;
  let resumed: PendingBatch | null =
    restored?.trainer?.pending === undefined ? null : pendingFromJson(restored.trainer.pending, o.prompts, `[${label}] ${restored.dir}`);
  const save = () => {
    const trainer = current !== null && current.iteration < cfg.numIterations ? { pending: pendingToJson(current) } : undefined;
    return checkpointer.save({ step, epoch: cursor / o.prompts.length, totalSteps, totals, cursor, trainer });
  };

  const nextPrompts = (n: number): PromptExample[] => {
    const out: PromptExample[] = [];
    const np = o.prompts.length;
    for (let i = 0; i < n; i++, cursor++) {
      const epoch = Math.floor(cursor / np);
      out.push(o.prompts[epochOrder(np, cfg.seed, epoch)[cursor - epoch * np]]);
    }
    return out;
  };
  const remote = cfg.generatorUrl ? new RemoteGenerator({ url: cfg.generatorUrl, tokenizer: tok }) : null;
  const rolloutOf = async (n: number): Promise<Rollout> => {
    if (remote !== null) return generateRolloutsRemote(remote, nextPrompts(n), { ...cfg, rng, tokenizer: tok });
    trainable.eval();
    const r = generateRollouts(policy, nextPrompts(n), { ...cfg, rng, tokenizer: tok });
    trainable.train();
    return r;
  };

  /** Sample, score and (DAPO) filter one generation batch; null when no group carried a learning signal. */
  const sampleBatch = async (): Promise<{ batch: PendingBatch | null; metrics: Metrics }> => {
    // DAPO dynamic sampling: refill with fresh prompts, at most maxRounds rounds
    let rollout = await rolloutOf(promptsPerRound);
    let rewards = await scoreRollout(rollout, o.rewardFuncs, cfg.rewardWeights);
    const metrics: Metrics = { ...rolloutMetrics(rollout, rewards) };
    if (cfg.dynamicSampling) {
      const kept: Rollout[] = [selectGroups(rollout, groupsWithSignal(rewards.total, g))];
      let groups = kept[0].prompts.length;
      let rounds = 1;
      while (groups < promptsPerRound && rounds < (cfg.dynamicSamplingMaxRounds ?? 3)) {
        const more = await rolloutOf(promptsPerRound);
        const r = await scoreRollout(more, o.rewardFuncs, cfg.rewardWeights);
        kept.push(selectGroups(more, groupsWithSignal(r.total, g)));
        groups += kept[kept.length - 1].prompts.length;
        rounds++;
      }
      const all = concatRollouts(kept);
      rollout = selectGroups(
        all,
        Array.from({ length: Math.min(groups, promptsPerRound) }, (_, k) => k),
      );
      rewards = await scoreRollout(rollout, o.rewardFuncs, cfg.rewardWeights);
      metrics["dynamic_sampling/rounds"] = rounds;
      metrics["dynamic_sampling/kept_groups"] = rollout.prompts.length;
    }
    if (rollout.completionIds.length === 0) return { batch: null, metrics };
    const counts = rollout.finishReasons.map((f) => !(cfg.maskTruncatedCompletions && f === "length"));
    const mbSize = cfg.perDeviceTrainBatchSize;
    return {
      batch: {
        rollout,
        rewards,
        counts,
        old: algo.needsOld(cfg) ? completionLogprobsNoGrad(policy, rollout, padId, mbSize, cfg.temperature) : null,
        ref: refScore === null ? null : refScore(rollout),
        metrics: metrics as Record<string, number>,
        iteration: 0,
      },
      metrics,
    };
  };

  const history: Metrics[] = [];
  while (step < totalSteps) {
    const t0 = performance.now();
    let pending = resumed;
    resumed = null;
    if (pending === null) {
      const sampled = await sampleBatch();
      if (sampled.batch === null) {
        // no group carried a learning signal: the step passes without an update
        current = null;
        step++;
        const m: Metrics = { ...sampled.metrics, skipped: 1, learning_rate: schedule.lrAt(step - 1) };
        history.push({ step, ...m });
        logger.log(step, m, step === totalSteps);
        continue;
      }
      pending = sampled.batch;
    }
    current = pending;
    const { rollout, rewards, counts } = pending;
    const metrics: Metrics = { ...pending.metrics }; // prepare() adds its own metrics to this copy
    const genSeconds = (performance.now() - t0) / 1000;
    const nRows = rollout.completionIds.length;
    const mbSize = cfg.perDeviceTrainBatchSize;
    const batch: GenerationBatch = {
      rollout,
      rewards,
      counts,
      old: pending.old,
      ref: pending.ref,
      activeTokens: rollout.completionIds.reduce((a, c, i) => a + (counts[i] ? c.length : 0), 0),
      numMicroBatches: Math.ceil(nRows / mbSize),
      metrics: metrics as Record<string, number>,
    };
    await algo.prepare(batch, cfg);
    o.onBatch?.(batch);

    for (let iteration = pending.iteration; iteration < cfg.numIterations && step < totalSteps; iteration++) {
      const t1 = performance.now();
      let lossTotal = 0;
      const sums: Record<string, [number, number]> = {};
      for (let s = 0; s < nRows; s += mbSize) {
        // on a device, what the micro-batch allocated is freed at the end of its scope (gradients are kept)
        scope(() => {
          const rows = Array.from({ length: Math.min(mbSize, nRows - s) }, (_, j) => s + j);
          const packed = packRollout(
            rows.map((i) => rollout.promptIds[i]),
            rows.map((i) => rollout.completionIds[i]),
            padId,
          );
          const tc = packed.completionWidth;
          const maskData = Float32Array.from(packed.completionMask.hostData());
          rows.forEach((i, r) => {
            if (!counts[i]) maskData.fill(0, r * tc, (r + 1) * tc);
          });
          packed.completionMask = fromArray(maskData, packed.completionMask.shape);
          const { logps, entropies } = completionLogprobs(policy, packed, { temperature: cfg.temperature, entropies: true });
          const mb: MicroBatch = {
            rows,
            packed,
            mask: packed.completionMask,
            logps,
            entropies: entropies as Tensor,
            old:
              batch.old === null
                ? undefined
                : padRows(
                    rows.map((i) => batch.old![i]),
                    tc,
                  ),
            ref:
              batch.ref === null
                ? undefined
                : padRows(
                    rows.map((i) => batch.ref![i]),
                    tc,
                  ),
            iteration,
          };
          const out = algo.microLoss(batch, mb, cfg);
          lossTotal += out.loss.item(); // non-finite: caught with the gradients before the update
          out.loss.backward();
          o.onMicroBatch?.(batch, mb, out);
          // mean token entropy of the policy on counted completion tokens
          const ent = mb.entropies.hostData();
          let e = 0;
          let n = 0;
          for (let k = 0; k < maskData.length; k++) {
            if (maskData[k] === 0) continue;
            e += ent[k];
            n++;
          }
          const add = (k: string, num: number, den: number) => {
            const cur = sums[k] ?? [0, 0];
            sums[k] = [cur[0] + num, cur[1] + den];
          };
          add("entropy", e, n);
          for (const [k, [num, den]] of Object.entries(out.sums ?? {})) add(k, num, den);
        });
      }
      syncGradients(optimizer.params());
      const verdict = guard.check(step + 1, lossTotal);
      const lr = schedule.lrAt(step);
      let gradNorm = verdict.norm;
      if (verdict.apply) {
        if (cfg.maxGradNorm > 0) gradNorm = clipGradNorm(optimizer.params(), cfg.maxGradNorm);
        optimizer.lr = lr;
        optimizer.step();
      } else {
        totals.nonfinite_skipped = (totals.nonfinite_skipped ?? 0) + 1;
      }
      optimizer.zeroGrad();
      step++;
      pending.iteration = iteration + 1;
      totals.num_tokens =
        (totals.num_tokens ?? 0) +
        rollout.completionIds.reduce((a, c, i) => a + c.length + rollout.promptIds[i].length, 0) / cfg.numIterations;

      const m: Metrics = { loss: lossTotal, learning_rate: lr, epoch: cursor / o.prompts.length, ...metrics };
      if (cfg.maxGradNorm > 0) m.grad_norm = gradNorm;
      for (const [k, [num, den]] of Object.entries(sums)) m[k] = den > 0 ? num / den : 0;
      m.step_time = genSeconds / cfg.numIterations + (performance.now() - t1) / 1000;
      Object.assign(m, totals);
      if (
        await afterStep({
          step,
          totalSteps,
          cfg,
          metrics: m,
          history,
          logger,
          model: trainable,
          evaluate: o.evaluate,
          save,
          stopAfterStep: o.stopAfterStep,
          run: checkpointer,
          label,
        })
      ) {
        return { step, history, interrupted: true };
      }
    }
  }
  trainable.eval();
  return { step, history, interrupted: false };
}

/** Sum of per-row values: a helper for metrics over the rows of a micro-batch. */
export function rowsMean(values: readonly number[], rows: readonly number[]): [number, number] {
  let s = 0;
  for (const i of rows) s += values[i];
  return [s, rows.length];
}
