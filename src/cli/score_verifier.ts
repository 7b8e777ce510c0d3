// `nexus score verifier`: score solutions with a generative verifier (ThinkPRM, src/rewards/verifier.ts) through
// score.ts's extension hook. Call `registerVerifierScore()` before `registerScore` builds the command.
// Output: the input row plus `score` (mean P(yes) over K chains), `step_scores` and the sampled `chains`.

import { writeJsonl } from "../data/jsonl.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { GenerativeVerifier, stepScoresOf } from "../rewards/verifier.js";
import { readScoreRows, registerScoreSubcommand } from "./score.js";

interface VerifierCliOpts {
  model: string;
  data: string;
  output: string;
  tokenizer?: string;
  numSamples: string;
  temperature: string;
  maxNewTokens: string;
  seed: string;
  stepSeparator: string;
}

let registered = false;

export function registerVerifierScore(): void {
  if (registered) return;
  registered = true;
  registerScoreSubcommand("verifier", "generative verifier (ThinkPRM): P(yes)/(P(yes)+P(no)) averaged over K chains", (cmd) => {
    cmd
      .requiredOption("--model <dir>", "verifier model folder")
      .requiredOption("--data <file>", "JSONL rows {prompt, steps[]} or {prompt, completions[]}")
      .requiredOption("--output <file>", "JSONL output: the input rows plus scores")
      .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
      .option("--num-samples <k>", "verification chains per solution", "4")
      .option("--temperature <t>", "chain sampling temperature", "0.6")
      .option("--max-new-tokens <n>", "chain budget in tokens", "256")
      .option("--seed <n>", "sampling seed", "0")
      .option("--step-separator <s>", "step separator", "\n")
      .action(async (o: VerifierCliOpts) => {
        const model = await loadCausalLM(o.model);
        const tok = loadTokenizer(o.tokenizer ?? o.model);
        const verifier = new GenerativeVerifier(model, tok, {
          numSamples: Number(o.numSamples),
          temperature: Number(o.temperature),
          maxNewTokens: Number(o.maxNewTokens),
          seed: Number(o.seed),
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
      });
  });
}
