// `nexus search bon|vote|beam|lookahead|mcts`: test-time search with a policy folder and a PRM or ORM folder over
// a JSONL of {prompt, answer?} rows; writes one row per prompt {prompt, answer, prediction, correct?, steps,
// score, budget}. Seeded (one sampling stream per run). MCTS uses the PRM's value when --prm is given, else
// terminal-guided backups checked against the row's gold answer. Not here: the strategies (src/search/).

import { type Command, InvalidArgumentError } from "commander";
import { readJsonl, writeJsonl } from "../data/jsonl.js";
import { joinSteps } from "../data/tasks/task.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { type OutcomeScorer, STEP_AGGREGATIONS, type StepAggregation } from "../rewards/interfaces.js";
import { ModelStepGenerator } from "../rewards/labels/model_generator.js";
import { extractNumber, goldNumber, rationalEquals } from "../rewards/rule.js";
import { loadOrmScorer, loadPrmScorer, type PrmScorer } from "../rewards/scoring.js";
import {
  beamSearch,
  bestOfN,
  lookaheadSearch,
  mcts,
  prmEvaluator,
  SELECTIONS,
  SearchError,
  type SearchResult,
  type Selection,
  stepStatesAnswer,
  terminalEvaluator,
} from "../search/index.js";

const int = (min: number) => (raw: string) => {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new InvalidArgumentError(`expects an integer >= ${min}, got '${raw}'`);
  return v;
};
const num = (raw: string) => {
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) throw new InvalidArgumentError(`expects a number, got '${raw}'`);
  return v;
};

interface SearchOpts {
  policy: string;
  prm?: string;
  orm?: string;
  data: string;
  output: string;
  n: number;
  width: number;
  k: number;
  maxRounds: number;
  simulations: number;
  expansions: number;
  exploration: number;
  aggregation: string;
  selection: string;
  temperature: number;
  maxStepTokens: number;
  maxCompletionTokens: number;
  separator: string;
  seed: number;
}

type Strategy = "bon" | "vote" | "beam" | "lookahead" | "mcts";
const STRATEGIES: Record<Strategy, string> = {
  bon: "best-of-N with the ORM (or the PRM aggregated)",
  vote: "majority vote, or weighted by the reward model with --selection weighted",
  beam: "PRM-guided step-level beam search (Snell et al.)",
  lookahead: "beam search ranked by k-step greedy rollouts (Snell et al.)",
  mcts: "UCT tree search (rStar-Math): PRM values, or terminal-guided backups from the gold answer",
};

function isCorrect(steps: readonly string[], gold: unknown): boolean {
  const g = goldNumber(gold);
  const got = extractNumber(joinSteps(steps), { fallbackLastNumber: false });
  return g !== null && got !== null && rationalEquals(g, got);
}

async function runSearch(strategy: Strategy, o: SearchOpts): Promise<void> {
  if (!(o.aggregation in STEP_AGGREGATIONS))
    throw new SearchError(`[search] --aggregation must be one of ${Object.keys(STEP_AGGREGATIONS).join(", ")}`);
  if (!(o.selection in SELECTIONS)) throw new SearchError(`[search] --selection must be one of ${Object.keys(SELECTIONS).join(", ")}`);
  if (o.prm !== undefined && o.orm !== undefined) throw new SearchError("[search] pass --prm or --orm, not both");
  const needsPrm = strategy === "beam" || strategy === "lookahead";
  if (needsPrm && o.prm === undefined) throw new SearchError(`[search ${strategy}] needs --prm`);
  if (strategy === "bon" && o.prm === undefined && o.orm === undefined) throw new SearchError("[search bon] needs --prm or --orm");
  const agg = o.aggregation as StepAggregation;
  const rows = readJsonl(o.data);
  rows.forEach((r, i) => {
    if (typeof r.prompt !== "string") throw new SearchError(`[search] ${o.data}:${i + 1}: "prompt" must be a string`);
    if (strategy === "mcts" && o.prm === undefined && r.answer === undefined)
      throw new SearchError(`[search mcts] ${o.data}:${i + 1}: terminal-guided MCTS (no --prm) needs an "answer" column`);
  });
  const lm = await loadCausalLM(o.policy);
  const tok = loadTokenizer(o.policy);
  const genOpts = {
    separator: o.separator,
    maxStepTokens: o.maxStepTokens,
    maxCompletionTokens: o.maxCompletionTokens,
    isFinal: (s: string) => stepStatesAnswer([s]),
  };
  const gen = new ModelStepGenerator(lm, tok, { ...genOpts, temperature: o.temperature, doSample: o.temperature > 0, seed: o.seed });
  const greedy = new ModelStepGenerator(lm, tok, { ...genOpts, temperature: 0, doSample: false, seed: o.seed });
  const prm: PrmScorer | null = o.prm === undefined ? null : loadPrmScorer(o.prm);
  const outcome: OutcomeScorer | null =
    o.orm !== undefined ? loadOrmScorer(o.orm, { stepSeparator: o.separator }) : prm === null ? null : prm.aggregate(agg);
  const selection = o.selection as Selection;
  const out: Record<string, unknown>[] = [];
  for (const row of rows) {
    const prompt = row.prompt as string;
    let res: SearchResult;
    if (strategy === "bon" || strategy === "vote") {
      const how: Selection = strategy === "bon" ? selection : outcome === null || selection === "best" ? "majority" : selection;
      res = await bestOfN(gen, how === "majority" ? null : outcome, prompt, { n: o.n, selection: how });
    } else if (strategy === "beam") {
      res = await beamSearch(gen, prm as PrmScorer, prompt, {
        n: o.n,
        width: o.width,
        maxRounds: o.maxRounds,
        finalAggregation: agg,
        selection,
      });
    } else if (strategy === "lookahead") {
      res = await lookaheadSearch(gen, prm as PrmScorer, prompt, {
        n: o.n,
        width: o.width,
        k: o.k,
        maxRounds: o.maxRounds,
        rolloutGenerator: greedy,
        finalAggregation: agg,
        selection,
      });
    } else {
      const evaluator = prm !== null ? prmEvaluator(prm, "last") : terminalEvaluator(gen, (_p, steps) => isCorrect(steps, row.answer));
      res = await mcts(gen, evaluator, prompt, {
        simulations: o.simulations,
        expansions: o.expansions,
        exploration: o.exploration,
        maxDepth: o.maxRounds,
        seed: o.seed,
      });
    }
    const rec: Record<string, unknown> = { prompt, prediction: res.answer, steps: res.steps, score: res.score, budget: res.budget };
    if (row.answer !== undefined) {
      rec.answer = row.answer;
      rec.correct = isCorrect(res.steps, row.answer);
    }
    rec.candidates = res.candidates.length;
    out.push(rec);
  }
  writeJsonl(o.output, out);
}

export function registerSearch(program: Command): void {
  const search = program.command("search").description("test-time search: bon | vote | beam | lookahead | mcts");
  for (const [name, description] of Object.entries(STRATEGIES) as [Strategy, string][]) {
    search
      .command(name)
      .description(description)
      .requiredOption("--policy <dir>", "causal LM folder (with its tokenizer)")
      .option("--prm <dir>", "PRM folder (token classifier)")
      .option("--orm <dir>", "ORM folder (sequence classifier)")
      .requiredOption("--data <file>", "JSONL rows {prompt, answer?}")
      .requiredOption("--output <file>", "JSONL output, one row per prompt")
      .option("--n <n>", "solutions (bon, vote) or beams (beam, lookahead)", int(1), 8)
      .option("--width <m>", "expansions per kept beam (N/M beams kept)", int(1), 2)
      .option("--k <k>", "lookahead rollout steps", int(0), 1)
      .option("--max-rounds <n>", "steps per solution at most (beam, lookahead; MCTS depth)", int(1), 16)
      .option("--simulations <n>", "MCTS simulations", int(1), 32)
      .option("--expansions <n>", "MCTS children per expansion", int(1), 4)
      .option("--exploration <c>", "MCTS UCT exploration constant", num, 2)
      .option("--aggregation <how>", "PRM step aggregation: min | product | last | mean", "last")
      .option("--selection <how>", "best | weighted | majority", "best")
      .option("--temperature <t>", "policy sampling temperature", num, 1)
      .option("--max-step-tokens <n>", "tokens per step at most", int(1), 64)
      .option("--max-completion-tokens <n>", "tokens per full solution at most", int(1), 512)
      .option("--separator <s>", "step separator", "\n")
      .option("--seed <n>", "sampling seed", int(0), 0)
      .action((o: SearchOpts) => runSearch(name, o));
  }
}
