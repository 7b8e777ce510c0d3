// The arithmetic-chain task: PRNG against the canonical mulberry32, deterministic generation, split
// disjointness over 10k problems (also across seeds), value bounds, exact text formats, the checker on
// hand-written solutions (first-error index convention), and noise that errs at the stated step.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ARITHMETIC_CHARSET,
  ARITHMETIC_SOLUTION_RE,
  type ArithmeticProblem,
  arithmeticKey,
  arithmeticPrompt,
  arithmeticSolution,
  chainValues,
  checkArithmetic,
  corruptSolution,
  generateArithmetic,
  joinSteps,
  Mulberry32,
  NOISE_KINDS,
  resolveArithmeticConfig,
  sampleSolution,
  splitSteps,
  stepEndOffsets,
  stepwiseRow,
  TaskError,
} from "../src/data/index.js";

// The reference mulberry32 (Tommy Ettinger's, as commonly published in JS).
function refMulberry32(a: number): () => number {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const P: ArithmeticProblem = {
  start: 17,
  steps: [
    { op: "+", operand: 25 },
    { op: "*", operand: 3 },
    { op: "-", operand: 8 },
  ],
};
const GOLD = "17 + 25 = 42\n42 * 3 = 126\n126 - 8 = 118\nThe answer is 118.\n";

describe("arithmetic task", () => {
  test("Mulberry32 matches the reference implementation", () => {
    for (const seed of [0, 1, 42, 0xdeadbeef, 2 ** 31 + 5]) {
      const a = new Mulberry32(seed);
      const b = refMulberry32(seed);
      for (let i = 0; i < 1000; i++) assert.equal(a.next(), b());
    }
  });

  test("exact prompt and solution text", () => {
    assert.equal(arithmeticPrompt(P), "Start at 17. Add 25. Multiply by 3. Subtract 8.\n");
    assert.equal(arithmeticSolution(P), GOLD);
    assert.equal(arithmeticKey(P), "17+25*3-8");
    assert.deepEqual(chainValues(P), [17, 42, 126, 118]);
    assert.ok(ARITHMETIC_SOLUTION_RE.test(GOLD));
    for (const ch of `${arithmeticPrompt(P)}${GOLD}Divide by /`)
      assert.ok(ARITHMETIC_CHARSET.includes(ch), `charset lacks ${JSON.stringify(ch)}`);
  });

  test("generation is deterministic per seed and differs across seeds", () => {
    const c = resolveArithmeticConfig();
    const a = generateArithmetic(c, "train", 200, 7);
    assert.deepEqual(generateArithmetic(c, "train", 200, 7), a);
    const b = generateArithmetic(c, "train", 200, 8);
    assert.notDeepEqual(b, a);
    // A prefix request gives the same first problems (the stream does not depend on n).
    assert.deepEqual(generateArithmetic(c, "train", 50, 7), a.slice(0, 50));
  });

  test("splits never overlap over 10k problems, within and across seeds; no duplicates", () => {
    const c = resolveArithmeticConfig({ minSteps: 1, maxSteps: 3 });
    const train = generateArithmetic(c, "train", 8000, 1).map(arithmeticKey);
    const val = generateArithmetic(c, "validation", 1000, 1).map(arithmeticKey);
    const test1 = generateArithmetic(c, "test", 1000, 1).map(arithmeticKey);
    const test2 = generateArithmetic(c, "test", 1000, 2).map(arithmeticKey);
    for (const keys of [train, val, test1, test2]) assert.equal(new Set(keys).size, keys.length);
    const trainSet = new Set(train);
    const valSet = new Set(val);
    assert.equal(val.filter((k) => trainSet.has(k)).length, 0);
    assert.equal(test1.filter((k) => trainSet.has(k) || valSet.has(k)).length, 0);
    assert.equal(test2.filter((k) => trainSet.has(k) || valSet.has(k)).length, 0);
    // Different seeds draw different test problems from the same (test) part of the space.
    assert.ok(test2.filter((k) => test1.includes(k)).length < 500);
  });

  test("values, steps and operands respect the config; division only when exact", () => {
    const c = resolveArithmeticConfig({
      minSteps: 2,
      maxSteps: 5,
      operandDigits: 2,
      mulDigits: 1,
      ops: ["+", "-", "*", "/"],
      maxValue: 500,
    });
    const ps = generateArithmetic(c, "train", 3000, 3);
    const seenOps = new Set<string>();
    for (const p of ps) {
      assert.ok(p.steps.length >= 2 && p.steps.length <= 5);
      assert.ok(p.start >= 1 && p.start <= 99);
      const vs = chainValues(p);
      for (const v of vs) assert.ok(Number.isInteger(v) && v >= 0 && v < 500, `value ${v} out of range in ${arithmeticKey(p)}`);
      p.steps.forEach((s, i) => {
        seenOps.add(s.op);
        if (s.op === "*" || s.op === "/") assert.ok(s.operand >= 2 && s.operand <= 9);
        else assert.ok(s.operand >= 1 && s.operand <= 99);
        if (s.op === "/") assert.equal(vs[i]! % s.operand, 0);
      });
      assert.equal(checkArithmetic(p, arithmeticSolution(p)).firstErrorIndex, -1);
    }
    assert.deepEqual([...seenOps].sort(), ["*", "+", "-", "/"]);
  });

  test("checker: correct solution", () => {
    const r = checkArithmetic(P, GOLD);
    assert.deepEqual(
      r.steps.map((s) => s.correct),
      [true, true, true, true],
    );
    assert.equal(r.firstErrorIndex, -1);
    assert.equal(r.finalAnswer, 118);
    assert.equal(r.answerCorrect, true);
    assert.equal(r.formatOk, true);
    assert.equal(checkArithmetic(P, GOLD.slice(0, -1)).formatOk, true); // no final newline
  });

  test("checker: slip carried forward — later steps wrong though their arithmetic is right", () => {
    const r = checkArithmetic(P, "17 + 25 = 42\n42 * 3 = 136\n136 - 8 = 128\nThe answer is 128.\n");
    assert.deepEqual(
      r.steps.map((s) => s.correct),
      [true, false, false, false],
    );
    assert.deepEqual(
      r.steps.map((s) => s.arithmeticOk),
      [true, false, true, null],
    );
    assert.equal(r.steps[1]!.expected, "42 * 3 = 126");
    assert.equal(r.steps[3]!.expected, "The answer is 118.");
    assert.equal(r.firstErrorIndex, 1);
    assert.equal(r.finalAnswer, 128);
    assert.equal(r.answerCorrect, false);
    assert.equal(r.formatOk, true);
  });

  test("checker: right answer through a wrong step, skipped step, wrong operand, garbage, truncation", () => {
    const lucky = checkArithmetic(P, "17 + 25 = 42\n42 * 3 = 125\n126 - 8 = 118\nThe answer is 118.\n");
    assert.equal(lucky.firstErrorIndex, 1);
    assert.equal(lucky.answerCorrect, true);
    assert.deepEqual(
      lucky.steps.map((s) => s.correct),
      [true, false, false, false],
    );

    const skip = checkArithmetic(P, "17 + 25 = 42\n42 - 8 = 34\nThe answer is 34.\n");
    assert.equal(skip.firstErrorIndex, 1);
    assert.equal(skip.steps[2]!.expected, "126 - 8 = 118");

    const operand = checkArithmetic(P, "17 + 52 = 69\n69 * 3 = 207\n207 - 8 = 199\nThe answer is 199.\n");
    assert.equal(operand.firstErrorIndex, 0);
    assert.equal(operand.steps[0]!.arithmeticOk, true);

    const junk = checkArithmetic(P, "17 + 25 = 42\nhmm\n");
    assert.equal(junk.firstErrorIndex, 1);
    assert.equal(junk.finalAnswer, null);
    assert.equal(junk.formatOk, false);

    const cut = checkArithmetic(P, "17 + 25 = 42\n42 * 3 = 126\n");
    assert.equal(cut.firstErrorIndex, -1);
    assert.equal(cut.finalAnswer, null);
    assert.equal(cut.answerCorrect, false);
    assert.equal(cut.formatOk, false);

    const extra = checkArithmetic(P, `${GOLD}The answer is 118.\n`);
    assert.equal(extra.firstErrorIndex, 4);
    assert.equal(extra.answerCorrect, true);
    assert.equal(extra.formatOk, false);

    const sloppy = checkArithmetic(P, "17+25=42\n42 * 3 = 126\n126 - 8 = 118\nThe answer is 118\n");
    assert.equal(sloppy.firstErrorIndex, -1); // content judged leniently...
    assert.equal(sloppy.formatOk, false); // ...format strictly
    assert.deepEqual(checkArithmetic(P, "").steps, []);
  });

  test("stepwise (PRM) row uses the checker's labels", () => {
    assert.deepEqual(stepwiseRow(P, "17 + 25 = 42\n42 * 3 = 136\n136 - 8 = 128\nThe answer is 128.\n"), {
      prompt: "Start at 17. Add 25. Multiply by 3. Subtract 8.\n",
      completions: ["17 + 25 = 42", "42 * 3 = 136", "136 - 8 = 128", "The answer is 128."],
      labels: [true, false, false, false],
    });
  });

  test("noise errs exactly at the stated step", () => {
    const c = resolveArithmeticConfig({ ops: ["+", "-", "*", "/"] });
    const ps = generateArithmetic(c, "train", 400, 11);
    const rng = new Mulberry32(99);
    for (const p of ps) {
      const n = p.steps.length;
      for (const kind of NOISE_KINDS) {
        const k = kind === "answer" ? n : rng.int(0, n - 1);
        const f = corruptSolution(p, kind, rng, kind === "answer" ? undefined : k);
        assert.equal(f.step, k);
        assert.notEqual(f.text, arithmeticSolution(p));
        const r = checkArithmetic(p, f.text);
        assert.equal(r.formatOk, true, f.text);
        assert.equal(r.firstErrorIndex, f.firstErrorIndex);
        const sameNext =
          kind === "skip" && k + 1 < n && p.steps[k]!.op === p.steps[k + 1]!.op && p.steps[k]!.operand === p.steps[k + 1]!.operand;
        if (sameNext) assert.ok(f.firstErrorIndex > k);
        else assert.equal(f.firstErrorIndex, k, `${kind} at ${k}: ${JSON.stringify(f.text)}`);
        assert.equal(splitSteps(f.text).length, kind === "skip" ? n : n + 1);
        if (kind === "answer") assert.equal(r.answerCorrect, false);
      }
    }
    assert.throws(() => corruptSolution(P, "slip", rng, 3), TaskError);
  });

  test("sampleSolution: flawed at the configured rate", () => {
    const c = resolveArithmeticConfig();
    const ps = generateArithmetic(c, "train", 4000, 5);
    const rng = new Mulberry32(1);
    let flawed = 0;
    for (const p of ps) {
      const s = sampleSolution(p, rng, { rate: 0.3, kinds: ["slip", "skip"] });
      if (s.kind === null) assert.equal(s.text, arithmeticSolution(p));
      else {
        flawed++;
        assert.ok(s.kind === "slip" || s.kind === "skip");
        assert.notEqual(checkArithmetic(p, s.text).firstErrorIndex, -1);
      }
    }
    assert.ok(flawed > 1100 && flawed < 1300, `flawed ${flawed} of 4000 at rate 0.3`);
  });

  test("step helpers: split, join and step-end offsets in char space", () => {
    assert.deepEqual(splitSteps(GOLD), ["17 + 25 = 42", "42 * 3 = 126", "126 - 8 = 118", "The answer is 118."]);
    assert.equal(joinSteps(splitSteps(GOLD)), GOLD);
    assert.deepEqual(splitSteps("a\n\nb"), ["a", "", "b"]);
    assert.deepEqual(splitSteps("a||b||", "||"), ["a", "b"]);
    const prompt = arithmeticPrompt(P);
    const full = prompt + GOLD;
    const ends = stepEndOffsets(GOLD).map((o) => prompt.length + o);
    assert.deepEqual(stepEndOffsets(GOLD), [12, 25, 39, 58]);
    for (const e of ends) assert.equal(full[e], "\n");
    assert.deepEqual(stepEndOffsets("ab\ncd"), [2, 4]);
    assert.deepEqual(stepEndOffsets("a||b||", "||"), [2, 5]);
  });

  test("config errors and an exhausted problem space", () => {
    assert.throws(() => resolveArithmeticConfig({ maxSteps: 1, minSteps: 2 }), /maxSteps must be an integer >= minSteps/);
    assert.throws(() => resolveArithmeticConfig({ steps: 3 } as never), /unknown config key "steps"/);
    assert.throws(() => resolveArithmeticConfig({ ops: ["^" as never] }), /ops must be a non-empty subset/);
    const tiny = resolveArithmeticConfig({ minSteps: 1, maxSteps: 1, operandDigits: 1, ops: ["+"], maxValue: 10 });
    assert.throws(() => generateArithmetic(tiny, "test", 100, 0), /found only \d+ of 100 distinct test problems/);
  });
});
