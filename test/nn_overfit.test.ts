// End-to-end training invariant: a tiny Llama-style CausalLM built in code (vocab 32, D 32, 2 layers,
// 4 heads / 2 KV heads) overfits one padded batch with AdamW + warmup-cosine + gradient clipping, on every
// available backend, and the backends' losses agree to 1e-4 at every step.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setBackend } from "../src/backend/index.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { createCausalLM } from "../src/models/index.js";
import { AdamW, clipGradNorm, createSchedule, Rng } from "../src/nn/index.js";
import { crossEntropy, fromArray, slice, type Tensor } from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";

const CONFIG = parseHfConfig({
  model_type: "llama",
  vocab_size: 32,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
});
const STEPS = 30;
const B = 4;
const T = 16;
/** Uniform guessing costs ln 32 ≈ 3.47; memorising the batch must get far below it. */
const FINAL_LOSS_BELOW = 0.5;

function batch(): { ids: Tensor; mask: Tensor; targets: Tensor } {
  const rng = new Rng(1234);
  const ids = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  const pad = [0, 5, 0, 3]; // rows 1 and 3 are left-padded
  for (let r = 0; r < B; r++) {
    for (let j = 0; j < T; j++) {
      const real = j >= pad[r];
      ids[r * T + j] = real ? rng.int(32) : 0;
      mask[r * T + j] = real ? 1 : 0;
    }
  }
  // next-token targets for positions 0..T-2, -100 where the target is padding
  const targets = new Int32Array(B * (T - 1));
  for (let r = 0; r < B; r++) {
    for (let j = 0; j < T - 1; j++) targets[r * (T - 1) + j] = mask[r * T + j + 1] ? ids[r * T + j + 1] : -100;
  }
  return { ids: fromArray(ids, [B, T]), mask: fromArray(mask, [B, T]), targets: fromArray(targets, [B, T - 1]) };
}

function train(): number[] {
  const model = createCausalLM(CONFIG, { seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  const sched = createSchedule({ type: "cosine", baseLr: 1e-2, warmupSteps: 3, totalSteps: STEPS });
  const { ids, mask, targets } = batch();
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const { logits } = model.forward({ inputIds: ids, attentionMask: mask });
    const loss = crossEntropy(slice(logits, 1, 0, T - 1), targets); // (B, T, V) -> (B, T-1, V)
    losses.push(loss.item());
    opt.zeroGrad();
    loss.backward();
    clipGradNorm(model.parameters(), 1.0);
    opt.lr = sched.lrAt(step + 1); // warmup from step 1 so the first update is not lr 0
    opt.step();
  }
  return losses;
}

describe("overfitting one batch", () => {
  const curves = new Map<string, number[]>();
  for (const backend of testBackends()) {
    test(`tiny Llama overfits on '${backend}'`, (t) => {
      setBackend(backend);
      const losses = train();
      curves.set(backend, losses);
      t.diagnostic(`${backend}: loss ${losses[0].toFixed(4)} -> ${losses[STEPS - 1].toFixed(4)}`);
      assert.ok(Math.abs(losses[0] - Math.log(32)) < 0.1, `initial loss ${losses[0]} should be near ln 32`);
      assert.ok(losses[STEPS - 1] < FINAL_LOSS_BELOW, `final loss ${losses[STEPS - 1]} is not below ${FINAL_LOSS_BELOW}`);
      for (let i = 5; i < STEPS; i += 5) assert.ok(losses[i] < losses[i - 5], `loss rose between steps ${i - 5} and ${i}`);
    });
  }

  test("every backend gives the same loss at every step (1e-4)", (t) => {
    const ref = curves.get("ref");
    if (ref === undefined) return t.skip("the ref run did not finish");
    for (const [backend, losses] of curves) {
      let worst = 0;
      losses.forEach((l, i) => {
        worst = Math.max(worst, Math.abs(l - ref[i]));
      });
      t.diagnostic(`${backend} vs ref: max |loss diff| ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-4, `${backend} differs from ref by ${worst}`);
    }
  });
});
