// Stage 1: SFT a small model from scratch on solutions with controlled noise (a fraction of the SFT targets
// carry one arithmetic slip, wrong operand, skipped step or wrong final answer), so the policy makes mistakes
// worth fixing. Saves the model and reports held-out pass@1 / maj@k.

import { join } from "node:path";
import { arithmeticPrompt, NOISE_KINDS, type NoiseKind, sampleSolution } from "../../data/tasks/arithmetic.js";
import { Mulberry32 } from "../../data/tasks/rng.js";
import { trainSft } from "../../train/sft.js";
import { evaluatePolicy, newPolicy, problemsOf, round4 } from "../common.js";
import type { Stage } from "../runner.js";

export const sftStage: Stage = {
  name: "sft",
  title: "SFT from scratch on noisy solutions",
  async run(ctx) {
    const { profile, seed, tokenizer: tok } = ctx;
    const train = problemsOf(profile, "train", seed);
    const rng = new Mulberry32(seed + 11);
    let flawed = 0;
    const rows = train.map((p) => {
      const s = sampleSolution(p, rng, { rate: profile.data.sftNoiseRate, kinds: NOISE_KINDS as readonly NoiseKind[] });
      if (s.kind !== null) flawed++;
      return { prompt: arithmeticPrompt(p), completion: s.text };
    });
    const model = newPolicy(profile, tok, seed);
    const dir = ctx.stageDir("sft");
    const res = await trainSft({
      model,
      tokenizer: tok,
      data: rows,
      config: {
        learningRate: profile.sft.learningRate,
        maxSteps: profile.sft.steps,
        perDeviceTrainBatchSize: profile.sft.batchSize,
        warmupSteps: Math.ceil(profile.sft.steps / 20),
        lrSchedulerType: "cosine",
        loggingSteps: Math.max(1, Math.floor(profile.sft.steps / 40)),
        seed,
      },
      outputDir: join(dir, "model"),
      overwrite: true, // an unfinished stage restarts from scratch (the lab resumes by stage)
      quiet: ctx.quiet,
    });
    const test = problemsOf(profile, "test", seed);
    const ev = evaluatePolicy(model, tok, profile, test, seed + 101);
    const curve = res.run.history.filter((h) => typeof h.loss === "number").map((h) => [h.step as number, round4(h.loss as number)]);
    return {
      trainRows: rows.length,
      flawedFraction: round4(flawed / rows.length),
      parameters: model.numParameters(),
      ...ev,
      lossCurve: curve,
    };
  },
};
