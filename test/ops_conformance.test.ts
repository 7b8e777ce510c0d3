// Op conformance: ONE suite run on every backend in testBackends() (sim and cuda included). Each case runs forward and backward
// in float32 on the backend under test and is compared with the `ref` backend run on float64 copies of the
// same inputs (the oracle), outputs and every input's `.grad`. Shapes are awkward on purpose (1, 7, 33, 1000,
// broadcast edges, 0-size dims) and the overflow / underflow cases are compared with exact double values too.
// Tolerances vs the float64 oracle: elementwise rtol 1e-5 / atol 1e-6; reductions, softmax rows and matmul
// over 1000 rtol 1e-4 / atol 1e-4; values near ±1e4 are compared at rtol 1e-6 (float32 spacing there is 1e-3).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type BackendName, withBackend } from "../src/backend/index.js";
import {
  abs,
  add,
  argmax,
  attention,
  cast,
  clamp,
  concat,
  crossEntropy,
  div,
  eq,
  exp,
  expand,
  expm1,
  gather,
  ge,
  gt,
  indexSelect,
  log,
  log1mexp,
  log1p,
  logSigmoid,
  logSoftmax,
  logsumexp,
  matmul,
  max,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  permute,
  pow,
  reciprocal,
  relu,
  reshape,
  rmsNorm,
  rope,
  rsqrt,
  scatterAdd,
  sigmoid,
  sign,
  silu,
  slice,
  softmax,
  softplus,
  sort,
  sqrt,
  square,
  stack,
  sub,
  sum,
  swiglu,
  Tensor,
  tanh,
  tensor,
  tokenLogprobs,
  tokenLogprobsComposite,
  transpose,
  unaryOp,
  where,
} from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";
import { assertClose, distinctTensor, randomTensor } from "./helpers/check.js";

type Fn = (...xs: Tensor[]) => Tensor;
interface Case {
  name: string;
  fn: Fn;
  /** float32 inputs (those that require grad get their .grad compared) and i32 index tensors. */
  inputs: () => Tensor[];
  atol?: number;
  rtol?: number;
  /** Gradient tolerances when they differ from the output's. */
  gatol?: number;
  grtol?: number;
}

const ELEMENTWISE = { atol: 1e-6, rtol: 1e-5 };
const REDUCTION = { atol: 1e-4, rtol: 1e-4 };
const NEG_INF = Number.NEGATIVE_INFINITY;

let seedCounter = 1;
const rnd = (shape: number[], low = -1, high = 1, requiresGrad = true) =>
  randomTensor(shape, { seed: seedCounter++, low, high, requiresGrad });
const distinct = (shape: number[]) => distinctTensor(shape, { seed: seedCounter++, low: -3, high: 3, requiresGrad: true });
const ids = (shape: number[], n: number) => randomTensor(shape, { seed: seedCounter++, dtype: "i32", low: 0, high: n });
const f32 = (values: unknown, requiresGrad = true) => tensor(values as number[], { requiresGrad });

const SHAPES = [[1], [7], [3, 33], [1000], [0, 5]];
const unary = (op: string, fn: Fn, low = -3, high = 3, tol = ELEMENTWISE): Case[] =>
  SHAPES.map((s) => ({ name: `${op} [${s}]`, fn, inputs: () => [rnd(s, low, high)], ...tol }));
const PAIRS = [
  [[7], [7]],
  [
    [7, 1],
    [1, 33],
  ],
  [[1], [33, 7]],
  [[2, 33, 7], [7]],
  [
    [33, 1, 7],
    [1, 5, 1],
  ],
  [[1000], [1000]],
  [[0, 3], [3]],
  [[], [7]],
];
const binary = (op: string, fn: Fn, low = -3, high = 3, lowB = low, highB = high, requiresGrad = true): Case[] =>
  PAIRS.map(([sa, sb]) => ({
    name: `${op} [${sa}] x [${sb}]`,
    fn,
    inputs: () => [rnd(sa, low, high, requiresGrad), rnd(sb, lowB, highB, requiresGrad)],
    ...ELEMENTWISE,
  }));

const CASES: Case[] = [
  // ---- unary ----
  ...unary("neg", neg),
  ...unary("exp", exp, -20, 20),
  ...unary("log", log, 0.01, 100),
  ...unary("log1p", log1p, -0.99, 10),
  ...unary("expm1", expm1, -5, 5),
  ...unary("sqrt", sqrt, 0.01, 100),
  ...unary("rsqrt", rsqrt, 0.01, 100),
  ...unary("abs", abs),
  ...unary("sign", (x) => mul(sign(x), x)),
  ...unary("sigmoid", sigmoid, -20, 20),
  ...unary("tanh", tanh, -10, 10),
  ...unary("relu", relu),
  ...unary("silu", silu, -10, 10),
  ...unary("softplus", softplus, -30, 30),
  ...unary("logSigmoid", logSigmoid, -30, 30),
  ...unary("log1mexp", log1mexp, -10, -1e-3),
  ...unary("square", square),
  ...unary("reciprocal", reciprocal, 0.1, 10),
  ...unary("powScalar 1.7", (x) => pow(x, 1.7), 0.1, 4),
  ...unary("powScalar -2", (x) => pow(x, -2), 0.5, 4),
  ...unary("clamp", (x) => clamp(x, -0.5, 1.25)),
  ...unary("addScalar", (x) => add(x, 0.3)),
  ...unary("mulScalar", (x) => mul(x, -2.5)),
  ...unary("gtScalar", (x) => mul(unaryOp("gtScalar", x, 0.2), x)),
  ...unary("siluGrad", (x) => mul(unaryOp("siluGrad", x), x), -10, 10),
  // ---- binary with broadcasting ----
  ...binary("add", add),
  ...binary("sub", sub),
  ...binary("mul", mul),
  ...binary("div", div, -3, 3, 0.5, 3),
  ...binary("pow", pow, 0.1, 3, -2, 2),
  ...binary("minimum", minimum),
  ...binary("maximum", maximum),
  ...binary("gt", (a, b) => mul(gt(a, b), add(a, b))),
  ...binary("ge", (a, b) => mul(ge(a, b), add(a, b))),
  {
    name: "eq with ties, ge at ties",
    fn: (a, b) => add(mul(eq(a, b), a), mul(ge(a, b), b)),
    inputs: () => [f32([1, 2, 3, 4, 5, 6, 7]), f32([1, 0, 3, 5, 5, 7, 7])],
    ...ELEMENTWISE,
  },
  {
    name: "minimum/maximum ties",
    fn: (a, b) => add(minimum(a, b), mul(maximum(a, b), 3)),
    inputs: () => [f32([1, 2, 3]), f32([1, 0, 3])],
    ...ELEMENTWISE,
  },
  {
    name: "where [7, 1] cond x [1, 33] x scalar",
    fn: (a, b) => where(gt(a, 0), a, b),
    inputs: () => [rnd([7, 1]), rnd([1, 33])],
    ...ELEMENTWISE,
  },
  { name: "where with -Infinity branch", fn: (a) => exp(where(gt(a, 0), a, NEG_INF)), inputs: () => [rnd([33])], ...ELEMENTWISE },
  // ---- reductions ----
  ...[[1], [7], [1000], [7, 33], [3, 0]].map((s) => ({
    name: `sum all [${s}]`,
    fn: (x: Tensor) => sum(x),
    inputs: () => [rnd(s)],
    ...REDUCTION,
  })),
  { name: "sum axis 0 of [33, 7]", fn: (x) => sum(x, 0), inputs: () => [rnd([33, 7])], ...REDUCTION },
  { name: "sum axes [0, 2] keepdim", fn: (x) => sum(x, [0, 2], true), inputs: () => [rnd([7, 3, 33])], ...REDUCTION },
  { name: "sum over an empty axis", fn: (x) => sum(x, 1), inputs: () => [rnd([3, 0, 2])], ...REDUCTION },
  { name: "mean axis -1 of [7, 1000]", fn: (x) => mean(x, -1), inputs: () => [rnd([7, 1000])], ...REDUCTION },
  ...[0, 1].map((ax) => ({
    name: `max axis ${ax} of [33, 7]`,
    fn: (x: Tensor) => max(x, ax),
    inputs: () => [distinct([33, 7])],
    ...ELEMENTWISE,
  })),
  { name: "max of [1000]", fn: (x) => max(x, 0, true), inputs: () => [distinct([1000])], ...ELEMENTWISE },
  {
    name: "max with ties -> first",
    fn: (x) => max(x, -1),
    inputs: () => [
      f32([
        [1, 5, 5, 2],
        [-1, -1, -3, -2],
      ]),
    ],
    ...ELEMENTWISE,
  },
  ...[
    [1, 1],
    [7, 33],
    [3, 1000],
  ].map((s) => ({ name: `logsumexp [${s}]`, fn: (x: Tensor) => logsumexp(x, -1), inputs: () => [rnd(s, -5, 5)], ...REDUCTION })),
  { name: "logsumexp axis 0 of [33, 7]", fn: (x) => logsumexp(x, 0), inputs: () => [rnd([33, 7], -5, 5)], ...REDUCTION },
  {
    name: "logsumexp of ±1e4 and -Infinity rows",
    fn: (x) => logsumexp(x, -1),
    inputs: () => [
      f32([
        [1e4, 1e4, -1e4],
        [-1e4, -1e4, -1e4],
        [NEG_INF, NEG_INF, NEG_INF],
        [NEG_INF, 0, NEG_INF],
        [1e4, NEG_INF, 9999],
      ]),
    ],
    atol: 0,
    rtol: 1e-6,
    // the gradient exp(x - lse) inherits lse's float32 spacing at 1e4 (~5e-4): relative error up to ~5e-4
    gatol: 1e-6,
    grtol: 1e-3,
  },
  { name: "logsumexp of an empty axis is -Infinity", fn: (x) => logsumexp(x, -1), inputs: () => [rnd([3, 0])], ...ELEMENTWISE },
  // ---- softmax family ----
  ...[
    [1, 1],
    [7, 33],
    [3, 1000],
  ].map((s) => ({ name: `softmax [${s}]`, fn: (x: Tensor) => softmax(x), inputs: () => [rnd(s, -8, 8)], ...REDUCTION })),
  ...[
    [1, 1],
    [7, 33],
    [3, 1000],
  ].map((s) => ({
    name: `logSoftmax [${s}]`,
    fn: (x: Tensor) => logSoftmax(x),
    inputs: () => [rnd(s, -8, 8)],
    ...REDUCTION,
  })),
  { name: "softmax axis 0", fn: (x) => softmax(x, 0), inputs: () => [rnd([33, 7], -4, 4)], ...REDUCTION },
  {
    name: "softmax rows with -Infinity entries and ±1e4",
    fn: (x) => softmax(x),
    inputs: () => [
      f32([
        [0, NEG_INF, 1, NEG_INF],
        [1e4, -1e4, 1e4, NEG_INF],
        [NEG_INF, NEG_INF, 5, NEG_INF],
      ]),
    ],
    ...ELEMENTWISE,
  },
  {
    name: "logSoftmax rows with -Infinity entries",
    fn: (x) => logSoftmax(x),
    inputs: () => [
      f32([
        [0, NEG_INF, 1, NEG_INF],
        [NEG_INF, 2, -1e4, 1e4],
      ]),
    ],
    atol: 1e-6,
    rtol: 1e-6,
  },
  // ---- overflow / underflow ----
  {
    name: "logSigmoid/softplus/sigmoid at ±100",
    fn: (x) => stack([logSigmoid(x), softplus(x), sigmoid(x)]),
    inputs: () => [f32([-100, 100, -20, 20, 0])],
    ...ELEMENTWISE,
  },
  {
    name: "exp underflow and overflow",
    fn: (x) => exp(x),
    inputs: () => [f32([-200, -104, -88, 0, 88, Number.POSITIVE_INFINITY], false)],
    ...ELEMENTWISE,
  },
  {
    name: "log1mexp near 0 and very negative",
    fn: (x) => log1mexp(x),
    inputs: () => [f32([-1e-7, -1e-4, -0.5, -0.75, -50, -100])],
    ...ELEMENTWISE,
  },
  // ---- matmul ----
  ...(
    [
      [1, 1, 1],
      [7, 33, 1],
      [33, 7, 33],
      [1, 33, 1000],
      [7, 1, 0],
      [0, 7, 3],
    ] as const
  ).flatMap(([m, n, k]) =>
    [false, true].flatMap((ta) =>
      [false, true].map((tb) => ({
        name: `matmul m=${m} n=${n} k=${k} transA=${ta} transB=${tb}`,
        fn: (a: Tensor, b: Tensor) => matmul(a, b, { transA: ta, transB: tb }),
        inputs: () => [rnd(ta ? [k, m] : [m, k]), rnd(tb ? [n, k] : [k, n])],
        ...REDUCTION,
      })),
    ),
  ),
  {
    name: "matmul batch broadcast [2, 1, 7, 33] x [3, 33, 5]",
    fn: (a, b) => matmul(a, b),
    inputs: () => [rnd([2, 1, 7, 33]), rnd([3, 33, 5])],
    ...REDUCTION,
  },
  { name: "matmul [7, 33] x [2, 33, 1]", fn: (a, b) => matmul(a, b), inputs: () => [rnd([7, 33]), rnd([2, 33, 1])], ...REDUCTION },
  {
    name: "matmul 3-D x 2-D weight (linear layout)",
    fn: (a, b) => matmul(a, b, { transB: true }),
    inputs: () => [rnd([2, 33, 7]), rnd([5, 7])],
    ...REDUCTION,
  },
  {
    name: "matmul 3-D transA x 2-D weight",
    fn: (a, b) => matmul(a, b, { transA: true }),
    inputs: () => [rnd([3, 7, 33]), rnd([7, 5])],
    ...REDUCTION,
  },
  // ---- shape ops ----
  { name: "reshape + mul", fn: (x, y) => mul(reshape(x, [33, -1]), y), inputs: () => [rnd([3, 11, 7]), rnd([33, 7])], ...ELEMENTWISE },
  { name: "permute [2, 0, 1]", fn: (x) => permute(x, [2, 0, 1]), inputs: () => [rnd([7, 1, 33])], ...ELEMENTWISE },
  { name: "transpose 0-size", fn: (x) => transpose(x), inputs: () => [rnd([0, 7])], ...ELEMENTWISE },
  { name: "slice axis 1", fn: (x) => slice(x, 1, 3, -5), inputs: () => [rnd([7, 33])], ...ELEMENTWISE },
  { name: "slice to empty", fn: (x) => slice(x, 0, 2, 2), inputs: () => [rnd([7, 3])], ...ELEMENTWISE },
  {
    name: "concat axis -1 incl. empty",
    fn: (a, b, d) => concat([a, b, d], -1),
    inputs: () => [rnd([7, 1]), rnd([7, 0]), rnd([7, 33])],
    ...ELEMENTWISE,
  },
  { name: "expand [7, 1] -> [2, 7, 33]", fn: (x) => expand(x, [2, 7, 33]), inputs: () => [rnd([7, 1])], ...ELEMENTWISE },
  // ---- index ops ----
  { name: "gather axis -1 of [7, 33]", fn: (x, i) => gather(x, -1, i), inputs: () => [rnd([7, 33]), ids([7, 50], 33)], ...ELEMENTWISE },
  { name: "gather axis 0", fn: (x, i) => gather(x, 0, i), inputs: () => [rnd([33, 7]), ids([5, 7], 33)], ...ELEMENTWISE },
  {
    name: "scatterAdd axis 1 with repeats",
    fn: (t, s, i) => scatterAdd(t, 1, i, s),
    inputs: () => [rnd([7, 33]), rnd([7, 100]), ids([7, 100], 33)],
    ...ELEMENTWISE,
  },
  { name: "indexSelect repeated ids", fn: (t, i) => indexSelect(t, i), inputs: () => [rnd([33, 7]), ids([4, 50], 33)], ...ELEMENTWISE },
  { name: "sort values ascending [7, 33]", fn: (x) => sort(x, -1).values, inputs: () => [distinct([7, 33])], ...ELEMENTWISE },
  { name: "sort values descending axis 0", fn: (x) => sort(x, 0, true).values, inputs: () => [distinct([33, 7])], ...ELEMENTWISE },
  // ---- fused ----
  { name: "rmsNorm [7, 33]", fn: (x, w) => rmsNorm(x, w, 1e-6), inputs: () => [rnd([7, 33]), rnd([33], 0.5, 1.5)], ...REDUCTION },
  { name: "rmsNorm [1, 1000]", fn: (x, w) => rmsNorm(x, w, 1e-5), inputs: () => [rnd([1, 1000]), rnd([1000])], ...REDUCTION },
  { name: "rmsNorm rows of 1 and zeros", fn: (x, w) => rmsNorm(x, w), inputs: () => [f32([[0], [3], [-2]]), f32([1.5])], ...REDUCTION },
  {
    name: "rope [2, 3, 7, 8] with [T, Dh/2] tables",
    fn: (x, cs, sn) => rope(x, cs, sn),
    inputs: () => [rnd([2, 3, 7, 8]), rnd([7, 4], -1, 1, false), rnd([7, 4], -1, 1, false)],
    ...ELEMENTWISE,
  },
  {
    name: "rope [1, 1, 33, 2] with [B, T, Dh/2] tables",
    fn: (x, cs, sn) => rope(x, cs, sn),
    inputs: () => [rnd([1, 1, 33, 2]), rnd([1, 33, 1], -1, 1, false), rnd([1, 33, 1], -1, 1, false)],
    ...ELEMENTWISE,
  },
  ...(
    [
      ["causal B=2 H=4 Hkv=2 T=S=7 Dh=8", [2, 4, 7, 8], [2, 2, 7, 8], { causal: true }],
      ["non-causal T=1 S=33", [1, 2, 1, 16], [1, 2, 33, 16], { causal: false }],
      ["causal T=33 S=7 (rows that see nothing)", [1, 1, 33, 4], [1, 1, 7, 4], { causal: true }],
      ["causal T=7 S=33 GQA 4:1", [1, 4, 7, 8], [1, 1, 33, 8], { causal: true }],
    ] as [string, number[], number[], object][]
  ).map(([name, qs, ks, opts]) => ({
    name: `attention ${name}`,
    fn: (q: Tensor, k: Tensor, v: Tensor) => attention(q, k, v, opts),
    inputs: () => [rnd(qs, -2, 2), rnd(ks, -2, 2), rnd(ks)],
    ...REDUCTION,
  })),
  {
    name: "attention with keyMask (a fully padded batch row) and large scores",
    fn: (q, k, v, m) => attention(q, k, v, { keyMask: m, scale: 3 }),
    inputs: () => [
      rnd([2, 2, 5, 8], -3, 3),
      rnd([2, 2, 5, 8], -3, 3),
      rnd([2, 2, 5, 8]),
      f32(
        [
          [0, 0, 0, 0, 0],
          [1, 0, 1, 1, 0],
        ],
        false,
      ),
    ],
    ...REDUCTION,
  },
  { name: "swiglu [1000]", fn: (g, u) => swiglu(g, u), inputs: () => [rnd([1000], -10, 10), rnd([1000])], ...ELEMENTWISE },
  { name: "swiglu [7, 33]", fn: (g, u) => swiglu(g, u), inputs: () => [rnd([7, 33], -4, 4), rnd([7, 33])], ...ELEMENTWISE },
  {
    name: "tokenLogprobs V=1000 with logits ±1e4",
    fn: (x, t) => tokenLogprobs(mul(x, 1e4), t),
    inputs: () => [rnd([3, 1000]), ids([3], 1000)],
    atol: 1e-2,
    rtol: 1e-6,
    gatol: 1e-2,
    grtol: 1e-3, // lse near 1e4 is known to float32 spacing (5e-4), the gradient is softmax * 1e4
  },
  {
    name: "tokenLogprobs [2, 7, 33]",
    fn: (x, t) => tokenLogprobs(x, t),
    inputs: () => [rnd([2, 7, 33], -5, 5), ids([2, 7], 33)],
    ...REDUCTION,
  },
  {
    name: "crossEntropy with ignoreIndex, mean",
    fn: (x, t) => crossEntropy(x, t),
    inputs: () => [
      rnd([2, 7, 33], -5, 5),
      tensor(
        [
          [1, -100, 3, 32, 0, -100, 7],
          [-100, -100, 5, 5, 2, 1, 0],
        ],
        { dtype: "i32" },
      ),
    ],
    ...REDUCTION,
  },
  {
    name: "crossEntropy ignoreIndex -1, none",
    fn: (x, t) => crossEntropy(x, t, { ignoreIndex: -1, reduction: "none" }),
    inputs: () => [rnd([5, 1000], -5, 5), tensor([999, -1, 0, 500, -1], { dtype: "i32" })],
    ...REDUCTION,
  },
  // ---- cast (TypeScript only) ----
  {
    name: "cast to i32 truncates, back to float",
    fn: (x) => mul(cast(cast(x, "i32"), x.dtype), x),
    inputs: () => [f32([-2.7, -0.5, 0.5, 3.9])],
    ...ELEMENTWISE,
  },
];

function toF64(x: Tensor): Tensor {
  return x.dtype === "f32" ? new Tensor(Float64Array.from(x.hostData()), x.shape, x.requiresGrad) : x.toHost();
}

/** Forward, then backward with fixed random output weights; returns the output and each input's .grad. */
function run(backend: BackendName, c: Case, oracle: boolean): { out: Tensor; grads: (Tensor | null)[] } {
  return withBackend(backend, () => {
    seedCounter = 1 + 1000 * CASES.indexOf(c); // the same inputs in both runs
    const inputs = oracle ? c.inputs().map(toF64) : c.inputs();
    const out = c.fn(...inputs);
    if (out.requiresGrad) {
      const w = randomTensor(out.shape, { seed: 777, low: -1, high: 1 }); // float32 values in both runs
      out.backward(tensor(w.hostData(), { shape: w.shape, dtype: out.dtype }));
    }
    return { out, grads: inputs.map((x) => (x.requiresGrad ? x.grad : null)) };
  });
}

for (const backend of testBackends()) {
  describe(`conformance on '${backend}' (float32) vs 'ref' float64`, () => {
    for (const c of CASES) {
      test(c.name, () => {
        const got = run(backend, c, false);
        const want = run("ref", c, true);
        assert.equal(got.out.dtype, "f32");
        assertClose(got.out, want.out, { atol: c.atol, rtol: c.rtol, what: `${c.name} output` });
        const tol = { atol: c.gatol ?? c.atol, rtol: c.grtol ?? c.rtol };
        got.grads.forEach((g, i) => {
          const e = want.grads[i];
          if (g === null && e === null) return;
          assert.ok(g !== null && e !== null, `${c.name}: input ${i} grad is ${g === null ? "missing" : "unexpected"}`);
          assertClose(g, e, { ...tol, what: `${c.name} grad of input ${i}` });
        });
      });
    }

    // exact values from double-precision formulas, independent of the ref kernels
    const exact = (name: string, fn: () => Tensor, expected: number[], atol = 0, rtol = 1e-6) =>
      test(`exact: ${name}`, () => withBackend(backend, () => assertClose(fn(), expected, { atol, rtol, what: name })));
    exact(
      "logsumexp ±1e4",
      () =>
        logsumexp(
          f32(
            [
              [1e4, 1e4],
              [-1e4, -1e4],
              [1e4, -1e4],
            ],
            false,
          ),
        ),
      [1e4 + Math.LN2, -1e4 + Math.LN2, 1e4],
    );
    exact("logsumexp all -Infinity", () => logsumexp(f32([[NEG_INF, NEG_INF]], false)), [NEG_INF]);
    exact("log1mexp(-1e-7) = log(-expm1(x))", () => log1mexp(f32([-1e-7], false)), [Math.log(-Math.expm1(Math.fround(-1e-7)))]);
    exact("log1mexp(-1e-7) ≈ -16.118", () => log1mexp(f32([-1e-7], false)), [-16.118095650958317], 0, 1e-6);
    exact("log1mexp(-50) = -exp(-50)", () => log1mexp(f32([-50], false)), [-Math.exp(-50)], 0, 1e-5);
    exact("logSigmoid(±100)", () => logSigmoid(f32([-100, 100], false)), [-100, -Math.exp(-100)], 3e-45, 1e-5); // exp(-100) is a float32 subnormal
    exact("softplus(±100)", () => softplus(f32([-100, 100], false)), [Math.exp(-100), 100], 3e-45, 1e-5);
    exact("sigmoid(±100)", () => sigmoid(f32([-100, 100], false)), [Math.exp(-100), 1], 3e-45, 1e-5);
    exact("exp underflows to 0, not NaN", () => exp(f32([-1000, NEG_INF], false)), [0, 0]);
    exact("softmax with -Infinity entries", () => softmax(f32([[0, NEG_INF, Math.log(3)]], false)), [0.25, 0, 0.75], 1e-7);
    exact(
      "argmax first maximal index",
      () =>
        cast(
          argmax(
            f32(
              [
                [1, 7, 7],
                [NEG_INF, NEG_INF, -1],
              ],
              false,
            ),
          ),
          "f32",
        ),
      [1, 2],
    );
    exact("sort is stable with ties", () => cast(sort(f32([3, 1, 3, 1, 2], false)).indices, "f32"), [1, 3, 4, 0, 2]);

    test("tokenLogprobs equals logSoftmax + gather with V=1000 and logits ±1e4", () => {
      withBackend(backend, () => {
        const x = mul(rnd([4, 1000], -1, 1, false), 1e4);
        const t = ids([4], 1000);
        assertClose(tokenLogprobs(x, t), tokenLogprobsComposite(x, t), { atol: 1e-2, rtol: 1e-6 });
        const xs = rnd([4, 1000], -3, 3, false);
        assertClose(tokenLogprobs(xs, t), reshape(gather(logSoftmax(xs), -1, reshape(t, [4, 1])), [4]), { atol: 1e-6, rtol: 1e-5 });
      });
    });
    test("crossEntropy ignores ignoreIndex targets (value and zero gradient rows)", () => {
      withBackend(backend, () => {
        const x = rnd([4, 33], -4, 4);
        const t = tensor([5, -100, 32, -100], { dtype: "i32" });
        const loss = crossEntropy(x, t);
        const lp = logSoftmax(x.detach());
        const lpd = lp.hostData();
        const expected = -(lpd[0 * 33 + 5] + lpd[2 * 33 + 32]) / 2;
        assertClose(loss, [expected], { atol: 1e-6, rtol: 1e-5 });
        loss.backward();
        const g = x.grad as Tensor;
        assertClose(slice(g, 0, 1, 2), new Array(33).fill(0), { atol: 0 });
        assertClose(slice(g, 0, 3, 4), new Array(33).fill(0), { atol: 0 });
        // each kept row's gradient is (softmax - onehot) / 2 and sums to 0
        assertClose(sum(slice(g, 0, 0, 1)), [0], { atol: 1e-6 });
        assert.ok(Math.abs(g.hostData()[5] - (Math.exp(lpd[5]) - 1) / 2) < 1e-6);
      });
    });
  });
}
