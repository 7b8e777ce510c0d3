// `nexus score surprise`: per-step Titans surprise of solutions under a frozen model (a fresh neural memory run
// over its hidden states, src/rewards/surprise.ts). With --calibration (rows carrying gold step `labels`) the
// surprise is calibrated (Platt or isotonic) into P(step wrong) and each solution gets score = 1 − max P(wrong);
// the calibration file's AUROC is printed. Registered through score.ts's extension hook.

import { writeJsonl } from "../data/jsonl.js";
import { calibrateSurprise } from "../eval/surprise.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../models/titans.js";
import { Rng } from "../nn/rng.js";
import { type CalibrationMethod, type LabelledSolution, SurpriseReader } from "../rewards/surprise.js";
import { readScoreRows, registerScoreSubcommand, ScoreCliError } from "./score.js";

interface SurpriseCliOpts {
  model: string;
  data: string;
  output: string;
  tokenizer?: string;
  calibration?: string;
  method: string;
  signal: string;
  aggregation: string;
  seed: string;
  stepSeparator: string;
}

let registered = false;

function labelledRows(file: string, separator: string): LabelledSolution[] {
  return readScoreRows(file, separator).flatMap((x, i) => {
    const labels = x.row.labels;
    if (x.many || !Array.isArray(labels) || labels.length !== x.solutions[0]!.length) {
      throw new ScoreCliError(`[score surprise] ${file} row ${i + 1}: needs {prompt, steps, labels} with one boolean label per step`);
    }
    return [{ prompt: x.row.prompt as string, steps: x.solutions[0]!, correct: labels.map(Boolean) }];
  });
}

export function registerSurpriseScore(): void {
  if (registered) return;
  registered = true;
  registerScoreSubcommand("surprise", "Titans memory surprise per step (calibrated into P(step wrong) with --calibration)", (cmd) => {
    cmd
      .requiredOption("--model <dir>", "frozen causal LM whose hidden states the memory reads")
      .requiredOption("--data <file>", "JSONL rows {prompt, steps[]} or {prompt, completions[]}")
      .requiredOption("--output <file>", "JSONL output: the input rows plus per-step surprise (and scores when calibrated)")
      .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
      .option("--calibration <file>", "JSONL rows {prompt, steps, labels} used to fit P(step wrong)")
      .option("--method <m>", "calibration: platt or isotonic", "platt")
      .option("--signal <s>", "per-token surprise: loss (associative loss before the update) or gradNorm", "loss")
      .option("--aggregation <a>", "per-step: max or mean over the step's tokens", "max")
      .option("--seed <n>", "seed of the memory's initial weights", "0")
      .option("--step-separator <s>", "step separator", "\n")
      .action(async (o: SurpriseCliOpts) => {
        if (o.method !== "platt" && o.method !== "isotonic")
          throw new ScoreCliError(`[score surprise] --method must be platt or isotonic, got '${o.method}'`);
        if (o.signal !== "loss" && o.signal !== "gradNorm")
          throw new ScoreCliError(`[score surprise] --signal must be loss or gradNorm, got '${o.signal}'`);
        if (o.aggregation !== "max" && o.aggregation !== "mean")
          throw new ScoreCliError(`[score surprise] --aggregation must be max or mean`);
        const model = await loadCausalLM(o.model);
        const tok = loadTokenizer(o.tokenizer ?? o.model);
        const memory = new NeuralMemory(resolveNeuralMemoryConfig({ dim: model.config.hiddenSize }), { rng: new Rng(Number(o.seed)) });
        const reader = new SurpriseReader(model, tok, memory, {
          signal: o.signal,
          aggregation: o.aggregation,
          stepSeparator: o.stepSeparator,
        });
        const cal = o.calibration
          ? calibrateSurprise(reader, labelledRows(o.calibration, o.stepSeparator), o.method as CalibrationMethod)
          : null;
        if (cal) process.stdout.write(`${JSON.stringify({ calibrationSteps: cal.steps, calibrationAuroc: cal.auroc })}\n`);
        const score = (prompt: string, steps: string[]) => {
          const surprise = reader.read(prompt, steps).steps;
          if (cal === null) return { surprise };
          const pWrong = surprise.map((s) => cal.calibrator.predict(s));
          return { surprise, p_wrong: pWrong, score: pWrong.length === 0 ? 0 : 1 - Math.max(...pWrong) };
        };
        const rows = readScoreRows(o.data, o.stepSeparator).map((x) => {
          const res = x.solutions.map((steps) => score(x.row.prompt as string, steps));
          return x.many ? { ...x.row, results: res } : { ...x.row, ...res[0] };
        });
        writeJsonl(o.output, rows);
      });
  });
}
