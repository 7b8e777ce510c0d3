// Search strategies on deterministic doubles: a generator over a known tree and table scorers. Beam search keeps
// hand-verified prefixes per round; best-of-N picks the max; weighted vote sums per answer; lookahead ranks by
// the rollout's end; MCTS finds the one rewarded leaf of a tiny tree (terminal backups and PRM values), seeded;
// every budget equals the steps the double handed out.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Rng } from "../src/nn/rng.js";
import type { StepGenerator, StepScorer } from "../src/rewards/interfaces.js";
import {
  answerKey,
  beamSearch,
  bestOfN,
  lookaheadSearch,
  majorityVote,
  mcts,
  prmEvaluator,
  terminalEvaluator,
  weightedMajorityVote,
} from "../src/search/index.js";

/** A generator over an explicit tree: children(prefix) lists the possible next steps, handed out cyclically. */
class TreeGen implements StepGenerator {
  stepsGenerated = 0;
  nextCalls = 0;
  nextStepsOut = 0;
  completeStepsOut = 0;
  private rng: Rng;
  constructor(
    readonly children: (prefix: readonly string[]) => string[],
    seed = 0,
    readonly completions?: (prefix: readonly string[]) => string[][],
  ) {
    this.rng = new Rng(seed);
  }
  async nextSteps(_p: string, prefix: readonly string[], n: number): Promise<string[]> {
    const ch = this.children(prefix);
    const out = Array.from({ length: Math.min(n, ch.length === 0 ? 0 : n) }, (_, i) => ch[i % ch.length]);
    this.nextCalls++;
    this.nextStepsOut += out.length;
    this.stepsGenerated += out.length;
    return out;
  }
  async complete(_p: string, prefix: readonly string[], n: number): Promise<string[][]> {
    const out: string[][] = [];
    for (let i = 0; i < n; i++) {
      if (this.completions) {
        out.push(this.completions(prefix)[i]);
      } else {
        const cur = [...prefix];
        let ch = this.children(cur);
        while (ch.length > 0) {
          cur.push(ch[this.rng.int(ch.length)]);
          ch = this.children(cur);
        }
        out.push(cur.slice(prefix.length));
      }
    }
    const k = out.reduce((a, s) => a + s.length, 0);
    this.completeStepsOut += k;
    this.stepsGenerated += k;
    return out;
  }
}

/** A PRM double: step i's score is table[steps[0..i].join("/")]; unknown prefixes score `dflt`. */
function tableScorer(table: Record<string, number>, dflt = 0): StepScorer & { calls: number } {
  const s = {
    calls: 0,
    async scoreSteps(_p: string, steps: readonly string[]) {
      s.calls++;
      return steps.map((_, i) => table[steps.slice(0, i + 1).join("/")] ?? dflt);
    },
  };
  return s;
}

const ans = (x: number | string) => `The answer is ${x}.`;

describe("beam search (Snell et al.): top N/M prefixes by construction", () => {
  // N = 4, M = 2 → 2 kept per round.
  const tree: Record<string, string[]> = {
    "": ["a", "b", "c", "d"],
    b: ["x", "y"],
    c: ["x", "y"],
    "b/y": [ans(3), ans(4)],
    "c/x": [ans(1), ans(2)],
  };
  const table = {
    a: 0.3,
    b: 0.9,
    c: 0.5,
    d: 0.1,
    "b/x": 0.2,
    "b/y": 0.6,
    "c/x": 0.8,
    "c/y": 0.4,
    [`c/x/${ans(1)}`]: 0.7,
    [`c/x/${ans(2)}`]: 0.1,
    [`b/y/${ans(3)}`]: 0.95,
    [`b/y/${ans(4)}`]: 0.3,
  };
  const gen = () => new TreeGen((p) => tree[p.join("/")] ?? []);

  test("kept sets per round, finished beams collected, best final score wins, budget 4 + 4 + 4", async () => {
    const g = gen();
    const prm = tableScorer(table);
    const r = await beamSearch(g, prm, "q", { n: 4, width: 2 });
    assert.deepEqual(
      r.rounds.map((x) => x.kept.map((s) => s.join("/"))),
      [
        ["b", "c"],
        ["c/x", "b/y"],
        [`b/y/${ans(3)}`, `c/x/${ans(1)}`],
      ],
    );
    assert.deepEqual(
      r.rounds[1].candidates.map((c) => c.steps.join("/")),
      ["b/x", "b/y", "c/x", "c/y"],
    );
    assert.deepEqual(r.steps, ["b", "y", ans(3)]);
    assert.equal(r.answer, "3");
    assert.equal(r.score, 0.95);
    assert.equal(r.candidates.length, 2);
    assert.ok(r.candidates.every((c) => c.finished));
    assert.deepEqual(r.budget, { stepsGenerated: 12, scorerCalls: 12 });
    assert.equal(g.stepsGenerated, 12);
  });

  test("final aggregation 'min' changes the winner; maxRounds cuts beams as unfinished", async () => {
    const r = await beamSearch(gen(), tableScorer(table), "q", { n: 4, width: 2, finalAggregation: "min" });
    // min over steps: b/y/3 → min(.9,.6,.95) = .6; c/x/1 → min(.5,.8,.7) = .5
    assert.deepEqual(r.steps, ["b", "y", ans(3)]);
    assert.equal(r.score, 0.6);
    const cut = await beamSearch(gen(), tableScorer(table), "q", { n: 4, width: 2, maxRounds: 2 });
    assert.deepEqual(
      cut.candidates.map((c) => [c.steps.join("/"), c.finished]),
      [
        ["c/x", false],
        ["b/y", false],
      ],
    );
    assert.deepEqual(cut.steps, ["c", "x"]);
    assert.equal(cut.budget.stepsGenerated, 8);
  });

  test("n must be a multiple of width", async () => {
    await assert.rejects(beamSearch(gen(), tableScorer(table), "q", { n: 5, width: 2 }), /multiple of width/);
  });
});

describe("best-of-N and votes", () => {
  const sols = [["1 + 1 = 2", ans(2)], [ans(3)], ["x", ans(2)], [ans(5)], ["y", "z", ans(3)]];
  const gen = () =>
    new TreeGen(
      () => [],
      0,
      () => sols,
    );
  const orm = (scores: number[]) => ({
    async scoreSolution(_p: string, steps: readonly string[]) {
      return scores[sols.findIndex((s) => s.join() === steps.join())];
    },
  });

  test("best-of-N returns the max-scored solution and counts every step", async () => {
    const r = await bestOfN(gen(), orm([0.4, 0.3, 0.2, 0.9, 0.5]), "q", { n: 5 });
    assert.deepEqual(r.steps, [ans(5)]);
    assert.equal(r.score, 0.9);
    assert.deepEqual(r.budget, { stepsGenerated: 2 + 1 + 2 + 1 + 3, scorerCalls: 5 });
  });

  test("weighted vote sums scores per answer; majority counts", async () => {
    // answer 2: .4 + .2 = .6; answer 3: .3 + .5 = .8; answer 5: .7 → 3 wins (best-of-N would pick 5)
    const s = [0.4, 0.3, 0.2, 0.7, 0.5];
    const w = await bestOfN(gen(), orm(s), "q", { n: 5, selection: "weighted" });
    assert.equal(w.answer, "3");
    assert.deepEqual(w.steps, ["y", "z", ans(3)]); // the best-scored solution with that answer
    assert.equal((await bestOfN(gen(), orm(s), "q", { n: 5 })).answer, "5");
    const m = await bestOfN(gen(), null, "q", { n: 5, selection: "majority" });
    assert.equal(m.answer, "2"); // 2 and 3 tie at two votes; 2 is seen first
  });

  test("vote helpers: answers normalised (0.5 == 1/2), null answers do not vote", () => {
    assert.equal(answerKey([ans("0.5")]), answerKey([ans("1/2")]));
    const v = weightedMajorityVote(["1/2", null, "1", "1/2"], [0.1, 5, 0.3, 0.15]);
    assert.deepEqual(v, { answer: "1", weight: 0.3, index: 2 });
    assert.equal(majorityVote(["1/2", null, "1", "1/2"])?.answer, "1/2");
    assert.equal(majorityVote([null]), null);
  });
});

describe("lookahead search", () => {
  const tree: Record<string, string[]> = { "": ["a", "b"], a: ["a1"], a1: ["a2"], b: ["b1"], b1: ["b2"], a2: [], b2: [] };
  // The immediate PRM score prefers a; the score at the end of a 2-step rollout prefers b.
  const table = { a: 0.9, b: 0.2, "a/a1": 0.5, "b/b1": 0.5, "a/a1/a2": 0.1, "b/b1/b2": 0.8 };
  const key = (p: readonly string[]) => (p.length === 0 ? "" : p[p.length - 1]);

  test("k = 2 keeps the candidate whose rollout scores best (the step, not the rollout); budget N + N·k", async () => {
    const g = new TreeGen((p) => tree[key(p)] ?? []);
    const r = await lookaheadSearch(g, tableScorer(table), "q", { n: 2, width: 2, k: 2, maxRounds: 1, isFinished: () => false });
    assert.deepEqual(r.rounds[0].kept, [["b"]]);
    assert.deepEqual(
      r.rounds[0].candidates.map((c) => c.value),
      [0.1, 0.8],
    );
    assert.deepEqual(r.steps, ["b"]);
    assert.equal(r.score, 0.2); // the kept prefix's own score
    assert.equal(r.budget.stepsGenerated, 2 + 2 * 2);
    assert.equal(g.stepsGenerated, 6);
  });

  test("k = 0 is beam search", async () => {
    const g = new TreeGen((p) => tree[key(p)] ?? []);
    const r = await lookaheadSearch(g, tableScorer(table), "q", { n: 2, width: 2, k: 0, maxRounds: 1, isFinished: () => false });
    assert.deepEqual(r.steps, ["a"]);
    assert.equal(r.budget.stepsGenerated, 2);
  });
});

describe("MCTS", () => {
  // Depth-3 binary tree: L/R, L/R, then one of two answer steps; leaf code = 4·b0 + 2·b1 + k (R = 1).
  const children = (p: readonly string[]) => {
    if (p.length < 2) return ["L", "R"];
    if (p.length === 2) {
      const base = 4 * Number(p[0] === "R") + 2 * Number(p[1] === "R");
      return [ans(base), ans(base + 1)];
    }
    return [];
  };
  const planted = ["R", "L", ans(5)];
  const checker = (_p: string, steps: readonly string[]) => answerKey(steps) === "5";

  test("terminal-guided backups find the only rewarded leaf; budget = expansions + rollouts", async () => {
    const g = new TreeGen(children, 3);
    const r = await mcts(g, terminalEvaluator(g, checker), "q", { simulations: 80, expansions: 2, exploration: 1, seed: 1 });
    assert.deepEqual(r.steps, planted);
    assert.equal(r.answer, "5");
    assert.equal(r.score, 1);
    const byPath = new Map<string, number>();
    const walk = (n: typeof r.root) => {
      byPath.set(n.steps.join("/"), n.visits);
      n.children.forEach(walk);
    };
    walk(r.root);
    assert.equal(r.root.visits, 80);
    assert.ok((byPath.get("R") as number) > (byPath.get("L") as number));
    assert.equal(r.budget.stepsGenerated, g.nextStepsOut + g.completeStepsOut);
    assert.equal(g.nextStepsOut, 2 * g.nextCalls); // every expansion proposed exactly `expansions` steps
    assert.ok(r.candidates.some((c) => c.steps.join("/") === planted.join("/") && c.score === 1));
  });

  test("PRM values (rStar PPM) lead to the planted path; select 'value' agrees; same seed, same tree", async () => {
    const table: Record<string, number> = { R: 0.8, "R/L": 0.8, [planted.join("/")]: 0.95 };
    const run = (seed: number, select: "visits" | "value") =>
      mcts(new TreeGen(children), prmEvaluator(tableScorer(table, 0.2)), "q", {
        simulations: 60,
        expansions: 2,
        exploration: 0.5,
        seed,
        select,
      });
    const a = await run(5, "visits");
    assert.deepEqual(a.steps, planted);
    assert.equal((await run(5, "value")).answer, "5");
    const b = await run(5, "visits");
    const visits = (n: typeof a.root): number[] => [n.visits, ...n.children.flatMap(visits)];
    assert.deepEqual(visits(a.root), visits(b.root));
    assert.equal(a.budget.scorerCalls, 60);
  });
});
