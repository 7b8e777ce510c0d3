// Finite-difference gradient checks in float64 on `ref` for every entry of the gradient table (GRADIENTS):
// the suite enumerates the table and fails when an op has no case, so a new op cannot land without one.
// Also checks each fused op's gradient against the autograd gradient of its composite (src/tensor/composite.ts).
// Tolerances: central differences with eps 1e-6 in float64 agree to ~1e-8; we assert atol 1e-6, rtol 1e-5.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setBackend, withBackend, withPrecision } from "../src/backend/index.js";
import type { Node } from "../src/tensor/index.js";
import {
  abs,
  add,
  attention,
  attentionComposite,
  cast,
  clamp,
  concat,
  div,
  eq,
  exp,
  expand,
  expm1,
  fromArray,
  GRADIENTS,
  gather,
  ge,
  grad,
  gt,
  indexSelect,
  log,
  log1mexp,
  log1p,
  logSigmoid,
  logSoftmax,
  logSoftmaxComposite,
  logsumexp,
  matmul,
  max,
  maximum,
  minimum,
  mul,
  neg,
  permute,
  pow,
  reciprocal,
  relu,
  reshape,
  rmsNorm,
  rmsNormComposite,
  rope,
  ropeComposite,
  rsqrt,
  scatterAdd,
  sigmoid,
  sign,
  silu,
  slice,
  softmax,
  softmaxComposite,
  softplus,
  sort,
  sqrt,
  square,
  sub,
  sum,
  swiglu,
  swigluComposite,
  type Tensor,
  tanh,
  tensor,
  tokenLogprobs,
  tokenLogprobsComposite,
  transpose,
  unaryOp,
  where,
} from "../src/tensor/index.js";
import { deviceBackends } from "./helpers/backends.js";
import { assertClose, distinctTensor, gradcheck, gradsOf, opsInGraph, randomTensor } from "./helpers/check.js";

type Fn = (...xs: Tensor[]) => Tensor;
interface Case {
  name: string;
  fn: Fn;
  /** Fresh float64 inputs; the ones that require grad are checked. */
  inputs: () => Tensor[];
  eps?: number;
  atol?: number;
  rtol?: number;
}

let seedCounter = 1;
/** A float64 leaf that requires grad, uniform in [low, high). */
const f64 = (shape: number[], low = -1, high = 1) =>
  randomTensor(shape, { seed: seedCounter++, dtype: "f64", low, high, requiresGrad: true });
const distinct = (shape: number[]) => distinctTensor(shape, { seed: seedCounter++, dtype: "f64", low: -2, high: 2, requiresGrad: true });
const ids = (shape: number[], n: number) => randomTensor(shape, { seed: seedCounter++, dtype: "i32", low: 0, high: n });
const konst = (shape: number[]) => randomTensor(shape, { seed: seedCounter++, dtype: "f64" });

const c = (name: string, fn: Fn, inputs: () => Tensor[], tol: Partial<Case> = {}): Case => ({ name, fn, inputs, ...tol });
const unary = (fn: Fn, low = -2, high = 2): Case[] => [
  c("[7]", fn, () => [f64([7], low, high)]),
  c("[2, 3, 4]", fn, () => [f64([2, 3, 4], low, high)]),
];
/** Binary op over equal shapes and the broadcasting edges. */
const binary = (fn: Fn, low = -2, high = 2, lowB = low, highB = high): Case[] =>
  (
    [
      [
        [3, 4],
        [3, 4],
      ],
      [
        [7, 1],
        [1, 5],
      ],
      [[1], [3, 4]],
      [[2, 3, 4], [4]],
      [
        [2, 1, 4],
        [3, 1],
      ],
      [[], [2, 3]],
    ] as number[][][]
  ).map(([sa, sb]) => c(`[${sa}] x [${sb}]`, fn, () => [f64(sa, low, high), f64(sb, lowB, highB)]));

/** Angles for RoPE: cos/sin tables of shape [..., T, Dh/2]. */
function ropeTables(shape: number[]): [Tensor, Tensor] {
  const theta = konst(shape);
  const cos = tensor(
    Array.from(theta.data, (a) => Math.cos(3 * a)),
    { shape, dtype: "f64" },
  );
  const sin = tensor(
    Array.from(theta.data, (a) => Math.sin(3 * a)),
    { shape, dtype: "f64" },
  );
  return [cos, sin];
}

/** dtype of the constants the case functions make: float64 on ref, float32 when a case runs on a device backend. */
let constDtype: "f64" | "f32" = "f64";
const K = () => constDtype;

function keyMask(rows: number[][]): Tensor {
  return tensor(rows, { dtype: K() });
}

const CASES: Record<string, Case[]> = {
  neg: unary(neg),
  exp: unary(exp),
  log: unary(log, 0.1, 3),
  log1p: unary(log1p, -0.9, 3),
  expm1: unary(expm1),
  sqrt: unary(sqrt, 0.1, 3),
  rsqrt: unary(rsqrt, 0.1, 3),
  abs: unary(abs),
  sigmoid: [...unary(sigmoid), c("saturated ±30", sigmoid, () => [f64([6], 25, 30)])],
  tanh: unary(tanh),
  relu: unary(relu),
  silu: unary(silu, -4, 4),
  softplus: [
    ...unary(softplus, -4, 4),
    c(
      "large ±40",
      (x) => softplus(mul(x, 1)),
      () => [f64([6], 35, 40)],
    ),
  ],
  logSigmoid: [...unary(logSigmoid, -4, 4), c("very negative", logSigmoid, () => [f64([6], -40, -35)])],
  log1mexp: [...unary(log1mexp, -3, -0.01), c("near 0", log1mexp, () => [f64([5], -1e-3, -1e-4)], { eps: 1e-9, rtol: 1e-4 })],
  square: unary(square),
  reciprocal: unary(reciprocal, 0.5, 2),
  powScalar: [
    c(
      "x^3",
      (x) => pow(x, 3),
      () => [f64([7])],
    ),
    c(
      "x^-0.5",
      (x) => pow(x, -0.5),
      () => [f64([2, 3], 0.2, 2)],
    ),
    c(
      "x^2.5",
      (x) => pow(x, 2.5),
      () => [f64([2, 3], 0.2, 2)],
    ),
  ],
  clamp: [
    c(
      "[-0.5, 0.5]",
      (x) => clamp(x, -0.5, 0.5),
      () => [f64([3, 7])],
    ),
    c(
      "min only",
      (x) => clamp(x, 0.1, null),
      () => [f64([3, 7])],
    ),
  ],
  addScalar: [
    c(
      "x + 2.5",
      (x) => add(x, 2.5),
      () => [f64([2, 3])],
    ),
    c(
      "3 - x",
      (x) => sub(3, x),
      () => [f64([5])],
    ),
  ],
  mulScalar: [
    c(
      "x * -1.5",
      (x) => mul(x, -1.5),
      () => [f64([2, 3])],
    ),
    c(
      "x / 4",
      (x) => div(x, 4),
      () => [f64([5])],
    ),
  ],
  add: binary(add),
  sub: binary(sub),
  mul: binary(mul),
  div: binary(div, -2, 2, 0.5, 2),
  pow: [
    ...binary(pow, 0.3, 2, -1.5, 2),
    c(
      "constant exponent tensor",
      (a) => pow(a, konstOf([2, 3])),
      () => [f64([2, 3], 0.5, 2)],
    ),
  ],
  minimum: [
    c("[3, 4] x [3, 4]", minimum, () => [distinct([3, 4]), distinct([3, 4])]),
    c("[7, 1] x [1, 5]", minimum, () => [distinct([7, 1]), distinct([1, 5])]),
  ],
  maximum: [
    c("[3, 4] x [3, 4]", maximum, () => [distinct([3, 4]), distinct([3, 4])]),
    c("[2, 3, 4] x [4]", maximum, () => [distinct([2, 3, 4]), distinct([4])]),
  ],
  where: [
    c(
      "same shape",
      (a, b) =>
        where(
          tensor(
            [
              [1, 0, 1],
              [0, 0, 1],
            ],
            { dtype: K() },
          ),
          a,
          b,
        ),
      () => [f64([2, 3]), f64([2, 3])],
    ),
    c(
      "broadcast [3] / [2, 1]",
      (a, b) =>
        where(
          tensor(
            [
              [1, 0, 1],
              [0, 1, 1],
            ],
            { dtype: K() },
          ),
          a,
          b,
        ),
      () => [f64([3]), f64([2, 1])],
    ),
    c(
      "scalar branch",
      (a) => where(tensor([1, 0, 1, 0], { dtype: K() }), a, -3),
      () => [f64([4])],
    ),
  ],
  cast: [
    // f64 -> f32 -> f64: the gradient is cast back; eps is large because the middle is float32
    c(
      "f64 -> f32 -> f64",
      (x) => mul(cast(cast(x, "f32"), "f64"), x),
      () => [f64([2, 5])],
      { eps: 1e-3, atol: 1e-5, rtol: 1e-4 },
    ),
  ],
  sum: [
    c(
      "all",
      (x) => sum(x),
      () => [f64([3, 4])],
    ),
    c(
      "axis 1",
      (x) => sum(x, 1),
      () => [f64([2, 3, 4])],
    ),
    c(
      "axes [0, 2] keepdim",
      (x) => sum(x, [0, 2], true),
      () => [f64([2, 3, 4])],
    ),
    c(
      "axis -1 of [1000]",
      (x) => sum(x, -1),
      () => [f64([1000])],
    ),
  ],
  max: [
    c(
      "axis -1",
      (x) => max(x, -1),
      () => [distinct([3, 5])],
    ),
    c(
      "axis 0 keepdim",
      (x) => max(x, 0, true),
      () => [distinct([4, 2, 3])],
    ),
    c(
      "axis 1 of 3-D",
      (x) => max(x, 1),
      () => [distinct([2, 4, 3])],
    ),
  ],
  logsumexp: [
    c(
      "axis -1",
      (x) => logsumexp(x, -1),
      () => [f64([3, 5], -3, 3)],
    ),
    c(
      "axis 0 keepdim",
      (x) => logsumexp(x, 0, true),
      () => [f64([4, 3], -3, 3)],
    ),
    c(
      "large values",
      (x) => logsumexp(mul(x, 1000), -1),
      () => [f64([2, 4])],
      { atol: 1e-5 },
    ),
  ],
  reshape: [
    c(
      "[2, 3, 4] -> [4, -1]",
      (x) => mul(reshape(x, [4, -1]), konstOf([4, 6])),
      () => [f64([2, 3, 4])],
    ),
  ],
  permute: [
    c(
      "[2, 0, 1]",
      (x) => permute(x, [2, 0, 1]),
      () => [f64([2, 3, 4])],
    ),
    c(
      "transpose",
      (x) => transpose(x, 0, 1),
      () => [f64([3, 5])],
    ),
  ],
  slice: [
    c(
      "middle axis 1",
      (x) => slice(x, 1, 1, 3),
      () => [f64([2, 4, 3])],
    ),
    c(
      "negative start",
      (x) => slice(x, -1, -2),
      () => [f64([3, 5])],
    ),
    c(
      "head",
      (x) => slice(x, 0, 0, 1),
      () => [f64([3, 2])],
    ),
  ],
  concat: [
    c(
      "axis 1",
      (a, b, d) => concat([a, b, d], 1),
      () => [f64([2, 1, 3]), f64([2, 4, 3]), f64([2, 2, 3])],
    ),
    c(
      "axis 0 with itself",
      (a) => concat([a, mul(a, 2)], 0),
      () => [f64([2, 3])],
    ),
  ],
  expand: [
    c(
      "[3, 1] -> [2, 3, 4]",
      (x) => expand(x, [2, 3, 4]),
      () => [f64([3, 1])],
    ),
    c(
      "[1] -> [5]",
      (x) => expand(x, [5]),
      () => [f64([1])],
    ),
  ],
  matmul: [
    ...[false, true].flatMap((ta) =>
      [false, true].map((tb) =>
        c(
          `2-D transA=${ta} transB=${tb}`,
          (a, b) => matmul(a, b, { transA: ta, transB: tb }),
          () => [f64(ta ? [4, 3] : [3, 4]), f64(tb ? [5, 4] : [4, 5])],
        ),
      ),
    ),
    c(
      "batch broadcast [2, 1, 3, 4] x [3, 4, 2]",
      (a, b) => matmul(a, b),
      () => [f64([2, 1, 3, 4]), f64([3, 4, 2])],
    ),
    c(
      "[3, 4] x [2, 4, 5]",
      (a, b) => matmul(a, b),
      () => [f64([3, 4]), f64([2, 4, 5])],
    ),
    c(
      "[2, 3, 4] x [1, 4, 5] (folded batch)",
      (a, b) => matmul(a, b),
      () => [f64([2, 3, 4]), f64([1, 4, 5])],
    ),
    c(
      "[2, 4, 3]ᵀ x [1, 5, 4]ᵀ",
      (a, b) => matmul(a, b, { transA: true, transB: true }),
      () => [f64([2, 4, 3]), f64([1, 5, 4])],
    ),
    ...[false, true].flatMap((ta) =>
      [false, true].map((tb) =>
        c(
          `3-D x 2-D weight transA=${ta} transB=${tb}`,
          (a, b) => matmul(a, b, { transA: ta, transB: tb }),
          () => [f64(ta ? [2, 4, 3] : [2, 3, 4]), f64(tb ? [5, 4] : [4, 5])],
        ),
      ),
    ),
    c(
      "4-D x 2-D weight",
      (a, b) => matmul(a, b, { transB: true }),
      () => [f64([2, 2, 3, 4]), f64([5, 4])],
    ),
    c(
      "batched both transposed",
      (a, b) => matmul(a, b, { transA: true, transB: true }),
      () => [f64([2, 4, 3]), f64([2, 5, 4])],
    ),
  ],
  gather: [
    c(
      "axis -1",
      (x) =>
        gather(
          x,
          -1,
          tensor(
            [
              [0, 2, 2],
              [1, 1, 0],
            ],
            { dtype: "i32" },
          ),
        ),
      () => [f64([2, 4])],
    ),
    c(
      "axis 0",
      (x) =>
        gather(
          x,
          0,
          tensor(
            [
              [2, 0, 1],
              [2, 2, 0],
            ],
            { dtype: "i32" },
          ),
        ),
      () => [f64([3, 3])],
    ),
    // sort records its values as a gather of the input at the sorted positions
    c(
      "sort values ascending",
      (x) => sort(x, -1).values,
      () => [distinct([3, 6])],
    ),
    c(
      "sort values descending axis 0",
      (x) => sort(x, 0, true).values,
      () => [distinct([5, 2])],
    ),
  ],
  scatterAdd: [
    c(
      "axis 1 with repeats",
      (t, s) =>
        scatterAdd(
          t,
          1,
          tensor(
            [
              [0, 0, 3],
              [2, 1, 2],
            ],
            { dtype: "i32" },
          ),
          s,
        ),
      () => [f64([2, 4]), f64([2, 3])],
    ),
    c(
      "axis 0",
      (t, s) => scatterAdd(t, 0, tensor([[1, 0]], { dtype: "i32" }), s),
      () => [f64([3, 2]), f64([1, 2])],
    ),
  ],
  indexSelect: [
    c(
      "repeated ids",
      (t) =>
        indexSelect(
          t,
          tensor(
            [
              [3, 1, 3],
              [0, 3, 3],
            ],
            { dtype: "i32" },
          ),
        ),
      () => [f64([5, 4])],
    ),
    c(
      "random ids",
      (t, i) => indexSelect(t, i),
      () => [f64([4, 3]), ids([9], 4)],
    ),
  ],
  softmax: [
    c(
      "last axis",
      (x) => softmax(x),
      () => [f64([3, 7], -3, 3)],
    ),
    c(
      "axis 0",
      (x) => softmax(x, 0),
      () => [f64([4, 3], -3, 3)],
    ),
    c(
      "with -Infinity entries",
      (x) => softmax(add(x, tensor([0, Number.NEGATIVE_INFINITY, 0, 0], { dtype: K() }))),
      () => [f64([3, 4])],
    ),
  ],
  logSoftmax: [
    c(
      "last axis",
      (x) => logSoftmax(x),
      () => [f64([3, 7], -3, 3)],
    ),
    c(
      "axis 1 of 3-D",
      (x) => logSoftmax(x, 1),
      () => [f64([2, 4, 3], -3, 3)],
    ),
  ],
  tokenLogprobs: [
    c(
      "[2, 3, 11]",
      (x, t) => tokenLogprobs(x, t),
      () => [f64([2, 3, 11], -3, 3), ids([2, 3], 11)],
    ),
    c(
      "big logits",
      (x) => tokenLogprobs(mul(x, 100), tensor([0, 4], { dtype: "i32" })),
      () => [f64([2, 5])],
      { atol: 1e-5 },
    ),
  ],
  rmsNorm: [
    c(
      "[2, 3, 8]",
      (x, w) => rmsNorm(x, w, 1e-6),
      () => [f64([2, 3, 8]), f64([8], 0.5, 1.5)],
    ),
    c(
      "large eps",
      (x, w) => rmsNorm(x, w, 0.5),
      () => [f64([4, 5]), f64([5])],
    ),
  ],
  rope: [
    c(
      "cos/sin [T, Dh/2]",
      (x, cos, sin) => rope(x, cos, sin),
      () => [f64([2, 2, 3, 8]), ...ropeTables([3, 4])],
    ),
    c(
      "cos/sin [B, T, Dh/2]",
      (x, cos, sin) => rope(x, cos, sin),
      () => [f64([2, 3, 5, 4]), ...ropeTables([2, 5, 2])],
    ),
  ],
  attention: [
    c(
      "causal T=S",
      (q, k, v) => attention(q, k, v),
      () => [f64([1, 2, 4, 3]), f64([1, 2, 4, 3]), f64([1, 2, 4, 3])],
    ),
    c(
      "non-causal GQA H=4 Hkv=2, T != S",
      (q, k, v) => attention(q, k, v, { causal: false }),
      () => [f64([2, 4, 3, 4]), f64([2, 2, 5, 4]), f64([2, 2, 5, 4])],
    ),
    c(
      "causal + keyMask + GQA, T=3 < S=5, a fully masked row",
      (q, k, v) =>
        attention(q, k, v, {
          keyMask: keyMask([
            [1, 1, 1, 0, 1],
            [0, 0, 0, 1, 1],
          ]),
          scale: 0.7,
        }),
      () => [f64([2, 4, 3, 4]), f64([2, 1, 5, 4]), f64([2, 1, 5, 4])],
    ),
    c(
      "causal T=4 > S=2 (first rows see nothing)",
      (q, k, v) => attention(q, k, v),
      () => [f64([1, 2, 4, 3]), f64([1, 2, 2, 3]), f64([1, 2, 2, 3])],
    ),
  ],
  swiglu: [c("[3, 7]", swiglu, () => [f64([3, 7], -3, 3), f64([3, 7])])],
};

/** Ops whose gradient rule must return null for every input. */
const NON_DIFFERENTIABLE: Record<string, () => Tensor> = {
  sign: () => sign(f64([4])),
  gtScalar: () => unaryOp("gtScalar", f64([4]), 0.1),
  siluGrad: () => unaryOp("siluGrad", f64([4])),
  gt: () => gt(f64([4]), f64([4])),
  ge: () => ge(f64([4]), f64([4])),
  eq: () => eq(f64([4]), f64([4])),
};

function konstOf(shape: number[]): Tensor {
  return randomTensor(shape, { seed: 99, dtype: K() });
}

before(() => setBackend("ref"));
after(() => setBackend("auto"));

describe("gradient table coverage", () => {
  test("every GRADIENTS key has a gradcheck case or is declared non-differentiable", () => {
    const missing = Object.keys(GRADIENTS).filter((op) => !(op in CASES) && !(op in NON_DIFFERENTIABLE));
    assert.deepEqual(missing, [], `ops with no gradient check: ${missing.join(", ")}`);
    const stale = [...Object.keys(CASES), ...Object.keys(NON_DIFFERENTIABLE)].filter((op) => !(op in GRADIENTS));
    assert.deepEqual(stale, [], `cases for ops not in GRADIENTS: ${stale.join(", ")}`);
  });
});

describe("gradcheck (float64, ref, central differences)", () => {
  for (const [op, cases] of Object.entries(CASES)) {
    for (const cs of cases) {
      test(`${op}: ${cs.name}`, () => {
        const inputs = cs.inputs();
        // the case must actually record the op it is filed under
        const out = cs.fn(...inputs);
        assert.ok(opsInGraph(out).has(op), `case records ${[...opsInGraph(out)].join(", ")}, not ${op}`);
        gradcheck(cs.fn, inputs, { eps: cs.eps, atol: cs.atol, rtol: cs.rtol, what: `${op} ${cs.name}` });
      });
    }
  }
});

describe("non-differentiable ops", () => {
  for (const [op, make] of Object.entries(NON_DIFFERENTIABLE)) {
    test(`${op} returns null gradients`, () => {
      const out = make();
      const node = out.node as Node;
      assert.equal(node.op, op);
      const g = (GRADIENTS as Record<string, (g: Tensor, n: Node, o: Tensor) => (Tensor | null)[]>)[op](out, node, out);
      assert.equal(g.length, node.inputs.length === 1 ? 1 : 2);
      assert.ok(
        g.every((x) => x === null),
        `${op} returned a gradient`,
      );
    });
  }
  test("a comparison used as a mask passes gradient only through the other factor", () => {
    const a = tensor([1, -2, 3, 0.5], { dtype: "f64", requiresGrad: true });
    const b = tensor([0, 0, 4, 0], { dtype: "f64" });
    const { grads } = grad(() => sum(mul(gt(a, b), mul(a, a))), [a]);
    assertClose(grads[0], [2, 0, 0, 1], { atol: 0 });
  });
});

describe("gradient values a finite difference cannot probe", () => {
  test("minimum/maximum ties split the gradient in half (PyTorch)", () => {
    const a = tensor([1, 2, 3], { dtype: "f64", requiresGrad: true });
    const b = tensor([1, 5, 0], { dtype: "f64", requiresGrad: true });
    const { grads } = grad(() => sum(maximum(a, b)), [a, b]);
    assertClose(grads[0], [0.5, 0, 1], { atol: 0 });
    assertClose(grads[1], [0.5, 1, 0], { atol: 0 });
  });
  test("max sends the gradient to the first maximal element", () => {
    const x = tensor([[1, 3, 3, 2]], { dtype: "f64", requiresGrad: true });
    const { grads } = grad(() => sum(max(x, -1)), [x]);
    assertClose(grads[0], [[0, 1, 0, 0]], { atol: 0 });
  });
  test("clamp passes the gradient at the bounds (lo <= x <= hi)", () => {
    const x = tensor([-1, 0, 0.5, 1, 2], { dtype: "f64", requiresGrad: true });
    const { grads } = grad(() => sum(clamp(x, 0, 1)), [x]);
    assertClose(grads[0], [0, 1, 1, 1, 0], { atol: 0 });
  });
  test("pow(a, b) has d/db = 0 at a = 0", () => {
    const a = tensor([0, 2], { dtype: "f64", requiresGrad: true });
    const b = tensor([2, 3], { dtype: "f64", requiresGrad: true });
    const { grads } = grad(() => sum(pow(a, b)), [a, b]);
    assertClose(grads[0], [0, 12], { atol: 1e-12 });
    assertClose(grads[1], [0, 8 * Math.log(2)], { atol: 1e-12 });
  });
  test("logsumexp of an all -Infinity row has gradient 0, not NaN", () => {
    const x = tensor(
      [
        [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
        [0, Math.log(3)],
      ],
      { dtype: "f64", requiresGrad: true },
    );
    const { value, grads } = grad(() => sum(mul(logsumexp(x, -1), tensor([1, 2], { dtype: "f64" }))), [x]);
    assert.equal(value.item(), Number.NEGATIVE_INFINITY);
    assertClose(
      grads[0],
      [
        [0, 0],
        [0.5, 1.5],
      ],
      { atol: 1e-12 },
    );
  });
  test("fully masked attention rows give 0 output and 0 gradient", () => {
    const q = f64([1, 1, 3, 2]);
    const k = f64([1, 1, 3, 2]);
    const v = f64([1, 1, 3, 2]);
    const mask = keyMask([[0, 1, 1]]); // causal row 0 sees key 0 only, which is masked
    const { out, grads } = gradsOf((a, b, d) => attention(a, b, d, { keyMask: mask }), [q, k, v]);
    assertClose(slice(out, 2, 0, 1), [0, 0], { atol: 0 });
    assertClose(slice(grads[0], 2, 0, 1), [0, 0], { atol: 0 });
    assertClose(slice(grads[1], 2, 0, 1), [0, 0], { atol: 0 });
    assertClose(slice(grads[2], 2, 0, 1), [0, 0], { atol: 0 });
  });
});

describe("fused ops match their composites (value and gradients, float64)", () => {
  const cases: [string, Fn, Fn, () => Tensor[]][] = [
    ["softmax", (x) => softmax(x), (x) => softmaxComposite(x), () => [f64([4, 9], -5, 5)]],
    ["logSoftmax", (x) => logSoftmax(x), (x) => logSoftmaxComposite(x), () => [f64([4, 9], -5, 5)]],
    ["rmsNorm", (x, w) => rmsNorm(x, w, 1e-5), (x, w) => rmsNormComposite(x, w, 1e-5), () => [f64([3, 2, 16]), f64([16])]],
    ["swiglu", swiglu, swigluComposite, () => [f64([5, 6], -4, 4), f64([5, 6])]],
    ...(() => {
      const t = ids([3, 4], 50);
      const out: [string, Fn, Fn, () => Tensor[]][] = [
        ["tokenLogprobs", (x) => tokenLogprobs(x, t), (x) => tokenLogprobsComposite(x, t), () => [f64([3, 4, 50], -8, 8)]],
      ];
      return out;
    })(),
    ...(() => {
      const [cos, sin] = ropeTables([2, 6, 4]);
      const [cos2, sin2] = ropeTables([6, 4]);
      const out: [string, Fn, Fn, () => Tensor[]][] = [
        ["rope [B, T, Dh/2]", (x) => rope(x, cos, sin), (x) => ropeComposite(x, cos, sin), () => [f64([2, 3, 6, 8])]],
        ["rope [T, Dh/2]", (x) => rope(x, cos2, sin2), (x) => ropeComposite(x, cos2, sin2), () => [f64([2, 3, 6, 8])]],
      ];
      return out;
    })(),
    ...(
      [
        ["causal", { causal: true }, [2, 4, 5, 8], [2, 2, 5, 8]],
        ["non-causal, T != S", { causal: false }, [1, 3, 4, 8], [1, 3, 7, 8]],
        [
          "causal + mask + GQA 4:1, T < S",
          {
            keyMask: keyMask([
              [1, 0, 1, 1, 1, 0, 1],
              [0, 0, 0, 0, 0, 1, 1],
            ]),
          },
          [2, 4, 3, 8],
          [2, 1, 7, 8],
        ],
        ["causal T > S, scale 0.3", { scale: 0.3 }, [1, 2, 6, 4], [1, 2, 3, 4]],
      ] as [string, object, number[], number[]][]
    ).map(
      ([name, opts, qs, ks]) =>
        [
          `attention ${name}`,
          (q: Tensor, k: Tensor, v: Tensor) => attention(q, k, v, opts),
          (q: Tensor, k: Tensor, v: Tensor) => attentionComposite(q, k, v, opts),
          () => [f64(qs, -2, 2), f64(ks, -2, 2), f64(ks)],
        ] as [string, Fn, Fn, () => Tensor[]],
    ),
  ];
  for (const [name, fused, composite, make] of cases) {
    test(name, () => {
      const inputs = make();
      const a = gradsOf(fused, inputs);
      const b = gradsOf(composite, inputs);
      assertClose(a.out, b.out, { atol: 1e-12, rtol: 1e-10, what: `${name} value` });
      a.grads.forEach((g, i) => {
        assertClose(g, b.grads[i], { atol: 1e-12, rtol: 1e-10, what: `${name} grad of input ${i}` });
      });
    });
  }
});

// The same cases on the device backends (sim here; cuda where a GPU answers), in float32 against the float64 ref
// values and gradients: |diff| <= 1e-4 x (1 + the largest |value| of that tensor), the fp32 bound of the op
// conformance suite. Under bf16 (matmul and attention only) the operands keep 8 significant bits, a relative rounding of
// at most 2^-9 each; a product of two rounded operands is off by up to ~2^-8 relative, and sums of such products (or
// softmax weights of such scores) stay within 1% of the largest |value| for these O(1) inputs: we assert 2e-2.
describe("gradcheck cases on device backends (float32 and bf16 vs ref float64)", () => {
  const BF16 = new Set(["matmul", "attention"]);
  const scaleOf = (t: Tensor) => Math.max(...Array.from(t.hostData() as ArrayLike<number>, Math.abs), 0);
  const toDevice = (x: Tensor) =>
    x.dtype === "f64" ? fromArray(Float32Array.from(x.data), x.shape, x.requiresGrad) : fromArray(Int32Array.from(x.data), x.shape);
  for (const backend of deviceBackends()) {
    for (const [op, cases] of Object.entries(CASES)) {
      // the f64 -> f32 -> f64 cast case is about float64 itself, which devices do not hold
      for (const cs of cases.filter((x) => !x.name.includes("f64"))) {
        for (const precision of BF16.has(op) ? (["fp32", "bf16"] as const) : (["fp32"] as const)) {
          test(`${backend} ${precision} ${op}: ${cs.name}`, () => {
            const inputs = cs.inputs();
            const want = gradsOf(cs.fn, inputs);
            constDtype = "f32";
            let got: ReturnType<typeof gradsOf>;
            try {
              got = withBackend(backend, () => withPrecision(precision, () => gradsOf(cs.fn, inputs.map(toDevice))));
            } finally {
              constDtype = "f64";
            }
            const rel = precision === "bf16" ? 2e-2 : 1e-4;
            const check = (g: Tensor, w: Tensor, what: string) =>
              assertClose(g, w, { atol: rel * (1 + scaleOf(w)), rtol: rel, what: `${backend} ${precision} ${op} ${cs.name} ${what}` });
            check(got.out, want.out, "value");
            got.grads.forEach((g, i) => {
              check(g, want.grads[i], `grad ${i}`);
            });
          });
        }
      }
    }
  }
});
