// `nexus score orm | prm | verifier | surprise`: score solutions in a JSONL file with a trained ORM, PRM,
// generative verifier or Titans surprise (rows: score_rows.ts). Each output row is the input plus scores.
// Not here: training, search, the verifier and surprise subcommands' own options (score_verifier.ts,
// score_surprise.ts).

import type { Command } from "commander";
import { z } from "zod";
import { writeJsonl } from "../data/jsonl.js";
import { STEP_AGGREGATIONS } from "../rewards/interfaces.js";
import { loadOrmScorer, loadPrmScorer, type ScoredRow } from "../rewards/scoring.js";
import { registerSchemaCommand } from "./schema_command.js";
import { readScoreRows, SCORE_FIELDS, type ScoreInput } from "./score_rows.js";
import { registerSurpriseScore } from "./score_surprise.js";
import { registerVerifierScore } from "./score_verifier.js";
import { SHARED } from "./shared_options.js";

export { readScoreRows, SCORE_FIELDS, ScoreCliError, type ScoreInput } from "./score_rows.js";

function flatten(inputs: readonly ScoreInput[]): ScoredRow[] {
  return inputs.flatMap((x) => x.solutions.map((steps) => ({ prompt: x.row.prompt as string, steps })));
}

export function registerScore(program: Command): void {
  const score = program.command("score").description("score solutions with a reward model: orm | prm | verifier | surprise");

  registerSchemaCommand(score, {
    name: "orm",
    description: "outcome reward model (a *ForSequenceClassification folder): one score per solution",
    schema: z
      .object({
        ...SCORE_FIELDS,
        model: SHARED.model.describe("reward model folder (*ForSequenceClassification, num_labels 1)"),
        batchSize: SHARED.batchSize,
        sigmoid: z.boolean().default(false).describe("map rewards through a sigmoid to (0, 1)"),
      })
      .strict(),
    action: async (o) => {
      const scorer = loadOrmScorer(o.model, {
        tokenizer: o.tokenizer ?? undefined,
        batchSize: o.batchSize,
        sigmoid: o.sigmoid,
        stepSeparator: o.stepSeparator,
      });
      const inputs = readScoreRows(o.data, o.stepSeparator);
      const flat = await scorer.scoreBatch(flatten(inputs));
      let k = 0;
      writeJsonl(
        o.output,
        inputs.map((x) => {
          const s = x.solutions.map(() => flat[k++]);
          return x.many ? { ...x.row, scores: s } : { ...x.row, score: s[0] };
        }),
      );
    },
  });

  registerSchemaCommand(score, {
    name: "prm",
    description: "process reward model (a *ForTokenClassification folder): per-step P(correct) and an aggregated score",
    schema: z
      .object({
        ...SCORE_FIELDS,
        model: SHARED.model.describe("PRM folder (*ForTokenClassification, num_labels 2); steps are tagged with its training separator"),
        batchSize: SHARED.batchSize,
        aggregation: SHARED.aggregation,
      })
      .strict(),
    action: async (o) => {
      const agg = STEP_AGGREGATIONS[o.aggregation];
      const scorer = loadPrmScorer(o.model, { tokenizer: o.tokenizer ?? undefined, batchSize: o.batchSize });
      const inputs = readScoreRows(o.data, o.stepSeparator);
      const flat = await scorer.scoreBatch(flatten(inputs));
      let k = 0;
      writeJsonl(
        o.output,
        inputs.map((x) => {
          const s = x.solutions.map(() => flat[k++]);
          return x.many ? { ...x.row, step_scores: s, scores: s.map(agg) } : { ...x.row, step_scores: s[0], score: agg(s[0]) };
        }),
      );
    },
  });

  registerVerifierScore(score);
  registerSurpriseScore(score);
}
