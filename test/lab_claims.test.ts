// The lab's claims on hand-made stage metrics: each verdict (holds / contradicted / not shown / not measured)
// from the paired bootstrap interval, the pre-registered search strategy, seeds as a second bootstrap stage,
// the label claims on the same samples, and the Titans claim controlled for step position.

import assert from "node:assert/strict";
import { test } from "node:test";
import { evaluateClaims, type RunMetrics } from "../src/lab/claims.js";
import { compareRanking } from "../src/lab/ranking.js";

const claim = (runs: RunMetrics | RunMetrics[], id: string) => {
  const c = evaluateClaims(runs).find((x) => x.id === id);
  assert.ok(c, id);
  return c;
};

/** sft and grpo per-problem pass@1 arrays. */
function align(sft: number[], grpo: number[]): RunMetrics {
  return { sft: { perProblem: { pass1: sft } }, align: { grpo: { perProblem: { pass1: grpo } } } };
}

test("grpo_beats_sft: holds, contradicted, not shown, not measured from the paired interval", () => {
  const n = 40;
  const zeros = new Array(n).fill(0);
  const half = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : 0));
  const up = claim(align(zeros, half), "grpo_beats_sft");
  assert.equal(up.verdict, "holds");
  assert.equal(up.holds, true);
  assert.equal(up.unit, "pp");
  assert.ok(Math.abs((up.difference as number) - 50) < 1e-9);
  assert.ok(up.interval && up.interval[0] > 0 && up.interval[0] < 50 && up.interval[1] > 50 && up.interval[1] <= 100);
  assert.match(up.measured ?? "", /0\.0 % → GRPO 50\.0 %/);

  const down = claim(align(half, zeros), "grpo_beats_sft");
  assert.equal(down.verdict, "contradicted");
  assert.equal(down.holds, false);
  assert.ok(down.interval && down.interval[1] < 0);

  // gains on half the problems, losses on the other half: the interval straddles 0
  const other = half.map((x) => 1 - x);
  const flat = claim(align(half, other), "grpo_beats_sft");
  assert.equal(flat.verdict, "not shown");
  assert.equal(flat.holds, false);
  assert.ok(flat.interval && flat.interval[0] < 0 && flat.interval[1] > 0);

  const missing = claim({ sft: { perProblem: { pass1: half } } }, "grpo_beats_sft");
  assert.equal(missing.verdict, "not measured");
  assert.equal(missing.holds, null);
  assert.equal(missing.measured, null);
  // arrays of different lengths are not paired
  assert.equal(claim(align(half, half.slice(1)), "grpo_beats_sft").verdict, "not measured");
});

test("seeds are a second bootstrap stage: a gain in one seed and a loss in another is not shown", () => {
  const n = 30;
  const ones = new Array(n).fill(1);
  const zeros = new Array(n).fill(0);
  assert.equal(claim([align(zeros, ones), align(zeros, ones)], "grpo_beats_sft").verdict, "holds");
  const mixed = claim([align(zeros, ones), align(ones, zeros)], "grpo_beats_sft");
  assert.equal(mixed.verdict, "not shown");
  assert.match(mixed.comparison ?? "", /2 seed\(s\)/);
});

function search(acc: Record<string, number[]>, aggregation = "min"): RunMetrics {
  return {
    search: {
      budgets: [1, 4],
      preRegistered: { prm: `prm_bon_${aggregation}` },
      perProblem: Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, { "1": v, "4": v }])),
    },
  };
}

test("search claims compare the pre-registered PRM strategy only, at the largest budget", () => {
  const n = 40;
  const good = new Array(n).fill(1);
  const bad = new Array(n).fill(0);
  // prm_bon_last is the best strategy, but min was pre-registered: it is not picked after the fact
  const m = search({ prm_bon_min: bad, prm_bon_last: good, majority: good, orm_bon: bad, random: good });
  const c = claim(m, "prm_search_beats_majority");
  assert.equal(c.verdict, "contradicted");
  assert.match(c.measured ?? "", /prm_bon_min/);
  assert.match(c.comparison ?? "", /N=4/);
  assert.equal(claim(m, "prm_beats_orm_best_of_n").verdict, "not shown"); // equal everywhere: [0, 0]
  assert.equal(claim(m, "verifier_beats_random_pick").verdict, "contradicted");
  const pre = search({ prm_bon_min: bad, prm_bon_last: good, majority: bad, orm_bon: bad, random: bad }, "last");
  assert.equal(claim(pre, "prm_search_beats_majority").verdict, "holds");
  // no pre-registration: not measured rather than a choice after the fact
  const none = search({ prm_bon_min: good, majority: bad });
  delete (none.search as Record<string, unknown>).preRegistered;
  assert.equal(claim(none, "prm_search_beats_majority").verdict, "not measured");
});

test("PRM F1 claim: paired over the same held-out solutions", () => {
  // labels: half error-free (-1), half wrong at step 1
  const label = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? -1 : 1));
  const perfect = [...label];
  const blind = label.map(() => -1); // never flags an error: F1 0
  const m = (gold: number[], mc: number[]): RunMetrics => ({
    reward_models: { perSolution: { label, pred: { gold, mcHard: mc } } },
  });
  const c = claim(m(perfect, blind), "gold_prm_beats_mc_prm");
  assert.equal(c.verdict, "holds");
  assert.equal(c.unit, "F1");
  assert.ok(Math.abs((c.difference as number) - 1) < 1e-9);
  assert.equal(claim(m(blind, perfect), "gold_prm_beats_mc_prm").verdict, "contradicted");
});

test("label claims on the same samples: MC noise and consensus, with the fraction kept", () => {
  const n = 40;
  const gold = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 1 : -1));
  // MC is wrong exactly where it disagrees with the judge: consensus keeps only right ones
  const mc = gold.map((g, i) => (i % 5 === 0 ? g + 1 : g));
  const judge = gold.map((g) => g);
  const m: RunMetrics = { labels: { perSample: { goldFirstError: gold, mcFirstError: mc, judgeFirstError: judge } } };
  const noisy = claim(m, "mc_labels_noisier_than_exact");
  assert.equal(noisy.verdict, "holds");
  assert.ok(Math.abs((noisy.difference as number) - 20) < 1e-9);
  const cons = claim(m, "consensus_cleaner_than_mc");
  assert.equal(cons.verdict, "holds");
  assert.match(cons.measured ?? "", /keeping 80\.0 % of samples/);
  // an unparseable judge reply (null) never agrees: consensus drops those samples too (1, 9, 17, 33; 25 already disagreed)
  const unparsed = judge.map((j, i) => (i % 8 === 1 ? null : j));
  const withNull = claim(
    { labels: { perSample: { goldFirstError: gold, mcFirstError: mc, judgeFirstError: unparsed } } },
    "consensus_cleaner_than_mc",
  );
  assert.equal(withNull.verdict, "holds");
  assert.match(withNull.measured ?? "", /keeping 70\.0 % of samples/);
  // a judge that agrees with MC everywhere keeps everything: no difference at all
  const same: RunMetrics = { labels: { perSample: { goldFirstError: gold, mcFirstError: mc, judgeFirstError: mc } } };
  assert.equal(claim(same, "consensus_cleaner_than_mc").verdict, "not shown");
  // exact MC labels: no noise to show
  const clean: RunMetrics = { labels: { perSample: { goldFirstError: gold, mcFirstError: gold, judgeFirstError: gold } } };
  assert.equal(claim(clean, "mc_labels_noisier_than_exact").verdict, "not shown");
});

test("memory claim reads measured peaks; Titans claim is controlled for step position", () => {
  const mem = (g: number, p: number): RunMetrics => ({ align: { grpo: { peakBytes: g }, ppo: { peakBytes: p } } });
  assert.equal(claim(mem(1e6, 2e6), "grpo_less_memory_than_ppo").verdict, "holds");
  assert.equal(claim(mem(3e6, 2e6), "grpo_less_memory_than_ppo").verdict, "contradicted");
  assert.equal(claim({ align: { grpo: { stateBytes: 1 }, ppo: { stateBytes: 2 } } }, "grpo_less_memory_than_ppo").verdict, "not measured");

  // 30 solutions of 3 steps; wrong steps only at positions 1 and 2 (after the first error)
  const steps = (surpriseOf: (wrong: boolean, pos: number, s: number) => number) => {
    const out = {
      surprise: [] as number[],
      baseline: [] as number[],
      wrong: [] as number[],
      position: [] as number[],
      solution: [] as number[],
    };
    for (let s = 0; s < 30; s++)
      for (let p = 0; p < 3; p++) {
        const wrong = p > 0 && s % 3 === 0 ? true : p === 2 && s % 3 === 1;
        out.surprise.push(surpriseOf(wrong, p, s));
        out.baseline.push(p);
        out.wrong.push(wrong ? 1 : 0);
        out.position.push(p);
        out.solution.push(s);
      }
    return { search: { titans: { perStep: out } } } as RunMetrics;
  };
  // surprise = position: beats chance overall, adds nothing within a position
  const pos = claim(
    steps((_, p) => p),
    "titans_surprise_detects_wrong_steps",
  );
  // constant within each position: every stratum ties (AUROC 0.5, interval [0, 0])
  assert.equal(pos.verdict, "not shown");
  assert.deepEqual(pos.interval, [0, 0]);
  // surprise that tracks the wrong steps within positions: holds
  const real = claim(
    steps((w, p, s) => p + (w ? 0.5 : 0) + (s % 7) * 0.01),
    "titans_surprise_detects_wrong_steps",
  );
  assert.equal(real.verdict, "holds");
  assert.match(real.measured ?? "", /within positions/);
  // anti-correlated within positions: contradicted
  const anti = claim(
    steps((w, p, s) => p - (w ? 0.5 : 0) + (s % 7) * 0.01),
    "titans_surprise_detects_wrong_steps",
  );
  assert.equal(anti.verdict, "contradicted");
});

test("ranking: the seed's relations checked point by point, each with an interval; stability needs two seeds", () => {
  const n = 40;
  const acc = (p: number) => Array.from({ length: n }, (_, i) => (i < p * n ? 1 : 0));
  const run = (seconds: Record<string, number>, pass: Record<string, number>): RunMetrics => ({
    align: Object.fromEntries(Object.entries(pass).map(([m, p]) => [m, { perProblem: { pass1: acc(p) }, wallSeconds: seconds[m] }])),
  });
  const secs = { ppo: 100, grpo: 80, dpo: 10, orpo: 5, kto: 12 };
  const one = compareRanking([run(secs, { ppo: 0.2, grpo: 0.6, dpo: 0.3, orpo: 0.3, kto: 0.4 })]);
  const perf = one.performance.points;
  assert.deepEqual(
    perf.map((p) => [p.seed, p.verdict, p.agrees]),
    [
      ["ppo >= grpo", "contradicted", false],
      ["grpo > dpo", "holds", true],
      ["dpo >= orpo", "not shown", true],
    ],
  );
  assert.deepEqual(
    one.performance.ours.map((x) => x.method),
    ["grpo", "kto", "dpo", "orpo", "ppo"],
  );
  assert.ok(one.efficiency.points.every((p) => p.agrees === true));
  assert.ok(one.stability.points.every((p) => p.verdict === "not measured" && p.agrees === null));
  // two seeds: GRPO steady, PPO swings far beyond the evaluation noise; DPO vs ORPO within it
  const two = compareRanking([
    run(secs, { ppo: 0.1, grpo: 0.5, dpo: 0.3, orpo: 0.3 }),
    run(secs, { ppo: 0.9, grpo: 0.5, dpo: 0.3, orpo: 0.35 }),
  ]);
  assert.deepEqual(
    two.stability.points.map((p) => [p.seed, p.verdict]),
    [
      ["dpo > orpo", "not shown"],
      ["orpo > grpo", "not shown"],
      ["grpo > ppo", "holds"],
    ],
  );
  // the spread is of the gain over SFT: a method that only follows its seed's SFT policy is steady
  const withSft = (sft: number, pass: Record<string, number>) => ({ ...run(secs, pass), sft: { perProblem: { pass1: acc(sft) } } });
  const shared = compareRanking([withSft(0.1, { grpo: 0.2, ppo: 0.1 }), withSft(0.8, { grpo: 0.9, ppo: 0.8 })]);
  assert.equal(shared.stability.points[2]!.verdict, "not shown");
  assert.ok(
    shared.stability.ours.every((x) => x.value < 1e-9),
    JSON.stringify(shared.stability.ours),
  );
  // efficiency over seeds: a gap that flips sign between seeds is not shown; a consistent one holds
  const flip = compareRanking([
    run({ ...secs, orpo: 5, dpo: 10 }, { dpo: 0.3, orpo: 0.3, grpo: 0.3, ppo: 0.3 }),
    run({ ...secs, orpo: 12, dpo: 10 }, { dpo: 0.3, orpo: 0.3, grpo: 0.3, ppo: 0.3 }),
    run({ ...secs, orpo: 6, dpo: 10 }, { dpo: 0.3, orpo: 0.3, grpo: 0.3, ppo: 0.3 }),
  ]);
  assert.deepEqual(
    flip.efficiency.points.map((p) => p.verdict),
    ["not shown", "holds", "holds"],
  );
});
