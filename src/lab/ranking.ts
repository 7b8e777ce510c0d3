// The seed's method comparison next to ours: the seed ranks performance PPO >= GRPO > DPO >= ORPO, efficiency
// ORPO > DPO > GRPO > PPO and stability DPO > ORPO > GRPO > PPO. Ours, point by point, each with a 95% interval
// (">" needs it above 0, ">=" not below 0): performance from held-out pass@1 (paired bootstrap over problems and
// seeds); efficiency from measured wall seconds of training (bootstrap over seeds; one seed is one measurement, so
// its sign decides); stability from the spread across seeds of each method's gain over the SFT policy on the same
// problems (the seeds' shared SFT variance removed; needs two seeds or more), its interval from resampling
// problems within the seeds run (evaluation noise; three seeds cannot bound the spread of all seeds). Every
// method we ran is ranked, ORPO, KTO and SimPO included.
// Not here: the claims (claims.ts) or running any method (stages/align.ts).

import { bootstrap, pairedBootstrap, type Verdict, verdictOf } from "../eval/bootstrap.js";
import { numbersAt, type RunMetrics } from "./claims.js";

type Relation = ">" | ">=";
type Aspect = "performance" | "efficiency" | "stability";

/** The seed's orders, best first, with the relation between neighbours. */
export const SEED_RANKING: Readonly<Record<Aspect, readonly (string | Relation)[]>> = Object.freeze({
  performance: ["ppo", ">=", "grpo", ">", "dpo", ">=", "orpo"],
  efficiency: ["orpo", ">", "dpo", ">", "grpo", ">", "ppo"],
  stability: ["dpo", ">", "orpo", ">", "grpo", ">", "ppo"],
});

const METRIC: Record<Aspect, string> = {
  performance: "held-out pass@1 at T=1 (higher is better)",
  efficiency: "training wall seconds (lower is better)",
  stability: "standard deviation across seeds of the pass@1 gain over SFT (lower is better)",
};

export interface RankingPoint {
  seed: string;
  /** Our difference in the aspect's direction (positive: the seed's left method is better), or null. */
  difference: number | null;
  verdict: Verdict;
  agrees: boolean | null;
}

export interface AspectRanking {
  metric: string;
  seed: string;
  /** Every method we measured, best first, with its value. */
  ours: { method: string; value: number }[];
  points: RankingPoint[];
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: readonly number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

/** Methods measured in every run (not skipped). */
function methodsOf(runs: readonly RunMetrics[]): string[] {
  const first = runs[0]?.align ?? {};
  return Object.keys(first).filter((m) => runs.every((r) => numbersAt(r, `align.${m}.perProblem.pass1`) !== null));
}

const wallOf = (r: RunMetrics, m: string): number => {
  const s = (r.align?.[m] as { wallSeconds?: unknown } | undefined)?.wallSeconds;
  return typeof s === "number" ? s : Number.NaN;
};

function value(runs: readonly RunMetrics[], aspect: Aspect, m: string): number | null {
  if (aspect === "performance") return mean(runs.map((r) => mean(numbersAt(r, `align.${m}.perProblem.pass1`) ?? [Number.NaN])));
  if (aspect === "efficiency") {
    const s = runs.map((r) => wallOf(r, m));
    return s.every(Number.isFinite) ? mean(s) : null;
  }
  if (runs.length < 2) return null;
  return std(gainUnits(runs, m, m).map((units) => mean(units.map((u) => u.a))));
}

/** Per seed, per problem: methods a's and b's pass@1 minus the SFT policy's (0 where a run has no SFT metrics). */
function gainUnits(runs: readonly RunMetrics[], a: string, b: string): { a: number; b: number }[][] {
  return runs.map((r) => {
    const xa = numbersAt(r, `align.${a}.perProblem.pass1`) ?? [];
    const xb = numbersAt(r, `align.${b}.perProblem.pass1`) ?? [];
    const sft = numbersAt(r, "sft.perProblem.pass1");
    return xa.map((x, k) => ({ a: x - (sft?.[k] ?? 0), b: xb[k]! - (sft?.[k] ?? 0) }));
  });
}

/** Spread of b's gain across seeds minus a's: positive when a is steadier. */
function spreadDifference(groups: readonly (readonly { a: number; b: number }[])[]): number {
  const gain = (side: "a" | "b") => groups.map((units) => mean(units.map((u) => u[side])));
  return std(gain("b")) - std(gain("a"));
}

/** Our ranking per aspect and the seed's relations checked one by one. */
export function compareRanking(runs: readonly RunMetrics[]): Record<Aspect, AspectRanking> {
  const methods = methodsOf(runs);
  const out = {} as Record<Aspect, AspectRanking>;
  for (const aspect of Object.keys(SEED_RANKING) as Aspect[]) {
    const better = aspect === "performance" ? 1 : -1; // sign: higher pass@1 is better; lower seconds / spread are
    const vals = methods
      .map((m) => ({ method: m, value: value(runs, aspect, m) }))
      .filter((x): x is { method: string; value: number } => x.value !== null && Number.isFinite(x.value));
    const ours = [...vals].sort((a, b) => better * (b.value - a.value));
    const order = SEED_RANKING[aspect];
    const points: RankingPoint[] = [];
    for (let i = 0; i + 2 < order.length; i += 2) {
      const [a, rel, b] = [order[i] as string, order[i + 1] as Relation, order[i + 2] as string];
      const text = `${a} ${rel} ${b}`;
      const va = vals.find((x) => x.method === a)?.value;
      const vb = vals.find((x) => x.method === b)?.value;
      if (va === undefined || vb === undefined) {
        points.push({ seed: text, difference: null, verdict: "not measured", agrees: null });
        continue;
      }
      let verdict: Verdict;
      if (aspect === "performance") {
        const groups = runs.map((r) => {
          const xa = numbersAt(r, `align.${a}.perProblem.pass1`) as number[];
          const xb = numbersAt(r, `align.${b}.perProblem.pass1`) as number[];
          return xa.map((x, k) => ({ a: x, b: xb[k]! }));
        });
        verdict = verdictOf(pairedBootstrap(groups, { resamples: 2000 }).interval);
      } else if (aspect === "efficiency") {
        // one wall time per method and seed: bootstrap over seeds of b's seconds minus a's
        const gaps = runs.map((r) => [wallOf(r, b) - wallOf(r, a)]);
        verdict = verdictOf(bootstrap(gaps, (gs) => mean(gs.map((g) => g[0]!)), { resamples: 2000 }).interval);
      } else {
        verdict = verdictOf(bootstrap(gainUnits(runs, a, b), spreadDifference, { resamples: 2000, resampleGroups: false }).interval);
      }
      const agrees = rel === ">" ? verdict === "holds" : verdict !== "contradicted";
      points.push({ seed: text, difference: Math.round(better * (va - vb) * 1e4) / 1e4, verdict, agrees });
    }
    out[aspect] = {
      metric: METRIC[aspect],
      seed: order.join(" "),
      ours: ours.map((x) => ({ method: x.method, value: Math.round(x.value * 1e4) / 1e4 })),
      points,
    };
  }
  return out;
}
