// Learning-rate schedules against transformers' formulas at chosen steps, and clipGradNorm against
// torch.nn.utils.clip_grad_norm_ (returned norm, coef = max / (norm + 1e-6) clamped at 1, inf norm,
// gradients that share one buffer scaled once).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { clipGradNorm, createSchedule, warmupStepsFor } from "../src/nn/index.js";
import { add, sum, tensor } from "../src/tensor/index.js";

const near = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe("schedules", () => {
  test("cosine with warmup = get_cosine_schedule_with_warmup (num_cycles 0.5)", () => {
    const s = createSchedule({ type: "cosine", baseLr: 2e-3, warmupSteps: 10, totalSteps: 100 });
    // values of transformers' lr_lambda at these steps
    const want: [number, number][] = [
      [0, 0],
      [5, 0.5],
      [10, 1],
      [32, 0.8596699001693255],
      [55, 0.5],
      [100, 0],
      [120, 0.116977778440511], // past the end the half-wave turns up again, as in transformers
    ];
    for (const [step, f] of want) {
      near(s.factorAt(step), f);
      near(s.lrAt(step), 2e-3 * f);
    }
  });

  test("linear, constant with warmup, constant", () => {
    const lin = createSchedule({ type: "linear", baseLr: 1, warmupSteps: 4, totalSteps: 20 });
    near(lin.factorAt(2), 0.5);
    near(lin.factorAt(4), 1);
    near(lin.factorAt(12), 0.5);
    near(lin.factorAt(25), 0);
    const cw = createSchedule({ type: "constant_with_warmup", baseLr: 3, warmupSteps: 4 });
    near(cw.lrAt(1), 0.75);
    near(cw.lrAt(400), 3);
    near(createSchedule({ type: "constant", baseLr: 3, warmupSteps: 4 }).lrAt(0), 3);
    const noWarm = createSchedule({ type: "cosine", baseLr: 1, totalSteps: 4 });
    near(noWarm.factorAt(0), 1);
    near(noWarm.factorAt(2), 0.5);
  });

  test("bad options are errors; warmup ratios round up like transformers", () => {
    assert.throws(() => createSchedule({ type: "cosine", baseLr: 1, warmupSteps: 2 }), /'cosine' needs totalSteps > 0/);
    assert.throws(() => createSchedule({ type: "nope" as "linear", baseLr: 1, totalSteps: 2 }), /unknown type 'nope'/);
    assert.equal(warmupStepsFor(1000, 0.03), 30);
    assert.equal(warmupStepsFor(101, 0.1), 11);
    assert.equal(warmupStepsFor(1000, 50), 50);
  });
});

describe("clipGradNorm", () => {
  test("returns the total 2-norm and scales by max / (norm + 1e-6) when above", () => {
    const a = tensor([0, 0], { requiresGrad: true });
    const b = tensor([0], { requiresGrad: true });
    a.grad = tensor([3, 4]);
    b.grad = tensor([12]);
    const total = clipGradNorm([a, b], 6.5);
    near(total, 13);
    const coef = 6.5 / (13 + 1e-6);
    for (const [g, w] of [
      [a.grad.hostData()[0], 3 * coef],
      [a.grad.hostData()[1], 4 * coef],
      [b.grad.hostData()[0], 12 * coef],
    ]) {
      near(g, w, 1e-6);
    }
    // below the max nothing changes
    near(clipGradNorm([a, b], 100), 6.5, 1e-5);
    near(b.grad.hostData()[0], 12 * coef, 1e-6);
  });

  test("inf norm, missing gradients ignored, non-finite check", () => {
    const a = tensor([0, 0], { requiresGrad: true });
    const b = tensor([0], { requiresGrad: true });
    a.grad = tensor([-5, 1]);
    near(clipGradNorm([a, b], 1, { normType: Number.POSITIVE_INFINITY }), 5);
    near(a.grad.hostData()[0], -5 / (5 + 1e-6), 1e-6);
    a.grad = tensor([Number.NaN, 1]);
    assert.throws(() => clipGradNorm([a], 1, { errorIfNonfinite: true }), /total gradient norm is NaN/);
  });

  test("two leaves whose gradients share one buffer are scaled once", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = tensor([3, 4], { requiresGrad: true });
    sum(add(x, y)).backward(); // d/dx = d/dy = ones; the engine may hand both the same buffer
    const total = clipGradNorm([x, y], 1);
    near(total, 2);
    near(x.grad?.hostData()[0] ?? 0, 0.5 / (1 + 5e-7), 1e-6);
    near(y.grad?.hostData()[1] ?? 0, 0.5 / (1 + 5e-7), 1e-6);
  });
});
