// Child of the `contention` part: W1 training steps (bench/w1.ts's model, data and optimizer; optionally a
// smaller batch) at the OMP_NUM_THREADS it was started with, optionally while another process keeps one core
// busy; prints {"steps": [seconds...]} on its last stdout line.
// Usage: node --import tsx contention_child.ts <steps> <batch> <seq> <busy 0|1>

import { withCoreBusy } from "../bench/contention.js";
import { W1_OPTIM, w1Batch, w1Config } from "../bench/w1.js";
import { createCausalLM } from "../src/models/causal_lm.js";
import { AdamW } from "../src/nn/optim.js";
import { backward, crossEntropy } from "../src/tensor/index.js";

const [steps, b, t, busy] = process.argv.slice(2).map(Number);
const model = createCausalLM(w1Config(), { seed: 0 });
const opt = new AdamW(model.parameters(), W1_OPTIM);
const { inputIds, labels } = w1Batch(b, t);
const step = (): number => {
  const t0 = performance.now();
  const loss = crossEntropy(model.forward({ inputIds }).logits, labels);
  backward(loss);
  opt.step();
  opt.zeroGrad();
  return (performance.now() - t0) / 1000;
};
step(); // warm up (first calls allocate and start the worker threads)
const run = () => Array.from({ length: steps }, step);
const times = busy === 1 ? await withCoreBusy(run) : run();
process.stdout.write(`${JSON.stringify({ steps: times })}\n`);
