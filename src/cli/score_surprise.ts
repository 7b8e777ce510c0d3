// `nexus score surprise`: per-step Titans surprise of solutions under a frozen model (a fresh neural memory run
// over its hidden states, src/rewards/surprise.ts). With --calibration (rows carrying gold step `labels`) the
// surprise is calibrated (Platt or isotonic) into P(step wrong) and each solution gets score = 1 − max P(wrong);
// the calibration file's AUROC is printed.

import type { Command } from "commander";
import { z } from "zod";
import { writeJsonl } from "../data/jsonl.js";
import { calibrateSurprise } from "../eval/surprise.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { NeuralMemory, resolveNeuralMemoryConfig } from "../models/titans.js";
import { Rng } from "../nn/rng.js";
import { type LabelledSolution, SurpriseReader } from "../rewards/surprise.js";
import { cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { readScoreRows, SCORE_FIELDS, ScoreCliError } from "./score_rows.js";
import { SHARED } from "./shared_options.js";

function labelledRows(file: string, separator: string): LabelledSolution[] {
  return readScoreRows(file, separator).flatMap((x, i) => {
    const labels = x.row.labels;
    if (x.many || !Array.isArray(labels) || labels.length !== x.solutions[0]!.length) {
      throw new ScoreCliError(`[score surprise] ${file}:${i + 1}: needs {prompt, completions, labels} with one boolean label per step`);
    }
    return [{ prompt: x.row.prompt as string, steps: x.solutions[0]!, correct: labels.map(Boolean) }];
  });
}

export function registerSurpriseScore(score: Command): void {
  registerSchemaCommand(score, {
    name: "surprise",
    description: "Titans memory surprise per step (calibrated into P(step wrong) with --calibration)",
    schema: z
      .object({
        ...SCORE_FIELDS,
        model: SHARED.model.describe("folder of the frozen causal LM whose hidden states the memory reads"),
        calibration: z.string().nullable().default(null).describe("JSONL rows {prompt, completions, labels} used to fit P(step wrong)"),
        method: z.enum(["platt", "isotonic"]).default("platt").describe("calibration method"),
        signal: z
          .enum(["loss", "gradNorm"])
          .default("loss")
          .describe("per-token surprise: associative loss before the update, or its gradient norm"),
        tokenAggregation: z.enum(["max", "mean"]).default("max").describe("how a step's token surprises make the step's"),
        seed: SHARED.seed.describe("seed of the memory's initial weights"),
      })
      .strict(),
    action: async (o) => {
      const model = await loadCausalLM(o.model);
      const tok = loadTokenizer(o.tokenizer ?? o.model);
      const memory = new NeuralMemory(resolveNeuralMemoryConfig({ dim: model.config.hiddenSize }), { rng: new Rng(o.seed) });
      const reader = new SurpriseReader(model, tok, memory, {
        signal: o.signal,
        aggregation: o.tokenAggregation,
        stepSeparator: o.stepSeparator,
      });
      const cal = o.calibration !== null ? calibrateSurprise(reader, labelledRows(o.calibration, o.stepSeparator), o.method) : null;
      if (cal) cliOut(`${JSON.stringify({ calibrationSteps: cal.steps, calibrationAuroc: cal.auroc })}\n`);
      const scoreOne = (prompt: string, steps: string[]) => {
        const surprise = reader.read(prompt, steps).steps;
        if (cal === null) return { surprise };
        const pWrong = surprise.map((s) => cal.calibrator.predict(s));
        return { surprise, p_wrong: pWrong, score: pWrong.length === 0 ? 0 : 1 - Math.max(...pWrong) };
      };
      const rows = readScoreRows(o.data, o.stepSeparator).map((x) => {
        const res = x.solutions.map((steps) => scoreOne(x.row.prompt as string, steps));
        return x.many ? { ...x.row, results: res } : { ...x.row, ...res[0] };
      });
      writeJsonl(o.output, rows);
    },
  });
}
