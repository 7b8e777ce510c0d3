// Titans surprise as a reward (src/rewards/surprise.ts): Platt and isotonic calibration on hand data, and the
// whole path (frozen hidden states → memory → step surprise → calibrated P(wrong) → StepScorer and RewardFn) on a
// synthetic language whose correct steps repeat a pattern and whose wrong steps break it (AUROC > 0.9).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { auroc } from "../src/eval/calibration.js";
import { calibrateSurprise, surpriseAuroc } from "../src/eval/surprise.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import type { DecoderInputs } from "../src/models/decoder.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../src/models/titans.js";
import { Rng } from "../src/nn/rng.js";
import { fitIsotonic, fitPlatt, type LabelledSolution, SurpriseReader, SurpriseScorer, surpriseReward } from "../src/rewards/surprise.js";
import { type Tensor, tensor } from "../src/tensor/index.js";

describe("surprise calibration on hand data", () => {
  test("Platt: the fit is the logistic MLE (score equations hold) and is increasing when high scores are wrong", () => {
    const s = [0.1, 0.4, 0.35, 0.8, 1.2, 0.9, 1.5, 0.2, 1.1, 0.6];
    const w = [false, false, true, true, true, false, true, false, true, false];
    const c = fitPlatt(s, w, { ridge: 0 });
    let g0 = 0;
    let g1 = 0;
    s.forEach((x, i) => {
      const r = c.predict(x) - (w[i] ? 1 : 0);
      g0 += r;
      g1 += r * x;
    });
    assert.ok(Math.abs(g0) < 1e-8 && Math.abs(g1) < 1e-8, `score equations ${g0}, ${g1}`);
    assert.ok(c.a > 0 && c.predict(1.5) > c.predict(0.1));
    // symmetric data around 0.5 with balanced labels: b = −0.5a, P(0.5) = ½
    const d = fitPlatt([0, 0.25, 0.75, 1, 0.4, 0.6], [false, true, false, true, false, true]);
    assert.ok(Math.abs(d.predict(0.5) - 0.5) < 1e-9);
  });

  test("isotonic (PAV): exact blocks on a hand example", () => {
    const c = fitIsotonic([1, 2, 3, 4, 5], [false, true, false, true, true]);
    assert.deepEqual(c.thresholds, [1, 2, 4]);
    assert.deepEqual(c.values, [0, 0.5, 1]);
    assert.deepEqual(
      [0, 1, 2.5, 3, 4.5, 9].map((x) => c.predict(x)),
      [0, 0, 0.5, 0.5, 1, 1],
    );
    const ties = fitIsotonic([1, 1, 2], [true, false, true]);
    assert.deepEqual(ties.values, [0.5, 1]);
  });
});

/** A frozen "model" whose hidden state is a fixed random vector per (previous token, token) bigram. */
class BigramStates {
  private readonly table: Float32Array;
  constructor(
    readonly vocab: number,
    readonly dim: number,
    seed: number,
  ) {
    const rng = new Rng(seed);
    this.table = new Float32Array(vocab * vocab * dim);
    rng.fillNormal(this.table);
  }
  forwardHidden(inputs: DecoderInputs): Tensor {
    const ids = inputs.inputIds.hostData();
    const t = ids.length;
    const out = new Float32Array(t * this.dim);
    for (let i = 0; i < t; i++) {
      const row = ((i === 0 ? 0 : ids[i - 1]!) * this.vocab + ids[i]!) * this.dim;
      out.set(this.table.subarray(row, row + this.dim), i * this.dim);
    }
    return tensor(out, { shape: [1, t, this.dim] });
  }
}

describe("surprise reward on a planted-error language", () => {
  const tok = new CharTokenizer("abcdefgh:\n");
  const D = 16;
  const model = new BigramStates(tok.vocabSize, D, 3);
  const memory = new NeuralMemory(resolveNeuralMemoryConfig({ dim: D, keyDim: 16, valueDim: 16, memoryHidden: 32 }), { rng: new Rng(4) });
  const reader = new SurpriseReader(model, tok, memory, { aggregation: "max" });
  const GOOD = "abcdefgh";
  const prompt = `${GOOD}\n${GOOD}\n${GOOD}\n:`;
  function dataset(seed: number, n: number): LabelledSolution[] {
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => {
      const steps: string[] = [];
      const correct: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        const bad = rng.next() < 0.25;
        const s = GOOD.split("");
        if (bad) {
          const j = rng.int(7); // swap two adjacent letters: two unseen bigrams
          [s[j], s[j + 1]] = [s[j + 1]!, s[j]!];
        }
        steps.push(s.join(""));
        correct.push(!bad);
      }
      return { prompt, steps, correct };
    });
  }

  test("step surprise separates planted errors (AUROC > 0.9); calibrated scorer and reward follow", async () => {
    const val = dataset(11, 12);
    const testRows = dataset(12, 12);
    const { calibrator, auroc: valAuroc } = calibrateSurprise(reader, val, "platt");
    const testAuroc = surpriseAuroc(reader, testRows);
    console.log(`# surprise AUROC (wrong step): validation ${valAuroc.toFixed(3)}, test ${testAuroc.toFixed(3)}`);
    assert.ok(testAuroc > 0.9, `test AUROC ${testAuroc}`);
    const scorer = new SurpriseScorer(reader, calibrator);
    // calibrated P(correct-so-far) is non-increasing along a solution and ranks like the raw surprise
    const probs: number[] = [];
    const wrong: boolean[] = [];
    for (const r of testRows) {
      const p = scorer.stepWrongProbs(r.prompt, r.steps);
      probs.push(...p);
      wrong.push(...r.correct.map((c) => !c));
      const s = await scorer.scoreSteps(r.prompt, r.steps);
      for (let i = 1; i < s.length; i++) assert.ok(s[i]! <= s[i - 1]!);
    }
    assert.ok(Math.abs(auroc(probs, wrong) - testAuroc) < 1e-9, "Platt is monotone: same AUROC");
    const clean = testRows.find((r) => r.correct.every((c) => c))!;
    const dirty = testRows.find((r) => r.correct.filter((c) => !c).length >= 1)!;
    const reward = surpriseReward(scorer);
    const [rc, rd, rn] = (await reward({
      prompts: [prompt, prompt, prompt],
      completions: [`${clean.steps.join("\n")}\n`, `${dirty.steps.join("\n")}\n`, ""],
    })) as (number | null)[];
    assert.equal(reward.name, "titans_surprise");
    assert.ok(rc! > rd!, `reward clean ${rc} > flawed ${rd}`);
    assert.equal(rn, null);
    const iso = calibrateSurprise(reader, val, "isotonic").calibrator;
    assert.equal(iso.kind, "isotonic");
    assert.ok(iso.predict(1e9) >= iso.predict(-1e9));
  });
});
