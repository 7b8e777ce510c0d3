// `nexus search bon | vote | beam | lookahead | mcts`: test-time search with a policy folder (--model) and a PRM
// (--prm-model) or outcome reward model (--reward-model) folder over a JSONL of {prompt, answer?} rows; writes one
// row per prompt {prompt, answer, prediction, correct?, steps, score, budget, candidates: [{answer, score, finished,
// correct?}]}, which `nexus eval bon` reads. Answers are read by the one extractor (--answer-pattern;
// rewards/answer.ts). Seeded (one sampling stream per run). Each strategy has only the options it uses. MCTS uses
// the PRM's value when --prm-model is given, else terminal-guided backups checked against the row's gold answer.
// Not here: the strategies (src/search/).

import type { Command } from "commander";
import { z } from "zod";
import { readJsonl, writeJsonl } from "../data/jsonl.js";
import { joinSteps } from "../data/tasks/task.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { type AnswerExtractor, answerExtractor } from "../rewards/answer.js";
import type { OutcomeScorer, StepAggregation, StepGenerator } from "../rewards/interfaces.js";
import { ModelStepGenerator } from "../rewards/labels/model_generator.js";
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
  terminalEvaluator,
} from "../search/index.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

const SELECTION_NAMES = Object.keys(SELECTIONS) as [Selection, ...Selection[]];

/** Options of every strategy: the policy, the data and how the policy samples steps. */
const COMMON = {
  model: SHARED.model.describe("policy: causal LM folder (with its tokenizer)"),
  tokenizer: SHARED.tokenizer,
  data: SHARED.data.describe("rows {prompt, answer?}, JSONL"),
  output: SHARED.output.describe("one row per prompt, JSONL"),
  temperature: SHARED.temperature.describe("policy sampling temperature"),
  maxStepLength: SHARED.maxStepLength,
  maxCompletionLength: SHARED.maxCompletionLength,
  stepSeparator: SHARED.stepSeparator,
  answerPattern: SHARED.answerPattern,
  seed: SHARED.seed,
};
const PRM = z.string().describe("PRM folder (*ForTokenClassification, as nexus prm writes)");
const ORM = z.string().describe("outcome reward model folder (*ForSequenceClassification, as nexus rm writes)");
const N = z.number().int().positive().default(8);
const WIDTH = z.number().int().positive().default(2).describe("expansions per kept beam (N/width beams kept)");
const MAX_ROUNDS = z.number().int().positive().default(16);
const SELECTION = z.enum(SELECTION_NAMES).default("best").describe("final pick: best score, score-weighted vote, or majority vote");

const SCHEMAS = {
  bon: z
    .object({
      ...COMMON,
      prmModel: PRM.nullable().default(null),
      rewardModel: ORM.nullable().default(null),
      n: N.describe("solutions sampled per prompt"),
      aggregation: SHARED.aggregation.describe("PRM step aggregation into a solution score"),
      selection: SELECTION,
    })
    .strict(),
  vote: z
    .object({
      ...COMMON,
      prmModel: PRM.nullable().default(null).describe("PRM folder: weights the vote with --weighted"),
      rewardModel: ORM.nullable().default(null).describe("outcome reward model folder: weights the vote with --weighted"),
      n: N.describe("solutions sampled per prompt"),
      weighted: z.boolean().default(false).describe("weight each answer's votes by the reward model's score"),
      aggregation: SHARED.aggregation.describe("PRM step aggregation into a solution score"),
    })
    .strict(),
  beam: z
    .object({
      ...COMMON,
      prmModel: PRM,
      n: N.describe("beams"),
      width: WIDTH,
      maxRounds: MAX_ROUNDS.describe("steps per solution at most"),
      aggregation: SHARED.aggregation.describe("PRM step aggregation of the final beams"),
      selection: SELECTION,
    })
    .strict(),
  lookahead: z
    .object({
      ...COMMON,
      prmModel: PRM,
      n: N.describe("beams"),
      width: WIDTH,
      k: z.number().int().min(0).default(1).describe("greedy rollout steps that rank a beam"),
      maxRounds: MAX_ROUNDS.describe("steps per solution at most"),
      aggregation: SHARED.aggregation.describe("PRM step aggregation of the final beams"),
      selection: SELECTION,
    })
    .strict(),
  mcts: z
    .object({
      ...COMMON,
      prmModel: PRM.nullable()
        .default(null)
        .describe("PRM folder (its last-step value); else terminal-guided backups need an answer column"),
      simulations: z.number().int().positive().default(32).describe("tree simulations per prompt"),
      expansions: z.number().int().positive().default(4).describe("children per expansion"),
      exploration: z.number().min(0).default(2).describe("UCT exploration constant"),
      maxRounds: MAX_ROUNDS.describe("tree depth in steps at most"),
    })
    .strict(),
};
type Strategy = keyof typeof SCHEMAS;
type Opts<K extends Strategy> = z.output<(typeof SCHEMAS)[K]>;

const STRATEGIES: Record<Strategy, string> = {
  bon: "best-of-N with an ORM (or a PRM aggregated)",
  vote: "majority vote over N solutions, optionally weighted by a reward model (--weighted)",
  beam: "PRM-guided step-level beam search (Snell et al.)",
  lookahead: "beam search ranked by k-step greedy rollouts (Snell et al.)",
  mcts: "UCT tree search (rStar-Math): PRM values, or terminal-guided backups from the gold answer",
};

interface Loaded {
  gen: StepGenerator;
  greedy: StepGenerator;
  prm: PrmScorer | null;
  outcome: OutcomeScorer | null;
  answer: AnswerExtractor;
}

/** Whether a solution's answer equals the gold one (false when the gold is not a number). */
function isCorrect(answer: AnswerExtractor, steps: readonly string[], gold: unknown, sep: string): boolean {
  return answer.correct(joinSteps(steps, sep), gold) === true;
}

async function load(o: Opts<Strategy>, aggregation: StepAggregation | null): Promise<Loaded> {
  const prmDir = "prmModel" in o ? o.prmModel : null;
  const ormDir = "rewardModel" in o ? o.rewardModel : null;
  if (prmDir !== null && ormDir !== null) throw new SearchError("[search] pass --prm-model or --reward-model, not both");
  const answer = answerExtractor(o.answerPattern);
  const lm = await loadCausalLM(o.model);
  const tok = loadTokenizer(o.tokenizer ?? o.model);
  const genOpts = {
    separator: o.stepSeparator,
    maxStepTokens: o.maxStepLength,
    maxCompletionTokens: o.maxCompletionLength,
    isFinal: (s: string) => answer.stated(s) !== null,
  };
  const gen = new ModelStepGenerator(lm, tok, { ...genOpts, temperature: o.temperature, doSample: o.temperature > 0, seed: o.seed });
  const greedy = new ModelStepGenerator(lm, tok, { ...genOpts, temperature: 0, doSample: false, seed: o.seed });
  const prm = prmDir === null ? null : loadPrmScorer(prmDir);
  const outcome =
    ormDir !== null
      ? loadOrmScorer(ormDir, { stepSeparator: o.stepSeparator })
      : prm !== null && aggregation !== null
        ? prm.aggregate(aggregation)
        : null;
  return { gen, greedy, prm, outcome, answer };
}

/** One strategy run on one prompt. */
type Runner<K extends Strategy> = (o: Opts<K>, m: Loaded, row: Record<string, unknown>) => Promise<SearchResult>;

const RUNNERS: { [K in Strategy]: Runner<K> } = {
  bon: (o, m, row) =>
    bestOfN(m.gen, o.selection === "majority" ? null : m.outcome, row.prompt as string, {
      n: o.n,
      selection: o.selection,
      answer: m.answer,
    }),
  vote: (o, m, row) =>
    bestOfN(m.gen, o.weighted ? m.outcome : null, row.prompt as string, {
      n: o.n,
      selection: o.weighted ? "weighted" : "majority",
      answer: m.answer,
    }),
  beam: (o, m, row) =>
    beamSearch(m.gen, m.prm!, row.prompt as string, {
      n: o.n,
      width: o.width,
      maxRounds: o.maxRounds,
      finalAggregation: o.aggregation,
      selection: o.selection,
      answer: m.answer,
    }),
  lookahead: (o, m, row) =>
    lookaheadSearch(m.gen, m.prm!, row.prompt as string, {
      n: o.n,
      width: o.width,
      k: o.k,
      maxRounds: o.maxRounds,
      rolloutGenerator: m.greedy,
      finalAggregation: o.aggregation,
      selection: o.selection,
      answer: m.answer,
    }),
  mcts: (o, m, row) => {
    const evaluator =
      m.prm !== null
        ? prmEvaluator(m.prm, "last")
        : terminalEvaluator(m.gen, (_p, steps) => isCorrect(m.answer, steps, row.answer, o.stepSeparator));
    return mcts(m.gen, evaluator, row.prompt as string, {
      simulations: o.simulations,
      expansions: o.expansions,
      exploration: o.exploration,
      maxDepth: o.maxRounds,
      seed: o.seed,
      answer: m.answer,
    });
  },
};

function checkRows<K extends Strategy>(strategy: K, o: Opts<K>): Record<string, unknown>[] {
  const rows = readJsonl(o.data);
  rows.forEach((r, i) => {
    if (typeof r.prompt !== "string") throw new SearchError(`[search ${strategy}] ${o.data}:${i + 1}: "prompt" must be a string`);
    if (strategy === "mcts" && (o as Opts<"mcts">).prmModel === null && r.answer === undefined)
      throw new SearchError(`[search mcts] ${o.data}:${i + 1}: terminal-guided MCTS (no --prm-model) needs an "answer" column`);
  });
  return rows;
}

async function runSearch<K extends Strategy>(strategy: K, o: Opts<K>): Promise<void> {
  if (strategy === "bon") {
    const b = o as Opts<"bon">;
    if (b.prmModel === null && b.rewardModel === null && b.selection !== "majority")
      throw new SearchError("[search bon] needs --prm-model or --reward-model (or --selection majority)");
  }
  if (
    strategy === "vote" &&
    (o as Opts<"vote">).weighted &&
    (o as Opts<"vote">).prmModel === null &&
    (o as Opts<"vote">).rewardModel === null
  )
    throw new SearchError("[search vote] --weighted needs --prm-model or --reward-model");
  const rows = checkRows(strategy, o);
  const m = await load(o, "aggregation" in o ? o.aggregation : null);
  const out: Record<string, unknown>[] = [];
  for (const row of rows) {
    const res = await (RUNNERS[strategy] as Runner<K>)(o, m, row);
    const rec: Record<string, unknown> = {
      prompt: row.prompt,
      prediction: res.answer,
      steps: res.steps,
      score: res.score,
      budget: res.budget,
    };
    const hasGold = row.answer !== undefined;
    if (hasGold) {
      rec.answer = row.answer;
      rec.correct = isCorrect(m.answer, res.steps, row.answer, o.stepSeparator);
    }
    // every candidate the strategy ended with, in the form `nexus eval bon` reads
    rec.candidates = res.candidates.map((c) => ({
      answer: m.answer.key(joinSteps(c.steps, o.stepSeparator)),
      score: c.score,
      finished: c.finished,
      ...(hasGold ? { correct: isCorrect(m.answer, c.steps, row.answer, o.stepSeparator) } : {}),
    }));
    out.push(rec);
  }
  writeJsonl(o.output, out);
}

export function registerSearch(program: Command): void {
  const search = program.command("search").description("test-time search: bon | vote | beam | lookahead | mcts");
  for (const strategy of Object.keys(SCHEMAS) as Strategy[]) {
    registerSchemaCommand(search, {
      name: strategy,
      description: STRATEGIES[strategy],
      schema: SCHEMAS[strategy],
      action: (o) => runSearch(strategy, o as Opts<typeof strategy>),
    });
  }
}
