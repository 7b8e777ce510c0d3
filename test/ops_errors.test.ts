// Engine errors and autograd semantics: shape errors are tagged with the op and name both shapes; backward's
// preconditions; noGrad, detach, gradient accumulation, the functional grad(); tensor creation and read-back;
// i32 tensors in float ops. Runs on `ref` (none of this depends on the kernels).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import {
  add,
  attention,
  backward,
  cast,
  concat,
  crossEntropy,
  detach,
  exp,
  expand,
  gather,
  grad,
  indexSelect,
  isGradEnabled,
  linear,
  matmul,
  mul,
  noGrad,
  permute,
  pow,
  reshape,
  rmsNorm,
  rope,
  scatterAdd,
  softmax,
  squeeze,
  sum,
  swiglu,
  Tensor,
  TensorError,
  tensor,
  tokenLogprobs,
  zeros,
} from "../src/tensor/index.js";
import { assertClose, randomTensor } from "./helpers/check.js";

before(() => setBackend("ref"));
after(() => setBackend("auto"));

/** Assert fn throws a TensorError whose message contains every fragment. */
function throwsWith(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TensorError, `expected a TensorError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

const r = (shape: number[], seed = 1) => randomTensor(shape, { seed });
const i32 = (values: number[] | number[][]) => tensor(values, { dtype: "i32" });

describe("shape errors name the op and both shapes", () => {
  test("broadcasting binary ops", () => {
    throwsWith(() => add(r([2, 3]), r([4])), "[add] shapes [2, 3] and [4] cannot be broadcast");
    throwsWith(() => mul(r([7, 2]), r([3, 7])), "[mul]", "[7, 2]", "[3, 7]");
    throwsWith(() => pow(r([2]), r([3])), "[pow]", "[2]", "[3]");
  });
  test("matmul inner dimensions and rank", () => {
    throwsWith(() => matmul(r([2, 3]), r([4, 5])), "[matmul] inner dimensions differ", "[2, 3]", "[4, 5]", "(3 vs 4)");
    throwsWith(() => matmul(r([3, 2]), r([4, 5]), { transA: true }), "[matmul]", "[3, 2]ᵀ", "(3 vs 4)");
    throwsWith(() => matmul(r([3]), r([3, 2])), "[matmul] needs at least 2-D", "[3]", "[3, 2]");
    throwsWith(() => matmul(r([2, 2, 3]), r([3, 3, 4])), "[matmul] shapes [2] and [3] cannot be broadcast");
    throwsWith(() => linear(r([5, 3]), r([4, 2])), "[linear]", "[5, 3]", "[4, 2]");
  });
  test("rmsNorm weight size", () => {
    throwsWith(() => rmsNorm(r([2, 32]), r([64])), "[rmsNorm] weight has 64 elements, last dim is 32");
  });
  test("attention shapes and key mask", () => {
    throwsWith(() => attention(r([1, 2, 3, 4]), r([1, 2, 3, 8]), r([1, 2, 3, 8])), "[attention]", "[1, 2, 3, 4]", "[1, 2, 3, 8]");
    throwsWith(() => attention(r([1, 3, 3, 4]), r([1, 2, 3, 4]), r([1, 2, 3, 4])), "[attention]", "H % Hkv");
    throwsWith(() => attention(r([2, 3, 4]), r([1, 2, 3, 4]), r([1, 2, 3, 4])), "[attention] expects q [B,H,T,Dh]", "[2, 3, 4]");
    throwsWith(
      () => attention(r([1, 2, 3, 4]), r([1, 2, 5, 4]), r([1, 2, 5, 4]), { keyMask: r([1, 3]) }),
      "[attention] keyMask [1, 3] must be [1, 5]",
    );
  });
  test("rope and swiglu", () => {
    throwsWith(() => rope(r([1, 1, 3, 5]), r([3, 2]), r([3, 2])), "[rope] head dim 5 must be even");
    throwsWith(() => rope(r([1, 1, 3, 4]), r([4, 2]), r([4, 2])), "[rope]", "[4, 2]", "[1, 1, 3, 4]");
    throwsWith(() => swiglu(r([2, 3]), r([3, 2])), "[swiglu] gate [2, 3] and up [3, 2] differ");
  });
  test("index ops check ranges and shapes", () => {
    throwsWith(
      () =>
        gather(
          r([2, 3]),
          1,
          i32([
            [0, 3],
            [1, 1],
          ]),
        ),
      "[gather] index 3 at position 1 is out of range [0, 3)",
    );
    throwsWith(
      () =>
        gather(
          r([2, 3]),
          1,
          i32([
            [0, -1],
            [1, 1],
          ]),
        ),
      "[gather] index -1",
    );
    throwsWith(() => gather(r([2, 3]), 1, i32([[0, 1]])), "[gather] index [1, 2] must match [2, 3] except on axis 1");
    throwsWith(() => gather(r([2, 3]), 1, r([2, 2])), "[gather] index must be i32, got f32");
    throwsWith(() => scatterAdd(r([2, 3]), 1, i32([[0], [5]]), r([2, 1])), "[scatterAdd] index 5", "[0, 3)");
    throwsWith(() => indexSelect(r([4, 2]), i32([1, 4])), "[indexSelect] index 4 at position 1 is out of range [0, 4)");
    throwsWith(() => tokenLogprobs(r([2, 5]), i32([0, 5])), "[tokenLogprobs] target 5 at position 1 is out of range [0, 5)");
    throwsWith(() => tokenLogprobs(r([2, 5]), i32([0, 1, 2])), "[tokenLogprobs] targets [3] must equal logits [2, 5]");
  });
  test("crossEntropy rejects float targets instead of truncating them", () => {
    throwsWith(() => crossEntropy(r([2, 5]), tensor([1.5, 2])), "[crossEntropy] targets must be i32, got f32");
  });
  test("reshape, expand, concat, permute, squeeze, axes", () => {
    throwsWith(() => reshape(r([2, 3]), [4, 2]), "[reshape] cannot reshape [2, 3] to [4, 2]");
    throwsWith(() => reshape(r([2, 3]), [4, -1]), "[reshape] cannot reshape [2, 3] to [4, -1]");
    throwsWith(() => expand(r([2, 3]), [2, 4]), "[expand]", "[2, 3]", "[2, 4]");
    throwsWith(() => concat([r([2, 3]), r([3, 3])], 1), "[concat]", "[3, 3]", "[2, 3]", "off axis 1");
    throwsWith(() => concat([]), "[concat] needs at least one tensor");
    throwsWith(() => permute(r([2, 3]), [0, 0]), "[permute] repeated axis");
    throwsWith(() => squeeze(r([2, 3]), 0), "[squeeze] axis 0 of [2, 3] is not 1");
    throwsWith(() => sum(r([2, 3]), 2), "[sum] axis 2 out of range for 2 dims");
    throwsWith(() => softmax(r([2, 3]), -3), "[softmax] axis -3 out of range");
  });
});

describe("dtype errors", () => {
  test("i32 tensors are rejected by float ops with a clear error", () => {
    const ids = i32([1, 2, 3]);
    throwsWith(() => exp(ids), "[exp] expects float tensors, got i32 (cast with .float())");
    throwsWith(() => add(ids, r([3])), "[add] expects float tensors, got i32");
    throwsWith(() => matmul(i32([[1]]), r([1, 1])), "[matmul] expects float tensors, got i32");
    throwsWith(() => sum(ids), "[sum] expects float tensors, got i32");
    throwsWith(() => softmax(ids), "[softmax] expects float tensors, got i32");
    assertClose(exp(ids.float()), [Math.exp(1), Math.exp(2), Math.exp(3)], { rtol: 1e-6 });
  });
  test("mixing f32 and f64 is an error; i32 cannot require grad", () => {
    throwsWith(() => add(r([2]), tensor([1, 2], { dtype: "f64" })), "[add] mixes f32 and f64 tensors");
    throwsWith(() => tensor([1, 2], { dtype: "i32", requiresGrad: true }), "[tensor] an i32 tensor cannot require grad");
    throwsWith(() => tensor([1.5], { dtype: "i32" }), "[tensor] i32 tensor got non-integer value 1.5 at 0");
  });
  test("cast truncates to i32 and float casts carry gradients", () => {
    assert.deepEqual(cast(tensor([-1.7, 2.9]), "i32").toArray(), [-1, 2]);
    const x = tensor([1, 2], { requiresGrad: true });
    sum(mul(cast(x, "f64"), tensor([3, 4], { dtype: "f64" }))).backward();
    assert.equal(x.grad?.dtype, "f32");
    assertClose(x.grad as Tensor, [3, 4], { atol: 0 });
  });
});

describe("backward preconditions", () => {
  test("a non-scalar root needs an explicit gradient", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    throwsWith(() => mul(x, 2).backward(), "[backward] implicit gradient needs a scalar, got [2]");
    const y = mul(x, 2);
    y.backward(tensor([1, 10]));
    assertClose(x.grad as Tensor, [2, 20], { atol: 0 });
  });
  test("a root that does not require grad", () => {
    throwsWith(() => sum(tensor([1, 2])).backward(), "[backward] tensor does not require grad");
  });
  test("a seed of the wrong shape", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    throwsWith(() => mul(x, 2).backward(tensor([1, 2, 3])), "[backward] gradient [3] does not match tensor [2]");
  });
  test("backward twice through a freed graph is an error, not a silently missing gradient", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const h = exp(x);
    const loss1 = sum(h);
    const loss2 = sum(mul(h, 2));
    loss1.backward();
    throwsWith(() => loss2.backward(), "[backward] the graph through this tensor was freed");
    throwsWith(() => loss1.backward(), "[backward] the graph through this tensor was freed");
    assertClose(x.grad as Tensor, [Math.E, Math.exp(2)], { rtol: 1e-6 });
  });
  test("retainGraph lets two losses share a graph, and their gradients add", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const h = exp(x);
    sum(h).backward(undefined, { retainGraph: true });
    sum(mul(h, 2)).backward();
    assertClose(x.grad as Tensor, [3 * Math.E, 3 * Math.exp(2)], { rtol: 1e-6 });
  });
});

describe("gradient mode and accumulation", () => {
  test("noGrad stops recording and restores the mode, even on throw", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = noGrad(() => mul(x, 3));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    assert.equal(isGradEnabled(), true);
    assert.throws(() => noGrad(() => add(r([2]), r([3]))));
    assert.equal(isGradEnabled(), true);
    const z = mul(x, 3);
    assert.equal(z.requiresGrad, true);
    assert.equal(z.node?.op, "mulScalar");
  });
  test("detach shares data but cuts the graph", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = mul(x, x);
    const d = detach(y);
    assert.equal(d.requiresGrad, false);
    assert.equal(d.data, y.data);
    // loss = y * detach(y): d/dx = dy/dx * d = 2x * x^2
    sum(mul(y, d)).backward();
    assertClose(x.grad as Tensor, [2, 16], { atol: 0 });
  });
  test("two backward calls add into .grad (accumulation 2 x 1 equals 1 x 2)", () => {
    const w = tensor([0.5, -1, 2], { requiresGrad: true });
    const xs = [tensor([1, 2, 3]), tensor([-1, 0.5, 4])];
    const loss = (x: Tensor) => sum(mul(mul(w, x), mul(w, x)));
    for (const x of xs) loss(x).backward();
    const separate = Float64Array.from((w.grad as Tensor).data);
    w.grad = null;
    add(loss(xs[0]), loss(xs[1])).backward();
    assertClose(separate, w.grad!, { atol: 1e-6 });
    // 2 w x^2 summed over both inputs
    assertClose(separate, [2 * 0.5 * (1 + 1), 2 * -1 * (4 + 0.25), 2 * 2 * (9 + 16)], { atol: 1e-5 });
  });
  test("each leaf's .grad owns its buffer (add passes one gradient to both inputs)", () => {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const b = tensor([4, 5, 6], { requiresGrad: true });
    const seed = tensor([1, 1, 1]);
    add(a, b).backward(seed);
    assert.notEqual(a.grad?.data, b.grad?.data);
    assert.notEqual(a.grad?.data, seed.data);
    (a.grad as Tensor).data[0] = 100; // an in-place update (clipping) must not leak into b.grad or the seed
    assertClose(b.grad as Tensor, [1, 1, 1], { atol: 0 });
    assertClose(seed, [1, 1, 1], { atol: 0 });
  });
  test("grad(fn, params) returns gradients and leaves .grad untouched", () => {
    const w = tensor([1, 2], { requiresGrad: true });
    const unused = tensor([5], { requiresGrad: true });
    w.grad = tensor([10, 10]);
    const { value, grads } = grad(() => sum(mul(w, w)), [w, unused]);
    assert.equal(value.item(), 5);
    assertClose(grads[0], [2, 4], { atol: 0 });
    assertClose(grads[1], [0], { atol: 0 });
    assertClose(w.grad as Tensor, [10, 10], { atol: 0 });
    assert.equal(unused.grad, null);
    throwsWith(() => grad(() => sum(mul(w, w)), [tensor([1])]), "[grad] parameter");
  });
  test("the module-level backward is the method", () => {
    const x = tensor([3], { requiresGrad: true });
    backward(mul(x, x));
    assertClose(x.grad as Tensor, [6], { atol: 0 });
  });
  test("pow(x, 0) has gradient 0 at x = 0, not NaN", () => {
    const x = tensor([0, 2], { requiresGrad: true });
    sum(pow(x, 0)).backward();
    assertClose(x.grad as Tensor, [0, 0], { atol: 0 });
  });
});

describe("tensor creation and read-back", () => {
  test("from a scalar", () => {
    const t = tensor(2.5);
    assert.deepEqual(t.shape, []);
    assert.equal(t.dtype, "f32");
    assert.equal(t.item(), 2.5);
    assert.equal(t.toArray(), 2.5);
    assert.equal(tensor(true).item(), 1);
  });
  test("from nested arrays", () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(Array.from(t.data), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(t.toArray(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(tensor([[[1], [2]]]).shape, [1, 2, 1]);
    assert.deepEqual(tensor([]).shape, [0]);
    assert.deepEqual(tensor([[], []]).shape, [2, 0]);
    assert.deepEqual(tensor([[], []]).toArray(), [[], []]);
    throwsWith(() => tensor([[1, 2], [3]]), "[tensor] ragged nested array");
  });
  test("from a flat array with a shape", () => {
    const t = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2], dtype: "f64" });
    assert.equal(t.dtype, "f64");
    assert.deepEqual(t.toArray(), [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    throwsWith(() => tensor([1, 2, 3], { shape: [2, 2] }), "[tensor] 3 values do not fill shape [2, 2] (4 elements)");
  });
  test("from typed arrays: the dtype follows the array, and the data is copied", () => {
    const src = new Float64Array([1.5, 2.5]);
    const t = tensor(src);
    assert.equal(t.dtype, "f64");
    src[0] = 9;
    assert.equal(t.data[0], 1.5);
    assert.equal(tensor(new Int32Array([1, 2])).dtype, "i32");
    assert.equal(tensor(new Float32Array(6), { shape: [2, 3] }).ndim, 2);
    assert.equal(tensor(new Float64Array([0.1]), { dtype: "f32" }).data[0], Math.fround(0.1));
  });
  test("the Tensor constructor checks sizes and shapes", () => {
    throwsWith(() => new Tensor(new Float32Array(3), [2, 2]), "[tensor] data has 3 elements, shape [2, 2] needs 4");
    throwsWith(() => new Tensor(new Float32Array(0), [-1, 0]), "[tensor]");
  });
  test("item() needs exactly one element", () => {
    throwsWith(() => tensor([1, 2]).item(), "[item] tensor of shape [2] has 2 elements, expected 1");
    throwsWith(() => zeros([0]).item(), "[item] tensor of shape [0] has 0 elements");
    assert.equal(tensor([[7]]).item(), 7);
  });
});
