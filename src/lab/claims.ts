// The claims of the field that the lab tests. Each claim names ONE comparison before the run (its contender,
// its baseline, its statistic and its units) and is decided by a paired bootstrap 95% interval of the
// difference, over problems (solutions, samples or steps for the label and detector claims) and, when the lab
// ran several seeds, over seeds too (two-stage). Verdict: holds (interval above 0), contradicted (below 0),
// not shown (contains 0), not measured (an input is missing). Claims read only the per-unit arrays the stages
// store in their metrics, one metrics object per seed. Table of claim id → check.
// Not here: the bootstrap itself (src/eval/bootstrap.ts) or rendering (src/report/).

import { type BootstrapResult, bootstrap, type Pair, pairedBootstrap, verdictOf } from "../eval/bootstrap.js";
import { auroc } from "../eval/calibration.js";
import { stratifiedAuroc } from "../eval/logistic.js";
import { processBenchMetric } from "../eval/processbench.js";
import type { Claim } from "../report/format.js";
import type { StageMetrics } from "./runner.js";

/** One seed's stage metrics. */
export type RunMetrics = Record<string, StageMetrics>;

/** Resamples of every claim's bootstrap (fixed, so the verdicts are a function of the metrics). */
export const CLAIM_RESAMPLES = 2000;

function at(run: RunMetrics, path: string): unknown {
  let cur: unknown = run;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** A numeric array at `path`, or null when absent or not all finite numbers. */
export function numbersAt(run: RunMetrics, path: string): number[] | null {
  const v = at(run, path);
  return Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isFinite(x)) ? (v as number[]) : null;
}

function stringAt(run: RunMetrics, path: string): string | null {
  const v = at(run, path);
  return typeof v === "string" ? v : null;
}

/** What a check returns: the comparison in words, the measurement, and the bootstrap of the difference. */
interface Outcome {
  comparison: string;
  measured: string;
  unit: string;
  result: BootstrapResult;
  /** Display scale of difference and interval (100 for fractions shown in pp). */
  scale?: number;
}

interface ClaimDef {
  id: string;
  statement: string;
  check(runs: readonly RunMetrics[]): Outcome | null;
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const seedMean = (groups: readonly (readonly number[])[]) => mean(groups.map(mean));

/** Per seed, the paired units of two equal-length arrays; null when any seed lacks one. */
function pairedUnits(runs: readonly RunMetrics[], a: string, b: string): Pair[][] | null {
  const out: Pair[][] = [];
  for (const run of runs) {
    const xs = numbersAt(run, a);
    const ys = numbersAt(run, b);
    if (xs === null || ys === null || xs.length !== ys.length || xs.length === 0) return null;
    out.push(xs.map((x, i) => ({ a: x, b: ys[i]! })));
  }
  return out.length === 0 ? null : out;
}

/** "accuracy a beats accuracy b" over the same problems: mean difference, paired bootstrap. */
function accuracyClaim(a: string, b: string, names: [string, string], what: string): ClaimDef["check"] {
  return (runs) => {
    const g = pairedUnits(runs, a, b);
    if (g === null) return null;
    const ma = seedMean(g.map((u) => u.map((p) => p.a)));
    const mb = seedMean(g.map((u) => u.map((p) => p.b)));
    return {
      comparison: `${names[0]} − ${names[1]}, ${what}, paired over ${g[0]!.length} problems × ${g.length} seed(s)`,
      measured: `${names[1]} ${pct(mb)} → ${names[0]} ${pct(ma)} ${what}`,
      unit: "pp",
      scale: 100,
      result: pairedBootstrap(g, { resamples: CLAIM_RESAMPLES }),
    };
  };
}

/** The largest search budget every run measured, as a string key. */
function largestBudget(runs: readonly RunMetrics[]): string | null {
  const sets = runs.map((r) => numbersAt(r, "search.budgets"));
  if (sets.some((s) => s === null || s.length === 0)) return null;
  return String(Math.min(...sets.map((s) => Math.max(...(s as number[])))));
}

/** The search strategy that stands for PRM best-of-N: pre-registered by the search stage (aggregation chosen on the eval split). */
function prmStrategy(runs: readonly RunMetrics[]): string | null {
  const names = runs.map((r) => stringAt(r, "search.preRegistered.prm"));
  if (names.some((n) => n === null) || new Set(names).size !== 1) return null;
  return names[0]!;
}

function searchClaim(contender: (runs: readonly RunMetrics[]) => string | null, baseline: string): ClaimDef["check"] {
  return (runs) => {
    const n = largestBudget(runs);
    const c = contender(runs);
    if (n === null || c === null) return null;
    return accuracyClaim(`search.perProblem.${c}.${n}`, `search.perProblem.${baseline}.${n}`, [c, baseline], `accuracy at N=${n}`)(runs);
  };
}

/** ProcessBench F1 of two PRMs' first-error predictions on the same held-out solutions, paired over solutions. */
function prmF1Claim(a: string, b: string): ClaimDef["check"] {
  return (runs) => {
    const groups: { label: number; a: number; b: number }[][] = [];
    for (const run of runs) {
      const label = numbersAt(run, "reward_models.perSolution.label");
      const pa = numbersAt(run, `reward_models.perSolution.pred.${a}`);
      const pb = numbersAt(run, `reward_models.perSolution.pred.${b}`);
      if (label === null || pa === null || pb === null || pa.length !== label.length || pb.length !== label.length) return null;
      groups.push(label.map((l, i) => ({ label: l, a: pa[i]!, b: pb[i]! })));
    }
    if (groups.length === 0 || groups[0]!.length === 0) return null;
    const f1 = (u: readonly { label: number; a: number; b: number }[], side: "a" | "b") =>
      processBenchMetric(
        u.map((x) => x.label),
        u.map((x) => x[side]),
      ).f1;
    const stat = (gs: readonly (readonly { label: number; a: number; b: number }[])[]) => mean(gs.map((u) => f1(u, "a") - f1(u, "b")));
    return {
      comparison: `ProcessBench F1 (${a} PRM) − F1 (${b} PRM) on the same held-out solutions, ${groups[0]!.length} solutions × ${groups.length} seed(s)`,
      measured: `F1 ${b} ${mean(groups.map((u) => f1(u, "b"))).toFixed(3)} → ${a} ${mean(groups.map((u) => f1(u, "a"))).toFixed(3)}`,
      unit: "F1",
      result: bootstrap(groups, stat, { resamples: CLAIM_RESAMPLES }),
    };
  };
}

/** Numbers where a value may be missing (null), e.g. a judge's unparseable reply. */
function optionalNumbersAt(run: RunMetrics, path: string): (number | null)[] | null {
  const v = at(run, path);
  return Array.isArray(v) && v.every((x) => x === null || (typeof x === "number" && Number.isFinite(x))) ? (v as (number | null)[]) : null;
}

/** A labelled sample's first errors by gold, MC and the judge (-1 none; judge null: unparseable reply, never agrees). */
interface LabelUnit {
  gold: number;
  mc: number;
  judge: number | null;
}

/** Per seed, per labelled sample: first errors by gold, MC and the judge. */
function labelUnits(runs: readonly RunMetrics[]): LabelUnit[][] | null {
  const out: LabelUnit[][] = [];
  for (const run of runs) {
    const gold = numbersAt(run, "labels.perSample.goldFirstError");
    const mc = numbersAt(run, "labels.perSample.mcFirstError");
    const judge = optionalNumbersAt(run, "labels.perSample.judgeFirstError");
    if (gold === null || mc === null || judge === null || gold.length === 0 || mc.length !== gold.length || judge.length !== gold.length)
      return null;
    out.push(gold.map((g, i) => ({ gold: g, mc: mc[i]!, judge: judge[i] ?? null })));
  }
  return out.length === 0 ? null : out;
}

/** Titans surprise vs step position: per seed, per held-out step. */
interface StepUnit {
  surprise: number;
  baseline: number;
  wrong: boolean;
  position: number;
}

function titansUnits(runs: readonly RunMetrics[]): StepUnit[][][] | null {
  // groups (seeds) of units (solutions) of steps: the bootstrap resamples solutions, keeping their steps together
  const out: StepUnit[][][] = [];
  for (const run of runs) {
    const p = "search.titans.perStep";
    const s = numbersAt(run, `${p}.surprise`);
    const base = numbersAt(run, `${p}.baseline`);
    const wrong = numbersAt(run, `${p}.wrong`);
    const pos = numbersAt(run, `${p}.position`);
    const sol = numbersAt(run, `${p}.solution`);
    if (s === null || base === null || wrong === null || pos === null || sol === null || s.length === 0) return null;
    if (![base, wrong, pos, sol].every((a) => a.length === s.length)) return null;
    const bySol = new Map<number, StepUnit[]>();
    s.forEach((x, i) => {
      const k = sol[i]!;
      if (!bySol.has(k)) bySol.set(k, []);
      bySol.get(k)!.push({ surprise: x, baseline: base[i]!, wrong: wrong[i] === 1, position: pos[i]! });
    });
    out.push([...bySol.values()]);
  }
  return out.length === 0 ? null : out;
}

export const CLAIMS: readonly ClaimDef[] = [
  {
    id: "grpo_beats_sft",
    statement: "RL with a verifiable reward (GRPO) improves held-out accuracy over SFT",
    check: accuracyClaim("align.grpo.perProblem.pass1", "sft.perProblem.pass1", ["GRPO", "SFT"], "pass@1 at T=1"),
  },
  {
    id: "dpo_beats_sft",
    statement: "DPO on correct-vs-incorrect pairs improves held-out accuracy over SFT",
    check: accuracyClaim("align.dpo.perProblem.pass1", "sft.perProblem.pass1", ["DPO", "SFT"], "pass@1 at T=1"),
  },
  {
    id: "gold_prm_beats_mc_prm",
    statement: "A PRM trained on exact step labels finds first errors better than one trained on Monte Carlo labels",
    check: prmF1Claim("gold", "mcHard"),
  },
  {
    id: "mc_labels_noisier_than_exact",
    statement: "Monte Carlo step labels misplace the first error on a share of solutions (exact labels never do)",
    check: (runs) => {
      const g = labelUnits(runs);
      if (g === null) return null;
      const miss = g.map((u) => u.map((x) => ({ a: x.mc === x.gold ? 0 : 1, b: 0 })));
      return {
        comparison: `share of samples whose MC first error differs from the exact one, minus 0 (exact labels), ${g[0]!.length} samples × ${g.length} seed(s)`,
        measured: `MC first error wrong on ${pct(seedMean(miss.map((u) => u.map((x) => x.a))))} of samples`,
        unit: "pp",
        scale: 100,
        result: pairedBootstrap(miss, { resamples: CLAIM_RESAMPLES }),
      };
    },
  },
  {
    id: "consensus_cleaner_than_mc",
    statement: "Keeping only samples where MC and judge agree gives cleaner step labels than MC alone",
    check: (runs) => {
      const g = labelUnits(runs);
      if (g === null) return null;
      // on the same samples: MC's first-error accuracy on the kept subset minus on all samples
      // consensus keeps a sample when MC and the judge name the same first error (an unparseable judge never agrees)
      const agree = (x: LabelUnit) => x.judge !== null && x.mc === x.judge;
      const acc = (u: readonly LabelUnit[], keptOnly: boolean) => {
        const xs = keptOnly ? u.filter(agree) : u;
        return xs.length === 0 ? Number.NaN : xs.filter((x) => x.mc === x.gold).length / xs.length;
      };
      const stat = (gs: readonly (readonly LabelUnit[])[]) => mean(gs.map((u) => acc(u, true) - acc(u, false)));
      const kept = seedMean(g.map((u) => u.map((x) => (agree(x) ? 1 : 0))));
      return {
        comparison: `first-error accuracy of MC labels on the samples consensus keeps − on all samples (same samples), ${g[0]!.length} samples × ${g.length} seed(s)`,
        measured: `MC ${pct(mean(g.map((u) => acc(u, false))))} → consensus ${pct(mean(g.map((u) => acc(u, true))))} first errors right, keeping ${pct(kept)} of samples`,
        unit: "pp",
        scale: 100,
        result: bootstrap(g, stat, { resamples: CLAIM_RESAMPLES }),
      };
    },
  },
  {
    id: "prm_search_beats_majority",
    statement: "PRM best-of-N (aggregation chosen on the eval split) beats majority voting at the same sample budget",
    check: searchClaim(prmStrategy, "majority"),
  },
  {
    id: "prm_beats_orm_best_of_n",
    statement: "PRM best-of-N beats ORM best-of-N at the same sample budget",
    check: searchClaim(prmStrategy, "orm_bon"),
  },
  {
    id: "verifier_beats_random_pick",
    statement: "PRM best-of-N selects better than a random pick among the same N samples",
    check: searchClaim(prmStrategy, "random"),
  },
  {
    id: "grpo_less_memory_than_ppo",
    statement: "GRPO needs less memory than PPO (no value model) at the same rollout batch",
    check: (runs) => {
      const groups: Pair[][] = [];
      for (const run of runs) {
        const g = at(run, "align.grpo.peakBytes");
        const p = at(run, "align.ppo.peakBytes");
        if (typeof g !== "number" || typeof p !== "number") return null;
        groups.push([{ a: p / 2 ** 20, b: g / 2 ** 20 }]);
      }
      if (groups.length === 0) return null;
      const g = mean(groups.map((u) => u[0]!.b));
      const p = mean(groups.map((u) => u[0]!.a));
      return {
        comparison: `measured peak live tensor bytes PPO − GRPO at the same rollout batch, ${groups.length} seed(s)`,
        measured: `peak tensor memory: GRPO ${g.toFixed(2)} MB vs PPO ${p.toFixed(2)} MB`,
        unit: "MB",
        result: pairedBootstrap(groups, { resamples: CLAIM_RESAMPLES }),
      };
    },
  },
  {
    id: "titans_surprise_detects_wrong_steps",
    statement: "Titans memory surprise adds signal about wrong steps beyond step position (AUROC within positions > 0.5)",
    check: (runs) => {
      const g = titansUnits(runs);
      if (g === null) return null;
      const within = (sols: readonly (readonly StepUnit[])[], key: "surprise" | "baseline") => {
        const steps = sols.flat();
        return stratifiedAuroc(
          steps.map((s) => s[key]),
          steps.map((s) => s.wrong),
          steps.map((s) => String(s.position)),
        ).auroc;
      };
      const stat = (gs: readonly (readonly (readonly StepUnit[])[])[]) => mean(gs.map((sols) => within(sols, "surprise") - 0.5));
      const overall = mean(
        g.map((sols) =>
          auroc(
            sols.flat().map((s) => s.surprise),
            sols.flat().map((s) => s.wrong),
          ),
        ),
      );
      return {
        comparison: `AUROC of surprise within each step position − 0.5, resampling solutions, ${g[0]!.length} solutions × ${g.length} seed(s)`,
        measured: `wrong-step AUROC of surprise ${overall.toFixed(3)} overall, ${mean(g.map((s) => within(s, "surprise"))).toFixed(3)} within positions (position + line type baseline ${mean(g.map((s) => within(s, "baseline"))).toFixed(3)} within positions)`,
        unit: "AUROC",
        result: bootstrap(g, stat, { resamples: CLAIM_RESAMPLES }),
      };
    },
  },
];

export function evaluateClaims(runs: RunMetrics | readonly RunMetrics[]): Claim[] {
  const list = Array.isArray(runs) ? (runs as readonly RunMetrics[]) : [runs as RunMetrics];
  return CLAIMS.map((c) => {
    const r = c.check(list);
    if (r === null) return { id: c.id, statement: c.statement, measured: null, holds: null, verdict: "not measured" };
    const k = r.scale ?? 1;
    const interval: [number, number] | null = r.result.interval === null ? null : [r.result.interval[0] * k, r.result.interval[1] * k];
    const verdict = verdictOf(r.result.interval);
    // no resample gave a finite difference (e.g. a class missing from an F1): nothing was measured
    if (verdict === "not measured")
      return { id: c.id, statement: c.statement, measured: null, holds: null, verdict, comparison: r.comparison };
    const difference = Number.isFinite(r.result.estimate) ? r.result.estimate * k : null;
    return {
      id: c.id,
      statement: c.statement,
      measured: r.measured,
      holds: verdict === "holds",
      verdict,
      difference,
      interval,
      unit: r.unit,
      comparison: r.comparison,
    };
  });
}
