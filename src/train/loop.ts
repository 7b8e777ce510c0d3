// The training loop every trainer shares: seeded epoch order, micro-batches by row count or token budget,
// gradient accumulation normalised by the real unit count of the whole optimizer step (so 4×1 and 1×4 give
// the same update), AdamW with HF's decay groups, warmup + schedule, clipping, eval hooks, JSONL metrics with
// a progress line, atomic checkpoints and exact resume (through run_state.ts).
// A trainer supplies only a TrainingTask: how to count units and compute a summed loss for a micro-batch.

import { z } from "zod";
import { clipGradNorm } from "../nn/clip.js";
import type { Module } from "../nn/module.js";
import { AdamW } from "../nn/optim.js";
import { Rng } from "../nn/rng.js";
import { createSchedule } from "../nn/schedule.js";
import { scopeAsync, type Tensor } from "../tensor/tensor.js";
import { syncGradients } from "./grad_sync.js";
import { type Metrics, MetricsLogger } from "./metrics.js";
import { NonFiniteGuard } from "./nonfinite.js";
import { atPrecision } from "./precision.js";
import { RunCheckpointer, type RunControl, runControl, TrainingInterrupted, yieldToEventLoop } from "./run_state.js";

export class TrainingError extends Error {
  override name = "TrainingError";
}

/** Fields shared by every trainer config (TRL/transformers TrainingArguments names in camelCase); `.describe()` feeds `--help`. */
export const LOOP_FIELDS = {
  learningRate: z.number().positive().default(1e-5).describe("Peak learning rate."),
  numTrainEpochs: z.number().positive().default(1).describe("Passes over the data when maxSteps is -1."),
  maxSteps: z.number().int().default(-1).describe("Optimizer steps to run; -1 derives them from numTrainEpochs."),
  perDeviceTrainBatchSize: z.number().int().positive().default(8).describe("Rows per micro-batch."),
  gradientAccumulationSteps: z.number().int().positive().default(1).describe("Micro-batches per optimizer step."),
  maxTokensPerBatch: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe("Cap on padded tokens per micro-batch (rows × longest row); 0 disables."),
  warmupSteps: z.number().int().nonnegative().default(0).describe("Linear warmup steps (wins over warmupRatio when > 0)."),
  warmupRatio: z.number().min(0).max(1).default(0).describe("Warmup as a fraction of total steps."),
  lrSchedulerType: z
    .enum(["constant", "constant_with_warmup", "linear", "cosine"])
    .default("linear")
    .describe("Learning-rate schedule after warmup."),
  weightDecay: z.number().min(0).default(0).describe("AdamW decoupled weight decay (not applied to biases and norm weights)."),
  adamBeta1: z.number().min(0).max(1).default(0.9).describe("AdamW beta1."),
  adamBeta2: z.number().min(0).max(1).default(0.999).describe("AdamW beta2."),
  adamEpsilon: z.number().positive().default(1e-8).describe("AdamW epsilon."),
  maxGradNorm: z.number().min(0).default(1).describe("Clip the global gradient norm to this value; 0 disables."),
  precision: z
    .enum(["fp32", "bf16"])
    .default("fp32")
    .describe("fp32 (TF32 on cuda) or bf16 autocast: fp32 master weights, bf16 matmul and attention products (cuda)."),
  seed: z.number().int().default(42).describe("Seed of data order and of every random choice in the trainer."),
  loggingSteps: z.number().int().positive().default(10).describe("Log metrics every N optimizer steps."),
  evalSteps: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe("Evaluate every N steps; 0 only at the end (when the trainer has an evaluator)."),
  saveSteps: z.number().int().nonnegative().default(0).describe("Checkpoint every N steps; 0 only at the end."),
  saveTotalLimit: z.number().int().positive().default(2).describe("Checkpoints kept on disk."),
  onNonfinite: z
    .enum(["stop", "skip"])
    .default("stop")
    .describe("A NaN/Inf loss or gradient: stop the run (no update applied), or skip that step's update and go on."),
};

export const LOOP_SCHEMA = z.object(LOOP_FIELDS).strict();
export type LoopConfig = z.output<typeof LOOP_SCHEMA>;

export interface MicroBatchResult {
  /** Loss summed over the micro-batch's units (tokens or examples); the loop divides by the step's total. */
  loss: Tensor;
  /** Per-micro-batch metrics, averaged over the step weighted by units. */
  metrics?: Record<string, number>;
  /** Counts summed over the whole run (e.g. `num_tokens`), logged as running totals and kept across resume. */
  totals?: Record<string, number>;
}

export interface TrainingTask<Row> {
  /** Tokens of a row (for token-budget batching). */
  rowTokens(row: Row): number;
  /** Units the loss of these rows is summed over (real tokens, pairs, examples); known before the forward pass. */
  countUnits(rows: Row[]): number;
  /** Forward pass: the summed loss of a micro-batch. */
  lossSum(rows: Row[]): MicroBatchResult | Promise<MicroBatchResult>;
  /** Optional evaluation, logged with an `eval_` prefix. */
  evaluate?(): Metrics | Promise<Metrics>;
}

export interface RunOptions<Row> extends RunControl {
  model: Module;
  task: TrainingTask<Row>;
  rows: readonly Row[];
  config: LoopConfig;
  /** Checkpoints and metrics.jsonl go here; null trains in memory only. */
  outputDir: string | null;
  /** Everything that should be written next to each checkpoint (the trainer's resolved config). */
  fullConfig?: Record<string, unknown>;
  label?: string;
  quiet?: boolean;
  /** Stop after this optimizer step as if interrupted (tests of resume); the checkpoint is written first. */
  stopAfterStep?: number;
}

export interface RunResult {
  step: number;
  history: Metrics[];
  interrupted: boolean;
}

/** Permutation of 0..n-1 for an epoch, from the seed alone (so resume can recompute it). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new Rng(seed * 7919 + epoch);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Consecutive micro-batches of at most `size` rows and (when > 0) `maxTokens` padded tokens. */
export function microBatches<Row>(rows: readonly Row[], size: number, maxTokens: number, tokens: (r: Row) => number): Row[][] {
  const out: Row[][] = [];
  let cur: Row[] = [];
  let longest = 0;
  for (const r of rows) {
    const t = tokens(r);
    const nextLongest = Math.max(longest, t);
    if (cur.length > 0 && (cur.length >= size || (maxTokens > 0 && nextLongest * (cur.length + 1) > maxTokens))) {
      out.push(cur);
      cur = [];
      longest = 0;
    }
    cur.push(r);
    longest = Math.max(longest, t);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function isNoDecay(name: string, t: Tensor): boolean {
  // HF Trainer: no weight decay on biases and normalisation weights
  return t.ndim < 2 || name.endsWith(".bias") || /norm/i.test(name);
}

export interface LoopOptimizer {
  optimizer: AdamW;
  /** Trainable parameters by name (what checkpoints save). */
  named: [string, Tensor][];
  /** Names of optimizer.params(), in its order (for namedState / loadNamedState). */
  optNames: string[];
}

/** AdamW over a module's trainable parameters with HF's decay groups (shared by the offline loop and online trainers). */
export function createOptimizer(
  model: Module,
  cfg: Pick<LoopConfig, "learningRate" | "weightDecay" | "adamBeta1" | "adamBeta2" | "adamEpsilon">,
  label = "train",
): LoopOptimizer {
  const named = [...model.namedParameters()].filter(([, t]) => t.requiresGrad);
  if (named.length === 0) throw new TrainingError(`[${label}] the model has no trainable parameters`);
  const names = named.map(([n]) => n);
  const decay = named.filter(([n, t]) => !isNoDecay(n, t)).map(([, t]) => t);
  const noDecay = named.filter(([n, t]) => isNoDecay(n, t)).map(([, t]) => t);
  const optimizer = new AdamW(
    [
      { params: decay, weightDecay: cfg.weightDecay },
      { params: noDecay, weightDecay: 0 },
    ].filter((g) => g.params.length > 0),
    { lr: cfg.learningRate, betas: [cfg.adamBeta1, cfg.adamBeta2], eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay },
  );
  const optNames = optimizer.params().map((p) => names[named.findIndex(([, t]) => t === p)]);
  return { optimizer, named, optNames };
}

/** Warmup (steps win over ratio) + the configured schedule over `totalSteps`. */
export function createLoopSchedule(
  cfg: Pick<LoopConfig, "learningRate" | "warmupSteps" | "warmupRatio" | "lrSchedulerType">,
  totalSteps: number,
) {
  const warmup = cfg.warmupSteps > 0 ? cfg.warmupSteps : Math.ceil(cfg.warmupRatio * totalSteps);
  return createSchedule({ type: cfg.lrSchedulerType, baseLr: cfg.learningRate, warmupSteps: warmup, totalSteps });
}

export interface AfterStepArgs {
  step: number;
  totalSteps: number;
  cfg: Pick<LoopConfig, "loggingSteps" | "evalSteps" | "saveSteps">;
  metrics: Metrics;
  history: Metrics[];
  logger: MetricsLogger;
  model: Module;
  evaluate?: () => Metrics | Promise<Metrics>;
  /** Write a checkpoint; returns its folder (null for in-memory runs). The online loop's first settles its rollouts in flight. */
  save: () => string | null | Promise<string | null>;
  stopAfterStep?: number;
  /** The run's checkpointer: a stop it reports (Ctrl-C) writes a checkpoint here and raises TrainingInterrupted. */
  run?: { stopRequested: boolean };
  label?: string;
}

/**
 * What every training loop does after an optimizer step (offline and online alike): log every loggingSteps,
 * evaluate every evalSteps and at the end, checkpoint every saveSteps, at the end and at an interruption.
 * Returns true when the run stops here as interrupted (stopAfterStep before the last step); throws
 * TrainingInterrupted, after writing a checkpoint, when the run was asked to stop (RunControl.signal).
 */
export async function afterStep(a: AfterStepArgs): Promise<boolean> {
  const { step, cfg } = a;
  const last = step === a.totalSteps;
  await yieldToEventLoop(); // let a Ctrl-C handler run between synchronous steps
  const stop = a.run?.stopRequested === true && !last;
  if (step % cfg.loggingSteps === 0 || last) {
    a.history.push({ step, ...a.metrics });
    a.logger.log(step, a.metrics, last);
  }
  if (a.evaluate && ((cfg.evalSteps > 0 && step % cfg.evalSteps === 0) || last)) {
    a.model.eval();
    const ev = await a.evaluate();
    a.model.train();
    const prefixed: Metrics = {};
    for (const [k, v] of Object.entries(ev)) prefixed[`eval_${k}`] = v;
    a.history.push({ step, ...prefixed });
    a.logger.log(step, prefixed, true);
  }
  if (stop) {
    const dir = await a.save();
    a.model.eval();
    throw new TrainingInterrupted(a.label ?? "train", step, dir);
  }
  if ((cfg.saveSteps > 0 && step % cfg.saveSteps === 0) || last || step === a.stopAfterStep) await a.save();
  if (step === a.stopAfterStep && !last) {
    a.model.eval();
    return true;
  }
  return false;
}

/** The offline loop, at the config's precision. */
export async function runTraining<Row>(opts: RunOptions<Row>): Promise<RunResult> {
  return atPrecision(opts.config.precision, () => runTrainingAt(opts));
}

async function runTrainingAt<Row>(opts: RunOptions<Row>): Promise<RunResult> {
  const { model, task, config: cfg } = opts;
  if (opts.rows.length === 0) throw new TrainingError("[train] the dataset has no rows");
  const { optimizer, named, optNames } = createOptimizer(model, cfg, "train");

  const accum = cfg.gradientAccumulationSteps;
  const batchesPerEpoch = microBatches(opts.rows, cfg.perDeviceTrainBatchSize, cfg.maxTokensPerBatch, task.rowTokens).length;
  const stepsPerEpoch = Math.max(1, Math.ceil(batchesPerEpoch / accum));
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(cfg.numTrainEpochs * stepsPerEpoch);
  const schedule = createLoopSchedule(cfg, totalSteps);

  const label = opts.label ?? "train";
  const checkpointer = new RunCheckpointer({
    outputDir: opts.outputDir,
    label,
    quiet: opts.quiet,
    named,
    optimizer,
    optNames,
    config: opts.fullConfig ?? { ...cfg },
    keep: cfg.saveTotalLimit,
    totalSteps,
    control: runControl(opts),
  });
  const restored = checkpointer.start();
  let step = restored?.step ?? 0;
  const history: Metrics[] = [];
  const totals: Record<string, number> = restored?.totals ?? {};

  const logger = new MetricsLogger(opts.outputDir === null ? null : `${opts.outputDir}/metrics.jsonl`, {
    total: totalSteps,
    label: opts.label,
    quiet: opts.quiet,
  });
  const save = () => checkpointer.save({ step, epoch: step / stepsPerEpoch, totalSteps, totals });
  const guard = new NonFiniteGuard(label, cfg.onNonfinite, named);

  let epochCache = -1;
  let epochBatches: Row[][] = [];
  const batchesOfStep = (s: number): Row[][] => {
    // optimizer step s (0-based) covers micro-batches [s*accum, (s+1)*accum) of the infinite epoch stream
    const out: Row[][] = [];
    for (let i = s * accum; i < (s + 1) * accum; i++) {
      const epoch = Math.floor(i / (stepsPerEpoch * accum));
      const within = i - epoch * stepsPerEpoch * accum;
      if (epoch !== epochCache) {
        const order = epochOrder(opts.rows.length, cfg.seed, epoch);
        epochBatches = microBatches(
          order.map((j) => opts.rows[j]),
          cfg.perDeviceTrainBatchSize,
          cfg.maxTokensPerBatch,
          task.rowTokens,
        );
        epochCache = epoch;
      }
      if (within < epochBatches.length) out.push(epochBatches[within]);
    }
    return out;
  };

  model.train();
  while (step < totalSteps) {
    const batches = batchesOfStep(step);
    const units = batches.reduce((a, b) => a + task.countUnits(b), 0);
    let lossTotal = 0;
    const sums: Record<string, number> = {};
    for (const mb of batches) {
      // on a device, what the micro-batch allocated is freed at the end of its scope (gradients are kept)
      await scopeAsync(async () => {
        const res = await task.lossSum(mb);
        lossTotal += res.loss.item();
        // a non-finite loss still runs backward: the guard then names the first parameter it poisons
        if (units > 0) res.loss.div(units).backward();
        const w = task.countUnits(mb);
        for (const [k, v] of Object.entries(res.metrics ?? {})) sums[k] = (sums[k] ?? 0) + v * w;
        for (const [k, v] of Object.entries(res.totals ?? {})) totals[k] = (totals[k] ?? 0) + v;
      });
      await yieldToEventLoop();
    }
    syncGradients(optimizer.params());
    const loss = units > 0 ? lossTotal / units : 0;
    const verdict = guard.check(step + 1, loss);
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

    const metrics: Metrics = { loss, learning_rate: lr, epoch: step / stepsPerEpoch };
    if (cfg.maxGradNorm > 0) metrics.grad_norm = gradNorm;
    for (const [k, v] of Object.entries(sums)) metrics[k] = units > 0 ? v / units : 0;
    Object.assign(metrics, totals);
    if (
      await afterStep({
        step,
        totalSteps,
        cfg,
        metrics,
        history,
        logger,
        model,
        evaluate: task.evaluate?.bind(task),
        save,
        stopAfterStep: opts.stopAfterStep,
        run: checkpointer,
        label,
      })
    ) {
      return { step, history, interrupted: true };
    }
  }
  model.eval();
  return { step, history, interrupted: false };
}
