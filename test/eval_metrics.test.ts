// Eval metrics on hand-computed cases: ProcessBench accErr/accCor/F1 and threshold fitting applied to another
// split, label quality (P/R/F1 of negative steps), ECE/Brier/AUROC (ties as ½, and against brute-force pairs),
// pass@k against enumeration of every k-subset, best-of-N and maj@k tie rules.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  auroc,
  bestOfNAccuracy,
  brierScore,
  evaluateProcessBench,
  expectedCalibrationError,
  fitThreshold,
  hardFromSoft,
  labelQuality,
  majAtK,
  majAtKCandidates,
  majorityAnswer,
  passAtK,
  predictFirstError,
  processBenchMetric,
  thresholdCandidates,
} from "../src/eval/index.js";
import { Rng } from "../src/nn/rng.js";

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

// Scored split used for fitting: at t = 0.5 row C is missed; any t in (0.55, 0.6] gets every row right.
export const FIT_ROWS = [
  { id: "A", label: -1, scores: [0.9, 0.8, 0.7] },
  { id: "B", label: 1, scores: [0.9, 0.3, 0.2] },
  { id: "C", label: 2, scores: [0.9, 0.6, 0.55] },
  { id: "D", label: -1, scores: [0.95, 0.65, 0.9] },
];
export const APPLY_ROWS = [
  { id: "E", label: 0, scores: [0.58, 0.9] },
  { id: "F", label: -1, scores: [0.6, 0.7] },
];

describe("ProcessBench", () => {
  test("predictions: accErr 1/3, accCor 2/3, F1 = 2·(1/3)(2/3)/1 = 4/9", () => {
    const m = processBenchMetric([-1, -1, -1, 1, 2, 0], [-1, 2, -1, 1, 1, -1]);
    close(m.accErr, 1 / 3);
    close(m.accCor, 2 / 3);
    close(m.f1, 4 / 9);
    assert.equal(m.nErr, 3);
    assert.equal(m.nCor, 3);
    assert.equal(processBenchMetric([1, -1], [-1, -1]).f1, 0); // accErr 0 → F1 0
    assert.ok(Number.isNaN(processBenchMetric([-1], [-1]).accErr)); // no erroneous rows
  });

  test("scores → first step strictly below the threshold", () => {
    assert.equal(predictFirstError([0.9, 0.5, 0.1], 0.5), 2);
    assert.equal(predictFirstError([0.9, 0.5, 0.1], 0.51), 1);
    assert.equal(predictFirstError([0.9, 0.8], 0.5), -1);
    const m = evaluateProcessBench(FIT_ROWS, 0.5);
    assert.deepEqual([m.accErr, m.accCor], [0.5, 1]);
    close(m.f1, 2 / 3);
  });

  test("threshold fitting: smallest F1-maximising candidate (0.575) on one split, applied to another", () => {
    assert.deepEqual(thresholdCandidates([{ label: -1, scores: [0.2, 0.6, 0.2] }]), [0.2, 0.4, 1.6]);
    const fit = fitThreshold(FIT_ROWS);
    close(fit.threshold, 0.575);
    assert.equal(fit.metric.f1, 1);
    const m = evaluateProcessBench(APPLY_ROWS, fit.threshold);
    assert.deepEqual({ f1: m.f1, accErr: m.accErr, accCor: m.accCor }, { f1: 0, accErr: 0, accCor: 1 });
    // a given grid: 0.4 and 0.5 both give F1 2/3, the tie goes to the smaller threshold
    assert.equal(fitThreshold(FIT_ROWS, [0.5, 0.4]).threshold, 0.4);
  });
});

describe("label quality", () => {
  test("negative-step P/R/F1, accuracy and first-error agreement on a hand case", () => {
    const pred = [
      [true, false, false],
      [true, true, true],
      [false, false],
    ];
    const gold = [
      [true, true, false],
      [true, false, false],
      [false, false],
    ];
    const q = labelQuality(pred, gold); // TP 3, FP 1, FN 2
    close(q.precision, 3 / 4);
    close(q.recall, 3 / 5);
    close(q.f1, 2 / 3);
    close(q.accuracy, 5 / 8);
    close(q.firstErrorAgreement, 1 / 3);
    assert.deepEqual([q.steps, q.solutions], [8, 3]);
    assert.deepEqual(hardFromSoft([0, 0.125, 1]), [false, true, true]);
    assert.throws(() => labelQuality([[true]], [[true, false]]), /solution 0: 1 predicted labels, 2 gold/);
  });
});

describe("calibration", () => {
  const p = [0.1, 0.4, 0.45, 0.8, 0.9];
  const y = [false, true, false, true, true];
  test("ECE with 2 bins = 0.07, with 10 bins = 0.11; Brier = 0.1245", () => {
    close(expectedCalibrationError(p, y, 2).ece, 0.6 * Math.abs(1 / 3 - 0.95 / 3) + 0.4 * 0.15);
    close(expectedCalibrationError(p, y, 2).ece, 0.07);
    close(expectedCalibrationError(p, y, 10).ece, 0.11);
    const one = expectedCalibrationError([1, 0], [true, false], 4);
    assert.equal(one.ece, 0);
    assert.equal(one.bins[3]!.count, 1); // p = 1 lands in the last bin
    close(brierScore(p, y), 0.1245);
  });

  test("AUROC: 5/6 by hand, 0.875 with a tie, NaN with one class, equal to brute-force pair counting", () => {
    close(auroc(p, y), 5 / 6);
    close(auroc([0.5, 0.5, 0.2, 0.8], [true, false, false, true]), 0.875);
    assert.ok(Number.isNaN(auroc([0.1, 0.2], [true, true])));
    const rng = new Rng(4);
    const s = Array.from({ length: 60 }, () => Math.round(rng.next() * 10) / 10); // many ties
    const l = s.map((v) => rng.next() < v);
    let wins = 0;
    let pairs = 0;
    for (const [i, a] of s.entries()) {
      for (const [j, b] of s.entries()) {
        if (l[i] && !l[j]) {
          pairs++;
          wins += a > b ? 1 : a === b ? 0.5 : 0;
        }
      }
    }
    close(auroc(s, l), wins / pairs);
  });
});

describe("selection", () => {
  test("pass@k equals enumeration over every k-subset, for n ≤ 7", () => {
    for (let n = 1; n <= 7; n++) {
      for (let c = 0; c <= n; c++) {
        for (let k = 1; k <= n; k++) {
          let hit = 0;
          let all = 0;
          for (let mask = 0; mask < 1 << n; mask++) {
            let bits = 0;
            for (let b = 0; b < n; b++) if (mask & (1 << b)) bits++;
            if (bits !== k) continue;
            all++;
            if (mask & ((1 << c) - 1)) hit++; // samples 0..c-1 are the correct ones
          }
          close(passAtK(n, c, k), hit / all);
        }
      }
    }
    assert.throws(() => passAtK(4, 5, 1), /0 <= c <= n/);
  });

  test("best-of-N takes the first of tied scores; maj@k breaks ties by first appearance", () => {
    const probs = [
      [
        { score: 0.9, correct: false, answer: "3" },
        { score: 0.9, correct: true, answer: "5" },
        { score: 0.1, correct: true, answer: "5" },
      ],
      [
        { score: 0.2, correct: false, answer: "1" },
        { score: 0.7, correct: true, answer: "2" },
        { score: 0.3, correct: false, answer: "1" },
      ],
    ];
    assert.equal(bestOfNAccuracy(probs), 0.5); // problem 0 picks index 0 (tie), problem 1 picks index 1
    assert.equal(bestOfNAccuracy(probs, 1), 0);
    assert.equal(majorityAnswer(["3", "5", "5", "3", null]), "3");
    assert.equal(majorityAnswer(["3", "5", "5", "3"], 3), "5");
    assert.equal(majorityAnswer([null, null]), null);
    assert.equal(majAtKCandidates(probs), 0.5); // "5" wins problem 0 (correct), "1" wins problem 1 (wrong)
    assert.equal(
      majAtK([
        { answers: ["7", "8", "8"], gold: "8" },
        { answers: [null], gold: "1" },
      ]),
      0.5,
    );
  });
});
