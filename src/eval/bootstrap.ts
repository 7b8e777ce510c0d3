// Paired bootstrap intervals for "A beats B" claims, and the verdict they support. Units (problems, solutions,
// steps) are resampled with replacement, the same draw for both sides (paired); with several groups (seeds) the
// groups are resampled first, then units within each chosen group (a two-stage bootstrap), and the statistic
// averages over the chosen groups. Percentile interval. Deterministic for a given seed.
// Not here: which units or statistic a claim uses (src/lab/claims.ts), or any model.

import { Rng } from "../nn/rng.js";
import { MetricError } from "./errors.js";

/** What a 95% interval of a difference (contender − baseline) supports. */
export type Verdict = "holds" | "contradicted" | "not shown" | "not measured";
export const VERDICTS: readonly Verdict[] = Object.freeze(["holds", "contradicted", "not shown", "not measured"]);

/** holds: the whole interval is above 0; contradicted: below 0; not shown: it contains 0; null: not measured. */
export function verdictOf(interval: readonly [number, number] | null): Verdict {
  if (interval === null || !Number.isFinite(interval[0]) || !Number.isFinite(interval[1])) return "not measured";
  if (interval[0] > 0) return "holds";
  if (interval[1] < 0) return "contradicted";
  return "not shown";
}

export interface BootstrapOptions {
  /** Resamples. Default 2000. */
  resamples?: number;
  /** Coverage of the interval. Default 0.95. */
  level?: number;
  /** Seed of the resampling stream. Default 0. */
  seed?: number;
  /** Resample the groups too (true, default), or keep every group once and resample units within each. */
  resampleGroups?: boolean;
}

export interface BootstrapResult {
  /** The statistic on the data as observed. */
  estimate: number;
  /** Percentile interval [low, high]; null when no resample gave a finite statistic. */
  interval: [number, number] | null;
  /** Resamples whose statistic was finite (others, e.g. a class missing from an F1, are dropped). */
  valid: number;
}

/** The q-quantile of sorted values (linear interpolation between order statistics, as numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * Bootstrap a statistic over grouped units: `groups[g]` are the units of group g (a seed); `statistic` receives
 * one (resampled) unit list per (resampled) group and returns a number (NaN or ±∞ for "undefined").
 */
export function bootstrap<U>(
  groups: readonly (readonly U[])[],
  statistic: (groups: readonly (readonly U[])[]) => number,
  opts: BootstrapOptions = {},
): BootstrapResult {
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new MetricError(`[bootstrap] resamples must be an integer >= 1, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new MetricError(`[bootstrap] level must be in (0, 1), got ${level}`);
  const usable = groups.filter((g) => g.length > 0);
  if (usable.length === 0) return { estimate: Number.NaN, interval: null, valid: 0 };
  const estimate = statistic(usable);
  const rng = new Rng(opts.seed ?? 0);
  const pick = (n: number) => Math.min(n - 1, Math.floor(rng.next() * n));
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const chosen: U[][] = [];
    for (let g = 0; g < usable.length; g++) {
      const src = usable.length === 1 || opts.resampleGroups === false ? usable[g]! : usable[pick(usable.length)]!;
      const units = new Array<U>(src.length);
      for (let i = 0; i < src.length; i++) units[i] = src[pick(src.length)]!;
      chosen.push(units);
    }
    const s = statistic(chosen);
    if (Number.isFinite(s)) stats.push(s);
  }
  if (stats.length === 0) return { estimate, interval: null, valid: 0 };
  stats.sort((a, b) => a - b);
  const tail = (1 - level) / 2;
  return { estimate, interval: [quantile(stats, tail), quantile(stats, 1 - tail)], valid: stats.length };
}

/** A paired unit: the contender's and the baseline's value on the same problem. */
export interface Pair {
  a: number;
  b: number;
}

/** Mean over groups of mean_i (a_i − b_i): the usual statistic for accuracy differences. */
export function meanDifference(groups: readonly (readonly Pair[])[]): number {
  let total = 0;
  for (const g of groups) {
    let s = 0;
    for (const p of g) s += p.a - p.b;
    total += s / g.length;
  }
  return total / groups.length;
}

/** Paired bootstrap of the mean difference a − b over units (and groups). */
export function pairedBootstrap(groups: readonly (readonly Pair[])[], opts: BootstrapOptions = {}): BootstrapResult {
  for (const [g, units] of groups.entries()) {
    units.forEach((p, i) => {
      if (!Number.isFinite(p.a) || !Number.isFinite(p.b)) throw new MetricError(`[pairedBootstrap] group ${g} unit ${i} is not finite`);
    });
  }
  return bootstrap(groups, meanDifference, opts);
}

/** Unpaired: the difference of means of two independent samples per group (e.g. step times of two methods). */
export function unpairedBootstrap(
  groups: readonly { a: readonly number[]; b: readonly number[] }[],
  opts: BootstrapOptions = {},
): BootstrapResult {
  // each side is resampled on its own within a group (the samples are independent)
  const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const rng = new Rng((opts.seed ?? 0) + 1);
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  const usable = groups.filter((g) => g.a.length > 0 && g.b.length > 0);
  if (usable.length === 0) return { estimate: Number.NaN, interval: null, valid: 0 };
  const estimate = usable.reduce((s, g) => s + mean(g.a) - mean(g.b), 0) / usable.length;
  const draw = (xs: readonly number[]) => {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[Math.min(xs.length - 1, Math.floor(rng.next() * xs.length))]!;
    return s / xs.length;
  };
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let g = 0; g < usable.length; g++) {
      const src = usable.length === 1 ? usable[0]! : usable[Math.min(usable.length - 1, Math.floor(rng.next() * usable.length))]!;
      s += draw(src.a) - draw(src.b);
    }
    stats.push(s / usable.length);
  }
  stats.sort((a, b) => a - b);
  const tail = (1 - level) / 2;
  return { estimate, interval: [quantile(stats, tail), quantile(stats, 1 - tail)], valid: stats.length };
}
