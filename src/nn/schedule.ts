// Learning-rate schedules with transformers' formulas (`get_scheduler`): constant, constant with warmup,
// linear decay and cosine (`get_cosine_schedule_with_warmup`), each a multiplier of the base lr at a step.
// Step s is the number of optimizer steps already taken (the lr for the next step), as LambdaLR counts.
// Not here: restarts, polynomial, inverse-sqrt, or mutating an optimizer (callers set `opt.lr = lrAt(s)`).

export class ScheduleError extends Error {
  override name = "ScheduleError";
}

export type ScheduleType = "constant" | "constant_with_warmup" | "linear" | "cosine";

export interface ScheduleOptions {
  type: ScheduleType;
  /** The peak learning rate. */
  baseLr: number;
  /** Linear warmup from 0 over this many steps (ignored by "constant"). */
  warmupSteps?: number;
  /** Total optimizer steps (needed by "linear" and "cosine"). */
  totalSteps?: number;
  /** Cosine waves over the decay; 0.5 (default) is one half-wave from 1 to 0. */
  numCycles?: number;
}

type Factor = (step: number, warmup: number, total: number, numCycles: number) => number;

const warm = (step: number, warmup: number) => step / Math.max(1, warmup);

const SCHEDULES = {
  constant: () => 1,
  constant_with_warmup: (step, warmup) => (step < warmup ? warm(step, warmup) : 1),
  linear: (step, warmup, total) => (step < warmup ? warm(step, warmup) : Math.max(0, (total - step) / Math.max(1, total - warmup))),
  cosine: (step, warmup, total, numCycles) => {
    if (step < warmup) return warm(step, warmup);
    const progress = (step - warmup) / Math.max(1, total - warmup);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  },
} satisfies Record<ScheduleType, Factor>;

export interface Schedule {
  /** Multiplier of baseLr at a step (transformers' lr_lambda). */
  factorAt(step: number): number;
  /** baseLr * factorAt(step). */
  lrAt(step: number): number;
}

export function createSchedule(opts: ScheduleOptions): Schedule {
  const fn: Factor | undefined = (SCHEDULES as Record<string, Factor>)[opts.type];
  if (fn === undefined) throw new ScheduleError(`[schedule] unknown type '${opts.type}' (expected ${Object.keys(SCHEDULES).join(", ")})`);
  const warmup = opts.warmupSteps ?? 0;
  const numCycles = opts.numCycles ?? 0.5;
  const total = opts.totalSteps ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0) throw new ScheduleError(`[schedule] warmupSteps must be an integer >= 0, got ${warmup}`);
  if ((opts.type === "linear" || opts.type === "cosine") && !(Number.isInteger(total) && total > 0)) {
    throw new ScheduleError(`[schedule] '${opts.type}' needs totalSteps > 0, got ${opts.totalSteps}`);
  }
  const factorAt = (step: number) => fn(step, warmup, total, numCycles);
  return { factorAt, lrAt: (step) => opts.baseLr * factorAt(step) };
}

/** transformers' TrainingArguments.get_warmup_steps: an integer count, or ceil(ratio * total) for a ratio < 1. */
export function warmupStepsFor(totalSteps: number, warmup: number): number {
  return warmup >= 1 || warmup === 0 ? Math.floor(warmup) : Math.ceil(totalSteps * warmup);
}
