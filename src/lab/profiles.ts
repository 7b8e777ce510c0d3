// Lab profiles: every size, step count and sampling setting of the pipeline in one frozen table per
// profile, so a run is described by (profile, seed). `quick` fits ~10 minutes on 2 CPU cores; `full` is the
// same task with a larger model (1.7x the parameters), 4x the labelled samples and 2x the held-out problems, about
// 20 minutes a seed (`--seeds 0,1,2` in about an hour); `tiny` only exercises the plumbing (tests).

import type { ArithmeticConfig } from "../data/tasks/arithmetic.js";

export interface LabProfile {
  name: string;
  /** The synthetic task's difficulty knob. */
  task: Partial<ArithmeticConfig>;
  /** Problems per split; SFT solutions carry controlled errors at `sftNoiseRate`. */
  data: { trainProblems: number; evalProblems: number; testProblems: number; sftNoiseRate: number };
  /** Decoder shape (Llama layout, tied embeddings). */
  model: { hiddenSize: number; layers: number; heads: number; intermediateSize: number };
  sft: { steps: number; batchSize: number; learningRate: number };
  /** The local step-checking judge (stages/judge.ts): the SFT policy's weights fine-tuned on `examples` training problems' check transcripts. */
  judge: { examples: number; steps: number; batchSize: number; learningRate: number };
  /** Policy samples for labelling and reward-model training. */
  sample: { prompts: number; perPrompt: number; temperature: number; maxNewTokens: number };
  /** Monte Carlo labels: completions per step prefix. */
  mc: { rollouts: number };
  /** Reward models (ORM and every PRM) share these. */
  rm: { steps: number; batchSize: number; learningRate: number };
  dpo: { steps: number; batchSize: number; learningRate: number; beta: number };
  rl: { steps: number; promptsPerStep: number; numGenerations: number; learningRate: number; temperature: number; beta: number };
  /** Held-out evaluation: pass@1 (mean accuracy of k samples at `temperature`), maj@k over the same samples, greedy accuracy. */
  eval: { problems: number; majK: number; temperature: number };
  /** Best-of-N and voting at every budget N (one shared sample set per N); beam search and MCTS up to maxTreeBudget. */
  search: { problems: number; budgets: readonly number[]; beamWidth: number; maxTreeBudget: number };
}

export const LAB_PROFILES: Readonly<Record<"tiny" | "quick" | "full", LabProfile>> = Object.freeze({
  // every stage in well under a minute: for tests of the pipeline's plumbing (determinism, resume, report)
  tiny: Object.freeze({
    name: "tiny",
    task: { minSteps: 2, maxSteps: 2, operandDigits: 1, mulDigits: 1, maxValue: 100 },
    data: { trainProblems: 200, evalProblems: 8, testProblems: 8, sftNoiseRate: 0.25 },
    model: { hiddenSize: 32, layers: 1, heads: 2, intermediateSize: 64 },
    sft: { steps: 20, batchSize: 16, learningRate: 5e-3 },
    judge: { examples: 64, steps: 4, batchSize: 8, learningRate: 5e-3 },
    sample: { prompts: 8, perPrompt: 2, temperature: 1.0, maxNewTokens: 40 },
    mc: { rollouts: 2 },
    rm: { steps: 4, batchSize: 8, learningRate: 1e-3 },
    dpo: { steps: 2, batchSize: 4, learningRate: 1e-4, beta: 0.1 },
    rl: { steps: 2, promptsPerStep: 2, numGenerations: 4, learningRate: 1e-4, temperature: 1.0, beta: 0.0 },
    eval: { problems: 8, majK: 4, temperature: 0.7 },
    search: { problems: 4, budgets: [1, 4], beamWidth: 2, maxTreeBudget: 1 },
  }),
  quick: Object.freeze({
    name: "quick",
    task: { minSteps: 2, maxSteps: 2, operandDigits: 1, mulDigits: 1, maxValue: 100 },
    data: { trainProblems: 3000, evalProblems: 64, testProblems: 128, sftNoiseRate: 0.25 },
    model: { hiddenSize: 96, layers: 3, heads: 4, intermediateSize: 256 },
    sft: { steps: 1200, batchSize: 32, learningRate: 5e-3 },
    judge: { examples: 3000, steps: 150, batchSize: 16, learningRate: 3e-3 },
    sample: { prompts: 128, perPrompt: 4, temperature: 1.0, maxNewTokens: 48 },
    mc: { rollouts: 4 },
    rm: { steps: 200, batchSize: 16, learningRate: 1e-3 },
    dpo: { steps: 60, batchSize: 8, learningRate: 2e-5, beta: 0.1 },
    rl: { steps: 160, promptsPerStep: 8, numGenerations: 8, learningRate: 1e-4, temperature: 1.0, beta: 0.0 },
    eval: { problems: 128, majK: 8, temperature: 1.0 },
    search: { problems: 48, budgets: [1, 4, 16, 64], beamWidth: 4, maxTreeBudget: 16 },
  }),
  full: Object.freeze({
    name: "full",
    task: { minSteps: 2, maxSteps: 2, operandDigits: 1, mulDigits: 1, maxValue: 100 },
    data: { trainProblems: 3000, evalProblems: 128, testProblems: 256, sftNoiseRate: 0.25 },
    model: { hiddenSize: 128, layers: 3, heads: 4, intermediateSize: 320 },
    sft: { steps: 1500, batchSize: 32, learningRate: 5e-3 },
    judge: { examples: 3000, steps: 200, batchSize: 16, learningRate: 3e-3 },
    sample: { prompts: 512, perPrompt: 4, temperature: 1.0, maxNewTokens: 48 },
    mc: { rollouts: 4 },
    rm: { steps: 300, batchSize: 16, learningRate: 1e-3 },
    dpo: { steps: 100, batchSize: 8, learningRate: 2e-5, beta: 0.1 },
    rl: { steps: 160, promptsPerStep: 8, numGenerations: 8, learningRate: 1e-4, temperature: 1.0, beta: 0.0 },
    eval: { problems: 256, majK: 8, temperature: 1.0 },
    search: { problems: 96, budgets: [1, 4, 16, 64], beamWidth: 4, maxTreeBudget: 16 },
  }),
});

export type LabProfileName = keyof typeof LAB_PROFILES;
