// `nexus score verifier`: score solutions with a generative verifier (ThinkPRM, src/rewards/verifier.ts).
// Output: the input row plus `score` (mean P(yes) over K chains), `step_scores` and the sampled `chains`
// (lists of them for `solutions` rows).

import type { Command } from "commander";
import { z } from "zod";
import { writeJsonl } from "../data/jsonl.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { GenerativeVerifier, stepScoresOf } from "../rewards/verifier.js";
import { registerSchemaCommand } from "./schema_command.js";
import { readScoreRows, SCORE_FIELDS } from "./score_rows.js";
import { SHARED } from "./shared_options.js";

export function registerVerifierScore(score: Command): void {
  registerSchemaCommand(score, {
    name: "verifier",
    description: "generative verifier (ThinkPRM): P(yes)/(P(yes)+P(no)) averaged over K chains",
    schema: z
      .object({
        ...SCORE_FIELDS,
        model: SHARED.model.describe("verifier model folder (a causal LM)"),
        numSamples: z.number().int().positive().default(4).describe("verification chains per solution"),
        temperature: SHARED.temperature.default(0.6).describe("chain sampling temperature"),
        maxCompletionLength: SHARED.maxCompletionLength.describe("tokens per verification chain at most"),
        seed: SHARED.seed,
      })
      .strict(),
    action: async (o) => {
      const model = await loadCausalLM(o.model);
      const tok = loadTokenizer(o.tokenizer ?? o.model);
      const verifier = new GenerativeVerifier(model, tok, {
        numSamples: o.numSamples,
        temperature: o.temperature,
        maxNewTokens: o.maxCompletionLength,
        seed: o.seed,
      });
      const rows = readScoreRows(o.data, o.stepSeparator).map((x) => {
        const res = x.solutions.map((steps) => {
          const v = verifier.verify(x.row.prompt as string, steps);
          return { score: v.score, steps: stepScoresOf(v, steps.length), chains: v.chains };
        });
        return x.many
          ? { ...x.row, scores: res.map((r) => r.score), step_scores: res.map((r) => r.steps), chains: res.map((r) => r.chains) }
          : { ...x.row, score: res[0]!.score, step_scores: res[0]!.steps, chains: res[0]!.chains };
      });
      writeJsonl(o.output, rows);
    },
  });
}
