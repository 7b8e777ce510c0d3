// Small-sample probes for "does this signal add information beyond these features": logistic regression by
// Newton's method (L2 ridge, features standardised, intercept unpenalised) and AUROC within strata (the
// pairs-weighted mean of per-stratum AUROCs, so a score cannot win by telling strata apart).
// Not here: calibration curves (calibration.ts) or any training of models.

import { auroc } from "./calibration.js";
import { MetricError } from "./errors.js";

export interface LogisticModel {
  /** Weights per feature (original scale) and intercept. */
  weights: number[];
  bias: number;
  predict(x: readonly number[]): number;
}

/** Fit P(y | x) = σ(w·x + b); `ridge` penalises ||w||² on standardised features. */
export function fitLogistic(
  xs: readonly (readonly number[])[],
  ys: readonly boolean[],
  opts: { ridge?: number; iters?: number } = {},
): LogisticModel {
  if (xs.length !== ys.length || xs.length === 0)
    throw new MetricError(`[fitLogistic] need equal, non-empty rows and labels, got ${xs.length} and ${ys.length}`);
  const d = xs[0]!.length;
  if (xs.some((r) => r.length !== d)) throw new MetricError("[fitLogistic] rows have different lengths");
  const ridge = opts.ridge ?? 1e-3;
  const n = xs.length;
  const mu = new Array<number>(d).fill(0);
  const sd = new Array<number>(d).fill(0);
  for (const r of xs)
    r.forEach((v, j) => {
      mu[j]! += v / n;
    });
  for (const r of xs)
    r.forEach((v, j) => {
      sd[j]! += (v - mu[j]!) ** 2 / n;
    });
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const z = xs.map((r) => [...r.map((v, j) => (v - mu[j]!) / sd[j]!), 1]); // intercept last
  const p = d + 1;
  let w = new Array<number>(p).fill(0);
  for (let it = 0; it < (opts.iters ?? 50); it++) {
    const g = new Array<number>(p).fill(0);
    const h = Array.from({ length: p }, () => new Array<number>(p).fill(0));
    for (let i = 0; i < n; i++) {
      const zi = z[i]!;
      let s = 0;
      for (let j = 0; j < p; j++) s += w[j]! * zi[j]!;
      const pi = 1 / (1 + Math.exp(-s));
      const r = pi - (ys[i] ? 1 : 0);
      const v = Math.max(pi * (1 - pi), 1e-9);
      for (let j = 0; j < p; j++) {
        g[j]! += r * zi[j]!;
        for (let k = 0; k <= j; k++) h[j]![k]! += v * zi[j]! * zi[k]!;
      }
    }
    for (let j = 0; j < p; j++) {
      for (let k = 0; k < j; k++) h[k]![j] = h[j]![k]!;
      if (j < d) {
        g[j]! += ridge * n * w[j]!;
        h[j]![j]! += ridge * n;
      } else h[j]![j]! += 1e-9;
    }
    const step = solve(h, g);
    w = w.map((x, j) => x - step[j]!);
    if (step.reduce((s, x) => s + Math.abs(x), 0) < 1e-10) break;
  }
  const weights = w.slice(0, d).map((x, j) => x / sd[j]!);
  const bias = w[d]! - weights.reduce((s, x, j) => s + x * mu[j]!, 0);
  return {
    weights,
    bias,
    predict: (x) => 1 / (1 + Math.exp(-(bias + x.reduce((s, v, j) => s + v * weights[j]!, 0)))),
  };
}

/** Solve A x = b (A symmetric positive definite, small) by Gaussian elimination with partial pivoting. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((r, i) => [...r, b[i]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    const d = m[c]![c]! || 1e-12;
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / d;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / (m[r]![r]! || 1e-12);
  }
  return x;
}

export interface StratifiedAuroc {
  /** Pairs-weighted mean of the per-stratum AUROCs (NaN when no stratum has both classes). */
  auroc: number;
  /** Per stratum: its AUROC (NaN with one class), positives and negatives. */
  strata: { key: string; auroc: number; positives: number; negatives: number }[];
}

/** AUROC within each stratum (e.g. step position), combined with weights positives × negatives. */
export function stratifiedAuroc(scores: readonly number[], labels: readonly boolean[], strata: readonly string[]): StratifiedAuroc {
  if (scores.length !== labels.length || scores.length !== strata.length) {
    throw new MetricError(`[stratifiedAuroc] ${scores.length} scores, ${labels.length} labels, ${strata.length} strata`);
  }
  const by = new Map<string, number[]>();
  strata.forEach((k, i) => {
    const list = by.get(k);
    if (list === undefined) by.set(k, [i]);
    else list.push(i);
  });
  let num = 0;
  let den = 0;
  const out: StratifiedAuroc["strata"] = [];
  for (const key of [...by.keys()].sort()) {
    const idx = by.get(key)!;
    const pos = idx.filter((i) => labels[i]).length;
    const neg = idx.length - pos;
    const a =
      pos > 0 && neg > 0
        ? auroc(
            idx.map((i) => scores[i]!),
            idx.map((i) => labels[i]!),
          )
        : Number.NaN;
    if (Number.isFinite(a)) {
      num += a * pos * neg;
      den += pos * neg;
    }
    out.push({ key, auroc: a, positives: pos, negatives: neg });
  }
  return { auroc: den === 0 ? Number.NaN : num / den, strata: out };
}
