// The search stage's Titans detector: surprise as Behrouz et al. 2501.00663 define it (the gradient norm of the
// associative-memory loss, with momentum and forgetting gates), with the memory's projections and gates learned
// (outer loop) on CORRECT training solutions, so that a wrong step is what the memory did not expect. Its AUROC
// against the exact step labels is measured overall and within each step position (wrong steps sit late in a
// solution, since everything after the first error is wrong, so position alone beats chance), next to a
// baseline that sees only the step's position and line type (equation or answer line). The memory reads the raw
// hidden states: it RMS-normalises them itself and bounds its inner step (NeuralMemory inputNorm, boundedStep),
// without which its loss went NaN within ~100 tokens here and the claim was not measured.

import { readJsonl } from "../../data/jsonl.js";
import { auroc } from "../../eval/calibration.js";
import { stratifiedAuroc } from "../../eval/logistic.js";
import type { CausalLM } from "../../models/causal_lm.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../../models/titans.js";
import { AdamW } from "../../nn/optim.js";
import { Rng } from "../../nn/rng.js";
import { SurpriseReader } from "../../rewards/surprise.js";
import { noGrad, tensor } from "../../tensor/index.js";
import { round4, type Sampled } from "../common.js";
import type { LabContext } from "../runner.js";
import { type LabelledSample, labelledPath } from "./labels.js";

const CHUNK = 16;

/** The feature the baseline sees: position and whether the line states the answer. */
const cell = (position: number, step: string) => `${position}:${step.startsWith("The answer is") ? "answer" : "equation"}`;

export async function titansSurprise(ctx: LabContext, policy: CausalLM, held: { validation: Sampled[]; test: Sampled[] }) {
  const { seed, tokenizer: tok } = ctx;
  const memory = new NeuralMemory(resolveNeuralMemoryConfig({ dim: policy.config.hiddenSize, chunkSize: CHUNK }), {
    rng: new Rng(seed + 701),
  });
  // outer loop: minimise the memory's own pre-update loss on correct solutions. W_V stays fixed (training it could
  // shrink the values to a constant and the loss to 0); keys, queries, gates and the initial memory learn.
  const correct = (readJsonl(labelledPath(ctx)) as unknown as LabelledSample[]).filter((s) => s.correct);
  const params = [...memory.namedParameters()].filter(([n]) => !n.startsWith("w_v.")).map(([, t]) => t);
  for (const [n, t] of memory.namedParameters()) if (n.startsWith("w_v.")) t.requiresGrad = false;
  const opt = new AdamW(params, { lr: 3e-3, weightDecay: 0 });
  const steps = Math.min(60, ctx.profile.rm.steps, correct.length);
  const perStep = 4;
  const rng = new Rng(seed + 702);
  const losses: [number, number][] = [];
  for (let s = 0; s < steps && correct.length > 0; s++) {
    opt.zeroGrad();
    let total = 0;
    for (let j = 0; j < perStep; j++) {
      const x = correct[Math.floor(rng.next() * correct.length)]!;
      const ids = tok.encode(x.prompt + x.steps.map((l) => `${l}\n`).join(""), { addSpecialTokens: false });
      const hidden = noGrad(() => policy.forwardHidden({ inputIds: tensor(ids, { dtype: "i32", shape: [1, ids.length] }) }));
      const run = memory.forward(hidden.dtype === "f32" ? hidden : hidden.cast("f32"));
      const loss = run.loss.mean().div(perStep);
      loss.backward();
      total += loss.item();
    }
    opt.step();
    if (s === 0 || s === steps - 1 || (s + 1) % 10 === 0) losses.push([s + 1, round4(total)]);
  }
  const reader = new SurpriseReader(policy, tok, memory, { signal: "gradNorm", aggregation: "max", chunkSize: CHUNK });
  // baseline: wrong rate of each (position, line type) cell on validation solutions, applied to test steps
  const rate = new Map<string, { wrong: number; n: number }>();
  for (const x of held.validation)
    x.steps.forEach((st, i) => {
      const k = cell(i, st);
      const r = rate.get(k) ?? { wrong: 0, n: 0 };
      r.wrong += x.goldLabels[i] ? 0 : 1;
      r.n++;
      rate.set(k, r);
    });
  const prior =
    held.validation.flatMap((x) => x.goldLabels).filter((c) => !c).length /
    Math.max(1, held.validation.flatMap((x) => x.goldLabels).length);
  const surprise: number[] = [];
  const baseline: number[] = [];
  const wrong: number[] = [];
  const position: number[] = [];
  const solution: number[] = [];
  held.test.forEach((x, si) => {
    const read = reader.read(x.prompt, x.steps).steps;
    x.steps.forEach((st, i) => {
      const r = rate.get(cell(i, st));
      surprise.push(round4(read[i]!));
      baseline.push(round4(r === undefined ? prior : (r.wrong + prior) / (r.n + 1)));
      wrong.push(x.goldLabels[i] ? 0 : 1);
      position.push(i);
      solution.push(si);
    });
  });
  const w = wrong.map((v) => v === 1);
  const pos = position.map(String);
  return {
    auroc: round4(auroc(surprise, w)),
    withinPosition: round4(stratifiedAuroc(surprise, w, pos).auroc),
    baselineWithinPosition: round4(stratifiedAuroc(baseline, w, pos).auroc),
    training: { correctSolutions: correct.length, steps, lossCurve: losses },
    perStep: { surprise, baseline, wrong, position, solution },
  };
}
