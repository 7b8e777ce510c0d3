// LoRA invariants on the HF fixture models: a zero-B adapter changes no logit; the forward equals
// W x + (alpha / r) B A x; training moves only adapter weights (base bytes identical); disabling gives the base
// logits exactly; PEFT save → load gives identical logits; merging matches unmerged within 1e-5; dropout is
// seeded and off in eval; target matching follows PEFT.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readSafetensorsHeader } from "../src/io/safetensors.js";
import { type CausalLM, loadCausalLM } from "../src/models/causal_lm.js";
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  applyLora,
  LoraModel,
  loadLoraAdapter,
  matchesTarget,
  mergeLora,
  saveLoraAdapter,
  withAdaptersDisabled,
} from "../src/models/lora.js";
import { Linear } from "../src/nn/layers.js";
import { Module } from "../src/nn/module.js";
import { AdamW } from "../src/nn/optim.js";
import { Rng } from "../src/nn/rng.js";
import { backward, crossEntropy, fromArray, noGrad, type Tensor } from "../src/tensor/index.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const MERGE_TOL = 1e-5;

const load = (name = "llama-tiny") => loadCausalLM(path.join(FIXTURES, name));

const IDS = fromArray(Int32Array.from([5, 17, 200, 31, 9, 77, 12, 4, 300, 301, 302, 1, 2, 3, 4, 5]), [2, 8]);
const logitsOf = (m: CausalLM) => Array.from(noGrad(() => m.forward({ inputIds: IDS }).logits).hostData());

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Give every lora_B random values so the adapters act. */
function randomizeB(lora: LoraModel, seed = 1): void {
  const rng = new Rng(seed);
  for (const a of lora.adapters) {
    const w = new Float32Array(a.loraB.weight.size);
    rng.fillNormal(w, 0, 0.05);
    a.loraB.weight.copyFrom(w);
  }
}

/** A few AdamW steps of next-token cross-entropy on the trainable parameters. */
function train(lora: LoraModel<CausalLM>, steps: number): number[] {
  const opt = new AdamW(lora.trainableParameters(), { lr: 1e-2, weightDecay: 0.01 });
  const inputs = fromArray(IDS.hostData().slice(0, 14) as Int32Array, [2, 7]);
  const labels = fromArray(Int32Array.from([17, 200, 31, 9, 77, 12, 4, 300, 301, 302, 1, 2, 3, 4]), [2, 7]);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const loss = crossEntropy(lora.base.forward({ inputIds: inputs }).logits, labels);
    losses.push(loss.item());
    backward(loss);
    opt.step();
    opt.zeroGrad();
  }
  return losses;
}

describe("LoRA on a CausalLM", () => {
  test("a fresh adapter (B = 0) leaves every logit unchanged; only adapters are trainable", async () => {
    const m = await load();
    const before = logitsOf(m);
    const lora = applyLora(m, { r: 4, loraAlpha: 8, targetModules: ["q_proj", "v_proj"] });
    assert.deepEqual(logitsOf(m), before);
    assert.equal(lora.adapters.length, 2 * m.config.numHiddenLayers);
    const trainable = lora.trainableParameters();
    assert.equal(trainable.length, 2 * lora.adapters.length);
    assert.ok(m.parameters().every((p) => !p.requiresGrad));
    assert.deepEqual(lora.adapters.at(0).loraA.weight.shape, [4, 64]);
    assert.deepEqual(lora.adapters.at(1).loraB.weight.shape, [32, 4]); // v_proj: Hkv * Dh = 2 * 16
  });

  test("the wrapped Linear computes W x + b + (alpha / r) B A x", () => {
    class Toy extends Module {
      readonly proj: Linear;
      constructor() {
        super();
        this.proj = this.registerModule("proj", new Linear(6, 5, { rng: new Rng(2), bias: true, std: 0.3 }));
      }
    }
    const toy = new Toy();
    toy.proj.bias?.copyFrom([0.1, -0.2, 0.3, 0, 0.5]);
    const lora = applyLora(toy, { r: 3, loraAlpha: 12, targetModules: ["proj"] }, { seed: 4 });
    randomizeB(lora);
    const a = lora.adapters.at(0);
    // PEFT's A init: uniform in +-1/sqrt(in)
    assert.ok(a.loraA.weight.hostData().every((v) => Math.abs(v) <= 1 / Math.sqrt(6)));
    const x = fromArray(
      Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
      [2, 6],
    );
    const y = noGrad(() => toy.proj.forward(x));
    const W = toy.proj.weight.hostData();
    const A = a.loraA.weight.hostData();
    const B = a.loraB.weight.hostData();
    for (let n = 0; n < 2; n++) {
      for (let o = 0; o < 5; o++) {
        let base = (toy.proj.bias as Tensor).hostData()[o];
        for (let i = 0; i < 6; i++) base += W[o * 6 + i] * x.hostData()[n * 6 + i];
        let delta = 0;
        for (let k = 0; k < 3; k++) {
          let ax = 0;
          for (let i = 0; i < 6; i++) ax += A[k * 6 + i] * x.hostData()[n * 6 + i];
          delta += B[o * 3 + k] * ax;
        }
        assert.ok(Math.abs(y.hostData()[n * 5 + o] - (base + (12 / 3) * delta)) < 1e-6);
      }
    }
  });

  test("training moves only the adapters: base weights stay bitwise unchanged; disabling gives the base logits", async () => {
    const m = await load("qwen2-tiny");
    const base = logitsOf(m);
    const snapshot = new Map([...m.namedParameters()].map(([k, t]) => [k, Buffer.from(t.hostData().slice().buffer)]));
    const lora = applyLora(m, {
      r: 4,
      loraAlpha: 16,
      loraDropout: 0.1,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"],
    });
    const adapterBefore = lora.trainableParameters().map((p) => p.hostData().slice());
    const losses = train(lora, 5);
    assert.ok(losses[4] < losses[0], `loss went ${losses[0]} -> ${losses[4]}`);
    for (const [k, t] of m.namedParameters()) {
      assert.ok(Buffer.from(t.hostData().slice().buffer).equals(snapshot.get(k) as Buffer), `base parameter ${k} changed`);
      assert.equal(t.grad, null, `base parameter ${k} got a gradient`);
    }
    lora.trainableParameters().forEach((p, i) => {
      assert.ok(maxDiff(p.hostData(), adapterBefore[i]) > 0, `adapter tensor ${i} did not move`);
    });
    m.eval();
    const tuned = logitsOf(m);
    assert.ok(maxDiff(tuned, base) > 1e-3);
    assert.deepEqual(
      withAdaptersDisabled(lora, () => logitsOf(m)),
      base,
    );
    assert.deepEqual(logitsOf(m), tuned); // re-enabled afterwards
  });

  test("PEFT save → load into a fresh base gives identical logits; file layout and key names", async () => {
    const m = await load();
    const lora = applyLora(m, { r: 4, loraAlpha: 8, targetModules: ["q_proj", "v_proj"], baseModelNameOrPath: "llama-tiny" });
    randomizeB(lora);
    const want = logitsOf(m);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-lora-"));
    saveLoraAdapter(lora, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG_NAME), "utf-8"));
    assert.equal(cfg.peft_type, "LORA");
    assert.equal(cfg.task_type, "CAUSAL_LM");
    assert.equal(cfg.bias, "none");
    assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.lora_dropout], [4, 8, 0]);
    assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
    assert.equal(cfg.base_model_name_or_path, "llama-tiny");
    const keys = [...readSafetensorsHeader(path.join(dir, ADAPTER_WEIGHTS_NAME)).tensors.keys()].sort();
    assert.equal(keys.length, 8);
    assert.ok(keys.includes("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert.ok(keys.includes("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
    const fresh = await load();
    loadLoraAdapter(fresh, dir);
    assert.deepEqual(logitsOf(fresh), want);
    fs.rmSync(dir, { recursive: true });
  });

  test(`merging folds B A into W: the same logits as unmerged within ${MERGE_TOL}`, async () => {
    const m = await load("qwen2-tiny");
    const lora = applyLora(m, { r: 8, loraAlpha: 16, targetModules: ["q_proj", "v_proj", "down_proj"] });
    randomizeB(lora, 7);
    const unmerged = logitsOf(m);
    const merged = mergeLora(lora);
    assert.equal(merged, m);
    const after = logitsOf(m);
    const d = maxDiff(after, unmerged);
    assert.ok(d < MERGE_TOL, `merged vs unmerged max abs diff ${d}`);
    assert.ok(maxDiff(after, logitsOf(m)) === 0);
    assert.throws(() => mergeLora(lora), /already merged/);
    // the Linears are plain again: a new adapter can be applied
    applyLora(m, { targetModules: ["q_proj"] });
  });

  test("dropout is seeded, acts in training mode only", async () => {
    const run = async (seed: number, train: boolean) => {
      const m = await load();
      const lora = applyLora(m, { r: 4, loraAlpha: 8, loraDropout: 0.5 }, { seed });
      randomizeB(lora);
      m.train(train);
      return [logitsOf(m), logitsOf(m)];
    };
    const [a1, a2] = await run(3, true);
    const [b1] = await run(3, true);
    assert.notDeepEqual(a1, a2); // a new mask each call
    assert.deepEqual(a1, b1); // same seed, same masks
    const [e1, e2] = await run(3, false);
    assert.deepEqual(e1, e2);
    const m = await load();
    const lora = applyLora(m, { r: 4, loraAlpha: 8, loraDropout: 0 }, { seed: 3 });
    randomizeB(lora);
    assert.deepEqual(logitsOf(m), e1); // eval mode = no dropout
  });

  test("target matching follows PEFT; bad targets are errors", async () => {
    assert.ok(matchesTarget("model.layers.0.self_attn.q_proj", ["q_proj"]));
    assert.ok(!matchesTarget("model.layers.0.self_attn.xq_proj", ["q_proj"]));
    assert.ok(matchesTarget("model.layers.1.mlp.up_proj", ".*\\.1\\.mlp\\.(up|down)_proj"));
    assert.ok(!matchesTarget("model.layers.1.mlp.gate_proj", ".*\\.1\\.mlp\\.(up|down)_proj"));
    const m = await load();
    const lora = applyLora(m, { targetModules: ".*layers\\.1\\.mlp\\.(up|down)_proj" });
    assert.deepEqual(
      lora.adapters.items.map((a) => a.path),
      ["model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"],
    );
    assert.throws(() => applyLora(m, { targetModules: ["up_proj"] }), /already carries an adapter/);
    const fresh = await load();
    assert.throws(() => applyLora(fresh, { targetModules: ["nope"] }), /match no module/);
    assert.throws(() => applyLora(fresh, { targetModules: ["lm_head"] }), /LM head/);
    assert.throws(() => applyLora(fresh, { targetModules: ["self_attn"] }), /only Linear/);
    assert.throws(() => applyLora(fresh, { rank: 4 } as never), /unknown config key "rank"/);
    assert.ok(lora instanceof LoraModel);
  });
});
