// Metrics of choosing among N sampled solutions per problem: best-of-N accuracy (take the highest score; ties go
// to the earliest candidate), pass@k with the unbiased estimator of Chen et al. 2021 (2107.03374),
// 1 − C(n−c, k)/C(n, k) computed as a stable product, and maj@k: majority vote over the first k final answers
// (null answers abstain), ties broken by the answer that appears first among those k. Not here: weighted voting
// or search (src/search).

import { MetricError } from "./errors.js";

export interface Candidate {
  score: number;
  correct: boolean;
  /** Final answer, for majority voting (null: no answer). */
  answer?: string | null;
}

/** Index of the highest score (the first on ties); -1 for no candidates. */
export function bestIndex(scores: readonly number[]): number {
  let best = -1;
  scores.forEach((s, i) => {
    if (Number.isNaN(s)) throw new MetricError(`[bestOfN] score ${i} is NaN`);
    if (best < 0 || s > scores[best]!) best = i;
  });
  return best;
}

/** Fraction of problems whose highest-scored candidate (among the first n, default all) is correct. */
export function bestOfNAccuracy(problems: readonly (readonly Candidate[])[], n?: number): number {
  if (problems.length === 0) throw new MetricError("[bestOfN] no problems");
  let hits = 0;
  problems.forEach((cands, p) => {
    const c = n === undefined ? cands : cands.slice(0, n);
    if (c.length === 0) throw new MetricError(`[bestOfN] problem ${p} has no candidates`);
    if (c[bestIndex(c.map((x) => x.score))]!.correct) hits++;
  });
  return hits / problems.length;
}

/** Unbiased pass@k from n samples of which c are correct: 1 − C(n−c, k)/C(n, k). */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw new MetricError(`[passAtK] need integers 0 <= c <= n, 1 <= k <= n; got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  // C(n−c, k)/C(n, k) = Π_{i=n−c+1..n} (1 − k/i)
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/** Mean pass@k over problems, each given as its list of sample correctness. */
export function meanPassAtK(problems: readonly (readonly boolean[])[], k: number): number {
  if (problems.length === 0) throw new MetricError("[passAtK] no problems");
  return problems.reduce((s, c) => s + passAtK(c.length, c.filter(Boolean).length, k), 0) / problems.length;
}

/** The majority answer among the first k answers (null abstains); first-seen wins ties; null if all abstain. */
export function majorityAnswer(answers: readonly (string | null | undefined)[], k = answers.length): string | null {
  const counts = new Map<string, number>(); // insertion order = first appearance
  for (const a of answers.slice(0, k)) if (a !== null && a !== undefined) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best: string | null = null;
  let bestCount = 0;
  for (const [a, c] of counts) {
    if (c > bestCount) {
      best = a;
      bestCount = c;
    }
  }
  return best;
}

/** Fraction of problems whose maj@k answer equals the gold answer. */
export function majAtK(problems: readonly { answers: readonly (string | null)[]; gold: string }[], k?: number): number {
  if (problems.length === 0) throw new MetricError("[majAtK] no problems");
  return problems.filter((p) => majorityAnswer(p.answers, k ?? p.answers.length) === p.gold).length / problems.length;
}

/** maj@k over scored candidates: the majority answer among the first k is correct iff a candidate giving it is. */
export function majAtKCandidates(problems: readonly (readonly Candidate[])[], k?: number): number {
  if (problems.length === 0) throw new MetricError("[majAtK] no problems");
  let hits = 0;
  for (const cands of problems) {
    const c = cands.slice(0, k ?? cands.length);
    const a = majorityAnswer(c.map((x) => x.answer ?? null));
    if (a !== null && c.some((x) => x.answer === a && x.correct)) hits++;
  }
  return hits / problems.length;
}
