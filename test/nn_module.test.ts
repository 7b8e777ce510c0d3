// Module tree: HF-style dotted names, shared (tied) parameters listed once, loadStateDict's errors
// (missing / unexpected key, shape mismatch naming the key) and its all-or-nothing copy, freeze/train toggles;
// layers' shapes and init; the seeded Rng (determinism, exact state restore, normal moments).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { Embedding, Linear, Module, ModuleError, ModuleList, RMSNorm, Rng } from "../src/nn/index.js";
import { type Tensor, tensor, zeros } from "../src/tensor/index.js";

class Block extends Module {
  readonly proj: Linear;
  readonly norm: RMSNorm;
  constructor(rng: Rng) {
    super();
    this.proj = this.registerModule("proj", new Linear(4, 3, { bias: true, rng }));
    this.norm = this.registerModule("norm", new RMSNorm(3));
  }
}

class Net extends Module {
  readonly embed: Embedding;
  readonly blocks: ModuleList<Block>;
  readonly head: Tensor;
  constructor(rng: Rng) {
    super();
    this.embed = this.registerModule("embed_tokens", new Embedding(10, 4, { rng }));
    this.blocks = this.registerModule("layers", new ModuleList([new Block(rng), new Block(rng)]));
    this.head = this.registerParameter("head", this.embed.weight); // tied: same tensor under a second name
  }
}

describe("Module", () => {
  test("dotted names, own parameters before children's (as torch); a shared tensor appears once", () => {
    const net = new Net(new Rng(1));
    const names = [...net.namedParameters()].map(([n]) => n);
    assert.deepEqual(names, [
      "head",
      "layers.0.proj.weight",
      "layers.0.proj.bias",
      "layers.0.norm.weight",
      "layers.1.proj.weight",
      "layers.1.proj.bias",
      "layers.1.norm.weight",
    ]);
    assert.equal(net.parameters().length, 7);
    assert.equal(net.numParameters(), 40 + 2 * (12 + 3 + 3));
    assert.deepEqual(
      [...net.namedModules()].map(([n]) => n),
      ["", "embed_tokens", "layers", "layers.0", "layers.0.proj", "layers.0.norm", "layers.1", "layers.1.proj", "layers.1.norm"],
    );
  });

  test("loadStateDict copies values into the live tensors", () => {
    const a = new Net(new Rng(1));
    const b = new Net(new Rng(2));
    const before = b.embed.weight;
    b.loadStateDict(a.stateDict());
    assert.equal(b.embed.weight, before, "tensor identity is kept");
    assert.equal(b.head, b.embed.weight);
    for (const [n, t] of a.stateDict()) assert.deepEqual(Array.from(b.stateDict().get(n)?.hostData() ?? []), Array.from(t.hostData()));
  });

  test("loadStateDict errors name the key", () => {
    const net = new Net(new Rng(1));
    const state = net.stateDict();
    const missing = new Map(state);
    missing.delete("layers.1.norm.weight");
    assert.throws(
      () => net.loadStateDict(missing),
      (e: Error) => e instanceof ModuleError && /missing key\(s\) "layers\.1\.norm\.weight"/.test(e.message),
    );
    const extra = new Map(state);
    extra.set("layers.2.proj.weight", zeros([3, 4]));
    assert.throws(() => net.loadStateDict(extra), /unexpected key\(s\) "layers\.2\.proj\.weight"/);
    // non-strict reports them instead
    const res = net.loadStateDict(extra, { strict: false });
    assert.deepEqual(res, { missingKeys: [], unexpectedKeys: ["layers.2.proj.weight"] });
    // a shape mismatch is an error even when not strict, and nothing is copied
    const bad = new Map(state);
    const old = Array.from(net.embed.weight.hostData());
    bad.set("embed_tokens.weight", zeros([10, 4]));
    bad.set("layers.0.proj.weight", zeros([4, 3]));
    assert.throws(
      () => net.loadStateDict(bad, { strict: false }),
      /shape mismatch for "layers\.0\.proj\.weight": checkpoint \[4, 3\], model \[3, 4\]/,
    );
    assert.deepEqual(Array.from(net.embed.weight.hostData()), old, "a failed load leaves the model untouched");
  });

  test("registering a name twice or with a dot is an error", () => {
    class Bad extends Module {
      constructor(name: string, twice: boolean) {
        super();
        this.registerParameter(name, zeros([1]));
        if (twice) this.registerModule(name, new RMSNorm(1));
      }
    }
    assert.throws(() => new Bad("w", true), /"w" is registered twice/);
    assert.throws(() => new Bad("a.b", false), /without dots/);
  });

  test("freeze / unfreeze / train / eval toggle the whole tree", () => {
    const net = new Net(new Rng(1));
    net.blocks.at(0).freeze();
    assert.equal(net.trainableParameters().length, 4);
    net.freeze();
    assert.equal(net.trainableParameters().length, 0);
    net.unfreeze();
    assert.equal(net.trainableParameters().length, 7);
    net.eval();
    assert.ok([...net.namedModules()].every(([, m]) => !m.training));
    net.train();
    assert.ok(net.blocks.at(1).norm.training);
  });
});

describe("layers", () => {
  test("Linear is x W^T + b with W [out, in]; Embedding looks rows up; RMSNorm weight starts at 1", () => {
    const lin = new Linear(2, 3, { bias: true });
    lin.weight.copyFrom([1, 2, 3, 4, 5, 6]);
    lin.bias?.copyFrom([0.5, 0, -1]);
    const y = lin.forward(tensor([[1, -1]]));
    assert.deepEqual(y.toArray(), [[-0.5, -1, -2]]);
    const emb = new Embedding(3, 2);
    emb.weight.copyFrom([0, 1, 2, 3, 4, 5]);
    assert.deepEqual(emb.forward(tensor([2, 0], { dtype: "i32" })).toArray(), [
      [4, 5],
      [0, 1],
    ]);
    const norm = new RMSNorm(2, 0);
    assert.deepEqual(Array.from(norm.weight.hostData()), [1, 1]);
    const n = norm.forward(tensor([[3, 4]])).hostData();
    const r = Math.sqrt((9 + 16) / 2);
    assert.ok(Math.abs(n[0] - 3 / r) < 1e-6 && Math.abs(n[1] - 4 / r) < 1e-6);
  });

  test("a seeded init is reproducible and has std ≈ initializer_range", () => {
    const cfg = parseHfConfig({
      model_type: "llama",
      vocab_size: 64,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      initializer_range: 0.05,
    });
    const a = createCausalLM(cfg, { seed: 7 });
    const b = createCausalLM(cfg, { seed: 7 });
    const c = createCausalLM(cfg, { seed: 8 });
    const w = a.model.embedTokens.weight.hostData();
    assert.deepEqual(Array.from(w), Array.from(b.model.embedTokens.weight.hostData()));
    assert.notDeepEqual(Array.from(w), Array.from(c.model.embedTokens.weight.hostData()));
    let s2 = 0;
    for (const x of w) s2 += x * x;
    const std = Math.sqrt(s2 / w.length);
    assert.ok(Math.abs(std - 0.05) < 0.005, `init std ${std}`);
    assert.ok(Array.from(a.model.norm.weight.hostData()).every((x) => x === 1));
  });
});

describe("Rng", () => {
  test("same seed, same stream; getState/setState restores it exactly", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.next()),
      xs,
    );
    const state = a.getState();
    const ahead = [a.normal(), a.nextUint32(), a.next()];
    const c = new Rng(0);
    c.setState(state);
    assert.deepEqual([c.normal(), c.nextUint32(), c.next()], ahead);
    assert.notDeepEqual(new Rng(1).getState(), new Rng(2).getState());
    assert.throws(() => c.setState([0, 0, 0, 0]), /not all zero/);
  });

  test("uniforms in [0, 1) and normals with mean 0, variance 1", () => {
    const r = new Rng(3);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    assert.ok(lo >= 0 && hi < 1 && lo < 1e-4 && hi > 1 - 1e-4);
    assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
    assert.ok(Math.abs(s2 / n - 1) < 0.02, `var ${s2 / n}`);
    const perm = r.shuffle([0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual([...perm].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  });
});
