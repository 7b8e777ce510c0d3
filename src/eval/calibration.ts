// Calibration and ranking of probabilistic scores against binary outcomes: expected calibration error (equal-width
// bins; the last bin includes 1), Brier score, and AUROC as the Mann-Whitney statistic with ties counted as 1/2
// (average ranks). Not here: reliability plots (src/report) or any fitting (temperature scaling).

import { MetricError } from "./errors.js";

function check(probs: readonly number[], labels: readonly boolean[], tag: string): void {
  if (probs.length !== labels.length) throw new MetricError(`[${tag}] ${probs.length} scores but ${labels.length} labels`);
  if (probs.length === 0) throw new MetricError(`[${tag}] no scores`);
}

export interface EceResult {
  ece: number;
  /** Per bin: [lo, hi), count, mean confidence, fraction positive (NaN for empty bins). */
  bins: { lo: number; hi: number; count: number; confidence: number; accuracy: number }[];
}

/** ECE = Σ_b (n_b / N) |mean(y in b) − mean(p in b)| over `numBins` equal-width bins of [0, 1]. */
export function expectedCalibrationError(probs: readonly number[], labels: readonly boolean[], numBins = 10): EceResult {
  check(probs, labels, "ece");
  if (!Number.isInteger(numBins) || numBins < 1) throw new MetricError(`[ece] numBins must be an integer >= 1, got ${numBins}`);
  const count = new Array<number>(numBins).fill(0);
  const conf = new Array<number>(numBins).fill(0);
  const pos = new Array<number>(numBins).fill(0);
  probs.forEach((p, i) => {
    if (!(p >= 0 && p <= 1)) throw new MetricError(`[ece] score ${i} must be a probability in [0, 1], got ${p}`);
    const b = Math.min(Math.floor(p * numBins), numBins - 1);
    count[b]!++;
    conf[b]! += p;
    if (labels[i]) pos[b]!++;
  });
  let ece = 0;
  const bins = count.map((c, b) => {
    const confidence = c === 0 ? Number.NaN : conf[b]! / c;
    const accuracy = c === 0 ? Number.NaN : pos[b]! / c;
    if (c > 0) ece += (c / probs.length) * Math.abs(accuracy - confidence);
    return { lo: b / numBins, hi: (b + 1) / numBins, count: c, confidence, accuracy };
  });
  return { ece, bins };
}

/** Mean squared error between probabilities and 0/1 outcomes. */
export function brierScore(probs: readonly number[], labels: readonly boolean[]): number {
  check(probs, labels, "brier");
  return probs.reduce((s, p, i) => s + (p - (labels[i] ? 1 : 0)) ** 2, 0) / probs.length;
}

/** P(score of a random positive > score of a random negative) + ½ P(tie); NaN when a class is missing. */
export function auroc(scores: readonly number[], labels: readonly boolean[]): number {
  check(scores, labels, "auroc");
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(scores.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const avg = (i + j) / 2 + 1; // 1-based average rank of the tie group
    for (let k = i; k <= j; k++) ranks[order[k]![1]] = avg;
    i = j + 1;
  }
  let nPos = 0;
  let rankSum = 0;
  labels.forEach((l, i) => {
    if (l) {
      nPos++;
      rankSum += ranks[i]!;
    }
  });
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
