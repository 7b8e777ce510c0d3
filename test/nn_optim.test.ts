// Optimizers on every backend: AdamW against hand-computed torch.optim.AdamW values and against a second
// implementation written in plain tensor ops; per-group weight decay; skipped parameters; exact resume from
// a state dict. SGD (momentum, Nesterov, L2 decay) against hand-computed values.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import { AdamW, Rng, SGD } from "../src/nn/index.js";
import { add, div, fromArray, mul, sqrt, sub, type Tensor, tensor, zeros } from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";

function close(actual: ArrayLike<number>, want: readonly number[], tol: number, what: string): void {
  assert.equal(actual.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(actual[i] - want[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${want[i]}`);
}

function param(values: number[]): Tensor {
  return tensor(values, { requiresGrad: true });
}

function randomTensor(rng: Rng, shape: number[]): Tensor {
  const a = new Float32Array(shape.reduce((n, d) => n * d, 1));
  rng.fillNormal(a);
  return fromArray(a, shape);
}

for (const backend of testBackends()) {
  describe(`AdamW on '${backend}'`, () => {
    test("two steps equal hand-computed torch.optim.AdamW values", () => {
      setBackend(backend);
      const p = param([1, -2, 0.5]);
      const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.01 });
      p.grad = tensor([0.5, 0.1, -0.2]);
      opt.step();
      // p1 = p (1 - lr wd) - lr g / (|g| + eps): the bias-corrected first step is lr * sign(g)
      close(p.hostData(), [0.899000002, -2.09799999, 0.599499995], 1e-6, "step 1");
      p.grad = tensor([-0.5, 0.3, 0]);
      opt.step();
      close(p.hostData(), [0.9033641597874735, -2.1876800978044098, 0.6659063156794416], 1e-6, "step 2");
    });

    test("matches a plain tensor-op AdamW over 5 steps on several shapes", () => {
      setBackend(backend);
      const rng = new Rng(11);
      const shapes = [[7], [3, 5], [2, 3, 4]];
      const params = shapes.map((s) => randomTensor(rng, s));
      for (const p of params) p.requiresGrad = true;
      const twin = params.map((p) => tensor(p.hostData().slice(), { shape: p.shape }));
      const m = shapes.map((s) => zeros(s));
      const v = shapes.map((s) => zeros(s));
      const [lr, b1, b2, eps, wd] = [3e-3, 0.8, 0.95, 1e-6, 0.1];
      const opt = new AdamW(params, { lr, betas: [b1, b2], eps, weightDecay: wd });
      for (let t = 1; t <= 5; t++) {
        const grads = shapes.map((s) => randomTensor(rng, s));
        params.forEach((p, i) => {
          p.grad = grads[i];
        });
        opt.step();
        twin.forEach((q, i) => {
          const g = grads[i];
          let x = sub(q, mul(q, lr * wd));
          m[i] = add(mul(m[i], b1), mul(g, 1 - b1));
          v[i] = add(mul(v[i], b2), mul(mul(g, g), 1 - b2));
          const mHat = div(m[i], 1 - b1 ** t);
          const vHat = div(v[i], 1 - b2 ** t);
          x = sub(x, mul(div(mHat, add(sqrt(vHat), eps)), lr));
          twin[i] = x;
        });
      }
      params.forEach((p, i) => {
        close(p.hostData(), Array.from(twin[i].hostData()), 1e-6, `param ${i}`);
      });
    });
  });
}

describe("AdamW bookkeeping", () => {
  test("parameters without a gradient are skipped and keep their own step count", () => {
    const a = param([1]);
    const b = param([1]);
    const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0 });
    a.grad = tensor([1]);
    opt.step();
    assert.equal(b.hostData()[0], 1, "no grad, no update (not even weight decay)");
    b.grad = tensor([1]);
    a.grad = null;
    opt.step();
    // b's first step is bias-corrected as step 1: a full lr * sign(g) move
    close(b.hostData(), [0.9], 1e-6, "b after its first step");
    assert.deepEqual(opt.stateDict().steps, [1, 1]);
  });

  test("per-group weight decay (no decay on norms and biases)", () => {
    const w = param([1]);
    const bias = param([1]);
    const opt = new AdamW([{ params: [w] }, { params: [bias], weightDecay: 0 }], { lr: 0.1, weightDecay: 0.5 });
    w.grad = tensor([0]);
    bias.grad = tensor([0]);
    opt.step();
    close(w.hostData(), [0.95], 1e-7, "decayed");
    close(bias.hostData(), [1], 0, "not decayed");
  });

  test("stateDict / loadStateDict resume exactly", () => {
    const rng = new Rng(5);
    const grads = Array.from({ length: 4 }, () => randomTensor(rng, [6]));
    const init = randomTensor(rng, [6]);
    const run = (p: Tensor, opt: AdamW, from: number, to: number) => {
      for (let s = from; s < to; s++) {
        p.grad = grads[s];
        opt.step();
      }
    };
    const straight = tensor(init.hostData().slice(), { requiresGrad: true });
    run(straight, new AdamW([straight], { lr: 0.01 }), 0, 4);
    const first = tensor(init.hostData().slice(), { requiresGrad: true });
    const opt1 = new AdamW([first], { lr: 0.01 });
    run(first, opt1, 0, 2);
    const saved = opt1.stateDict();
    const resumed = tensor(first.hostData().slice(), { requiresGrad: true });
    const opt2 = new AdamW([resumed], { lr: 0.01 });
    opt2.loadStateDict(saved);
    run(resumed, opt2, 2, 4);
    assert.deepEqual(Array.from(resumed.hostData()), Array.from(straight.hostData()));
    assert.throws(() => new AdamW([param([1]), param([2])]).loadStateDict(saved), /state.steps has 1 entries, the optimizer has 2/);
    // the named flat form used by checkpoints resumes exactly too
    const named = opt1.namedState(["w"]);
    assert.deepEqual([...named.keys()], ["w.exp_avg", "w.exp_avg_sq", "w.step"]);
    const again = tensor(first.hostData().slice(), { requiresGrad: true });
    const opt3 = new AdamW([again], { lr: 0.01 });
    opt3.loadNamedState(["w"], named);
    run(again, opt3, 2, 4);
    assert.deepEqual(Array.from(again.hostData()), Array.from(straight.hostData()));
    named.delete("w.step");
    assert.throws(() => opt3.loadNamedState(["w"], named), /state of "w" is incomplete/);
  });

  test("zeroGrad drops gradients; a mismatched gradient is an error", () => {
    const p = param([1, 2]);
    const opt = new AdamW([p]);
    p.grad = tensor([1, 2, 3]);
    assert.throws(() => opt.step(), /grad f32 \[3\] does not match f32 \[2\]/);
    opt.zeroGrad();
    assert.equal(p.grad, null);
  });
});

describe("SGD", () => {
  test("Nesterov momentum with L2 weight decay equals hand-computed torch.optim.SGD values", () => {
    const p = param([1, -2]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.1 });
    p.grad = tensor([0.5, 0.1]);
    opt.step();
    close(p.hostData(), [0.886, -1.981], 1e-6, "step 1");
    p.grad = tensor([-0.5, 0.3]);
    opt.step();
    close(p.hostData(), [0.915566, -1.992261], 1e-6, "step 2");
  });

  test("plain SGD and heavy-ball momentum with dampening", () => {
    const p = param([1]);
    new SGD([p], { lr: 0.5 }).step(); // no grad: nothing
    p.grad = tensor([2]);
    new SGD([p], { lr: 0.5 }).step();
    close(p.hostData(), [0], 0, "p - lr g");
    const q = param([0]);
    const opt = new SGD([q], { lr: 1, momentum: 0.5, dampening: 0.5 });
    q.grad = tensor([1]);
    opt.step(); // buf = g = 1 (no dampening on the first step)
    opt.step(); // buf = 0.5 * 1 + 0.5 * 1 = 1
    close(q.hostData(), [-2], 0, "momentum");
    assert.throws(() => new SGD([q], { nesterov: true }), /nesterov needs momentum > 0/);
  });
});
