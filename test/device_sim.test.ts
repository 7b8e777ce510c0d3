// Device tensors on the `sim` backend (the same opaque-buffer paths as cuda, on the host): a training step (forward,
// backward, clipping, AdamW) makes no host transfer per op and matches `ref`; host access to a device tensor is
// explicit; the caching allocator's statistics, reuse across steps, scopes, dispose and out-of-memory errors; bf16
// and tf32 emulation against operands rounded by hand; precision errors on host backends.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OutOfMemoryError, sizeClass } from "../src/backend/allocator.js";
import { kernels, setBackend, setPrecision, withBackend, withPrecision } from "../src/backend/index.js";
import { roundToBf16, roundToTf32, setSimCapacity } from "../src/backend/sim.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { clipGradNorm } from "../src/nn/clip.js";
import { AdamW } from "../src/nn/optim.js";
import {
  add,
  crossEntropy,
  emptyCache,
  fromArray,
  keep,
  matmul,
  memoryStats,
  mul,
  resetPeakMemoryStats,
  resetTransferStats,
  scope,
  sum,
  type Tensor,
  tensor,
  transferStats,
  zeros,
} from "../src/tensor/index.js";
import { assertClose, randomTensor } from "./helpers/check.js";

const CONFIG = (layers: number) =>
  parseHfConfig({
    model_type: "llama",
    vocab_size: 37,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: layers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    rms_norm_eps: 1e-5,
  });

const B = 3;
const T = 9;

function batch(seed: number): { ids: Int32Array; targets: Int32Array; mask: Float32Array } {
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const mask = new Float32Array(B * T).fill(1);
  let x = seed * 2654435761;
  for (let i = 0; i < ids.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    ids[i] = x % 37;
    targets[i] = (x >>> 8) % 37;
  }
  for (let j = T - 3; j < T; j++) mask[2 * T + j] = 0; // a right-padded row
  return { ids, targets, mask };
}

/** Model, optimizer and a step function on the current backend (same seed: same weights everywhere). */
function setup(layers: number) {
  const model = createCausalLM(CONFIG(layers), { seed: 3 });
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
  const step = (inputs: { ids: Tensor; targets: Tensor; mask: Tensor }): Tensor => {
    const { logits } = model.forward({ inputIds: inputs.ids, attentionMask: inputs.mask });
    const loss = crossEntropy(logits, inputs.targets);
    loss.backward();
    clipGradNorm(model.parameters(), 0.5);
    opt.step();
    opt.zeroGrad();
    return loss;
  };
  const upload = (seed: number) => {
    const b = batch(seed);
    return { ids: fromArray(b.ids, [B, T]), targets: fromArray(b.targets, [B, T]), mask: fromArray(b.mask, [B, T]) };
  };
  return { model, step, upload };
}

describe("device tensors on sim", () => {
  test("a training step makes no host transfer per op: none down, the same few up at 1 and 3 layers", () => {
    setBackend("sim");
    const counts: number[] = [];
    for (const layers of [1, 3]) {
      const { step, upload } = setup(layers);
      const inputs = upload(0);
      resetTransferStats();
      const loss = step(inputs);
      const t = transferStats();
      // clipping reads one number (the total norm); nothing else comes down; up: only the RoPE tables
      assert.equal(t.toHost, 1, `downloads in a ${layers}-layer step: ${JSON.stringify(t)}`);
      assert.ok(t.toDevice <= 2, `uploads in a ${layers}-layer step: ${JSON.stringify(t)}`);
      counts.push(t.toDevice);
      assert.ok(Number.isFinite(loss.item()));
      assert.equal(transferStats().toHost, 2, "item() is one explicit download");
    }
    assert.equal(counts[0], counts[1], "transfers do not grow with the number of layers (ops)");
  });

  test("three training steps on sim match ref (losses and every parameter)", () => {
    const run = (backend: "ref" | "sim") =>
      withBackend(backend, () => {
        const { model, step, upload } = setup(2);
        const losses = [0, 1, 2].map((s) => step(upload(s)).item());
        return { losses, params: model.parameters().map((p) => Float32Array.from(p.hostData())) };
      });
    const ref = run("ref");
    const sim = run("sim");
    assertClose(sim.losses, ref.losses, { atol: 1e-5, rtol: 1e-5, what: "losses" });
    sim.params.forEach((p, i) => {
      assertClose(p, ref.params[i], { atol: 2e-5, rtol: 1e-4, what: `parameter ${i}` });
    });
  });

  test("host access is explicit: .data throws, hostData/toArray/item download and are counted", () => {
    setBackend("sim");
    const x = matmul(tensor([[1, 2]]), tensor([[3], [4]])); // computed on the device
    assert.throws(() => x.data, /lives on 'sim'.*toArray\(\), item\(\) or hostData\(\)/);
    resetTransferStats();
    assert.deepEqual(x.toArray(), [[11]]);
    assert.equal(x.item(), 11);
    assert.deepEqual(Array.from(x.hostData()), [11]);
    assert.equal(transferStats().toHost, 3);
    // values the tensor was made from come back without a transfer
    const ids = fromArray(Int32Array.of(4, 5, 6));
    assert.deepEqual(Array.from(ids.hostData()), [4, 5, 6]);
    assert.equal(transferStats().toHost, 3);
    // a host tensor given to a device op is an error naming the op, not a silent copy
    const host = withBackend("ref", () => tensor([1, 2]));
    assert.throws(() => add(host, tensor([1, 1])), /\[add\] a f32 \[2\] tensor lives on 'host' but the backend computes on 'sim'/);
    assert.deepEqual(host.to("sim").toArray(), [1, 2]);
    assert.deepEqual(x.toHost().data, Float32Array.of(11));
  });
});

describe("the caching allocator (sim)", () => {
  test("size classes: 512 B steps below 1 MiB, four per power of two above", () => {
    assert.equal(sizeClass(1), 512);
    assert.equal(sizeClass(513), 1024);
    assert.equal(sizeClass(1 << 20), 1 << 20);
    assert.equal(sizeClass((1 << 20) + 1), (1 << 20) + (1 << 18));
    assert.equal(sizeClass(3 * (1 << 20) + 5), 3.5 * (1 << 20));
  });

  test("steps reuse cached blocks: reserved and allocated stop growing after the first step", () => {
    setBackend("sim");
    emptyCache();
    const { step, upload } = setup(2);
    const seen: { allocated: number; reserved: number; peak: number }[] = [];
    for (let s = 0; s < 4; s++) {
      resetPeakMemoryStats();
      scope(() => step(upload(s)).item());
      const m = memoryStats();
      seen.push({ allocated: m.allocated, reserved: m.reserved, peak: m.peakAllocated });
    }
    // step 1 creates the optimizer state; from then on the same tensors are allocated and freed each step
    assert.deepEqual(seen[2], seen[1]);
    assert.deepEqual(seen[3], seen[1]);
    assert.ok(seen[1].peak > seen[1].allocated, "a step's temporaries raise the peak above what stays allocated");
    assert.ok(seen[1].reserved >= seen[1].peak);
  });

  test("scope frees what it made except returned and kept tensors; use after free names the op", () => {
    setBackend("sim");
    const before = memoryStats().allocated;
    let inner: Tensor | null = null;
    let kept: Tensor | null = null;
    const out = scope(() => {
      const a = tensor([1, 2, 3]);
      inner = mul(a, 2);
      kept = keep(add(a, 1));
      return add(inner, 1);
    });
    assert.deepEqual(out.toArray(), [3, 5, 7]);
    assert.deepEqual((kept as unknown as Tensor).toArray(), [2, 3, 4]);
    out.dispose();
    (kept as unknown as Tensor).dispose();
    assert.equal(memoryStats().allocated, before);
    assert.throws(() => add(inner as unknown as Tensor, 1), /\[sim unary\] x was freed/);
  });

  test("out of memory raises an error naming the op, the request and the statistics, and the device stays usable", () => {
    setBackend("sim");
    const x = randomTensor([64, 64], { seed: 1 });
    const a = randomTensor([300, 64], { seed: 2 });
    // room for 64 KiB more than is allocated now, even after the cache is given back
    const prev = setSimCapacity(memoryStats().allocated + 64 * 1024);
    try {
      assert.throws(
        () => zeros([4096, 4096]),
        (e: unknown) =>
          e instanceof OutOfMemoryError &&
          /^\[sim full\] out of memory: requested 64\.0 MiB \(67108864 bytes\) for a f32 tensor of 16777216 elements; allocated .* peak allocated/.test(
            e.message,
          ),
      );
      assert.throws(() => matmul(a, x), /^OutOfMemoryError: \[sim matmul\] out of memory: requested 75\.0 KiB/);
    } finally {
      setSimCapacity(prev);
    }
    assertClose(
      sum(matmul(x, x)),
      withBackend("ref", () => sum(matmul(x.toHost(), x.toHost()))),
      { rtol: 1e-5, atol: 1e-4 },
    );
  });
});

describe("precision", () => {
  test("bf16 and tf32 matmul on sim equal fp32 products of operands rounded as the tensor cores do", () => {
    setBackend("sim");
    const a = randomTensor([7, 33], { seed: 5 });
    const b = randomTensor([33, 5], { seed: 6 });
    const exact = matmul(a, b);
    for (const [p, round] of [
      ["bf16", roundToBf16],
      ["tf32", roundToTf32],
    ] as const) {
      const want = withBackend("ref", () =>
        matmul(fromArray(round(a.hostData() as Float32Array), a.shape), fromArray(round(b.hostData() as Float32Array), b.shape)),
      );
      const got = p === "bf16" ? withPrecision("bf16", () => matmul(a, b)) : matmulTf32(a, b);
      assertClose(got, want, { atol: 1e-6, rtol: 1e-6, what: p });
      // and they differ from fp32 by about the rounding: bf16 keeps 8 bits, tf32 11
      const err = maxRel(got.hostData(), exact.hostData());
      assert.ok(err > (p === "bf16" ? 1e-4 : 1e-6) && err < (p === "bf16" ? 5e-2 : 5e-3), `${p} relative error ${err}`);
    }
  });

  test("rounding to bf16: ties to even, Inf and NaN kept", () => {
    const x = Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -7 + 2 ** -9, Number.POSITIVE_INFINITY, Number.NaN, -3.0e38);
    const r = roundToBf16(x);
    assert.equal(r[0], 1); // halfway, 1 is even
    assert.equal(r[1], 1 + 2 ** -6); // halfway, round up to even
    assert.equal(r[2], 1 + 2 ** -7); // below halfway
    assert.equal(r[3], Number.POSITIVE_INFINITY);
    assert.ok(Number.isNaN(r[4]));
    assert.ok(Math.abs(r[5] + 3.0e38) / 3.0e38 < 2 ** -8);
  });

  test("bf16 on a host backend is rejected with a clear message", () => {
    setBackend("ref");
    assert.throws(() => setPrecision("bf16"), /bf16 is not available on the 'ref' backend: it multiplies in float32 only/);
    setBackend("sim");
    setPrecision("bf16");
    setBackend("ref");
    assert.throws(() => matmul(tensor([[1]]), tensor([[1]])), /bf16 is not available on the 'ref' backend/);
    setBackend("sim");
    setPrecision("fp32");
  });
});

/** C = A B through the sim kernel with math "tf32" (what fp32 means on cuda; no precision setting selects it on sim). */
function matmulTf32(a: Tensor, b: Tensor): Tensor {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const out = zeros([m, n]);
  kernels().matmul(out.storage, a.storage, b.storage, 1, m, n, k, false, false, 0, 0, 0, false, "tf32");
  return out;
}

function maxRel(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let scale = 0;
  let d = 0;
  for (let i = 0; i < x.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]));
    d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d / scale;
}
