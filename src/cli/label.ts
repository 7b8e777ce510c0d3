// `nexus label mc | omega | judge | consensus`: PRM step labels for JSONL solutions, written as TRL stepwise rows
// ({prompt, completions, labels} plus first_error and method columns). Input rows are {prompt, completions: steps}
// or {prompt, completion: text} (split on --step-separator); mc and omega check rollouts against the row's gold
// `answer` column (read with the one answer extractor, --answer-pattern; an arithmetic-task prompt needs none)
// and refuse rows without it before generating anything. Rows that carry gold `labels` also get a label-quality
// summary. Prints one JSON summary line. Not here: the algorithms (src/rewards/labels).

import type { Command } from "commander";
import { z } from "zod";
import { readJsonlWith, writeJsonl } from "../data/jsonl.js";
import { labelQuality } from "../eval/label_quality.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import { type AnswerExtractor, answerExtractor } from "../rewards/answer.js";
import type { StepGenerator } from "../rewards/interfaces.js";
import { consensusFilter } from "../rewards/labels/consensus.js";
import { stepwiseFromFirstError, stepwiseFromLabels } from "../rewards/labels/format.js";
import { type JudgeFn, judgeLabels, localJudge, remoteJudge } from "../rewards/labels/judge.js";
import { mcLabels } from "../rewards/labels/mc.js";
import { ModelStepGenerator } from "../rewards/labels/model_generator.js";
import { omegaFirstError } from "../rewards/labels/omega.js";
import {
  ARITHMETIC_ANSWER,
  goldAnswerChecker,
  LabelError,
  parseArithmeticPrompt,
  type StepCheckableAnswer,
  splitSteps,
} from "../rewards/labels/steps.js";
import { ArithmeticChainGenerator } from "../rewards/labels/synthetic.js";
import { cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

interface Solution {
  prompt: string;
  steps: string[];
  gold: boolean[] | null;
  extra: Record<string, unknown>;
  line: number;
}

function readSolutions(file: string, separator: string): Solution[] {
  return readJsonlWith(file, (row, line) => {
    const where = `${file}:${line}`;
    if (typeof row.prompt !== "string") throw new LabelError(`${where}: field "prompt": expected string`);
    let steps: string[];
    if (Array.isArray(row.completions) && row.completions.every((s) => typeof s === "string")) steps = row.completions as string[];
    else if (typeof row.completion === "string") steps = splitSteps(row.completion, separator);
    else throw new LabelError(`${where}: expected "completions" (array of step strings) or "completion" (string)`);
    if (steps.length === 0) throw new LabelError(`${where}: the solution has no steps`);
    const gold = Array.isArray(row.labels) && row.labels.length === steps.length && row.labels.every((l) => typeof l === "boolean");
    const extra: Record<string, unknown> = {};
    for (const k of ["id", "answer"]) if (row[k] !== undefined) extra[k] = row[k];
    return { prompt: row.prompt, steps, gold: gold ? (row.labels as boolean[]) : null, extra, line };
  });
}

/**
 * How a row's rollouts are checked: its gold `answer` column, or the arithmetic task's own checker when the prompt
 * is one of its prompts. Throws, naming the file, line and column, when a row has neither (or a non-numeric gold).
 */
function checkerFor(s: Solution, file: string, separator: string, answer: AnswerExtractor): StepCheckableAnswer {
  if (s.extra.answer === undefined) {
    if (parseArithmeticPrompt(s.prompt) !== null) return ARITHMETIC_ANSWER;
    throw new LabelError(
      `${file}:${s.line}: no "answer" column; Monte Carlo labels check each rollout's final answer against the row's gold "answer" (a number, or a text stating it)`,
    );
  }
  if (answer.gold(s.extra.answer) === null) {
    throw new LabelError(
      `${file}:${s.line}: column "answer": ${JSON.stringify(s.extra.answer)} is not a number and states none (${answer.describe()})`,
    );
  }
  return goldAnswerChecker(() => s.extra.answer, separator, answer);
}

const SOLUTION_DATA = SHARED.data.describe(
  'solutions, JSONL: {prompt, completions: [step, ...]} or {prompt, completion: "text"}, with an answer column',
);
const LABELLED_OUTPUT = SHARED.output.describe("labelled rows, JSONL (TRL stepwise: {prompt, completions, labels})");
const TRUNCATE = z.boolean().default(false).describe("end each row at its first false step");

/** Options of the labellers that complete step prefixes (mc, omega). */
const GENERATOR_SCHEMA = z
  .object({
    data: SOLUTION_DATA,
    output: LABELLED_OUTPUT,
    model: SHARED.model.nullable().default(null).describe("completer model folder (HF layout, with its tokenizer)"),
    tokenizer: SHARED.tokenizer,
    syntheticP: z
      .number()
      .min(0)
      .max(1)
      .nullable()
      .default(null)
      .describe("instead of --model: the synthetic arithmetic completer with per-step success probability p"),
    rollouts: z.number().int().positive().default(8).describe("rollouts per step prefix (MC N, OmegaPRM k)"),
    stepSeparator: SHARED.stepSeparator,
    seed: SHARED.seed,
    temperature: SHARED.temperature.describe("completer sampling temperature"),
    maxStepLength: SHARED.maxStepLength,
    maxCompletionLength: SHARED.maxCompletionLength.describe("tokens per rollout at most"),
    answerPattern: SHARED.answerPattern.describe(
      'regex whose first group is the final answer; a step stating one ends a rollout (default: \\boxed{x}, "#### x", "answer is x"; the last number counts at the end)',
    ),
    truncate: TRUNCATE,
  })
  .strict();
type GenOpts = z.output<typeof GENERATOR_SCHEMA>;

async function makeGenerator(o: GenOpts, separator: string, answer: AnswerExtractor): Promise<StepGenerator> {
  if (o.syntheticP !== null) return new ArithmeticChainGenerator({ p: o.syntheticP, seed: o.seed });
  if (o.model === null) throw new LabelError("[label] --model (or --synthetic-p for the arithmetic test completer) is required");
  return new ModelStepGenerator(await loadCausalLM(o.model), loadTokenizer(o.tokenizer ?? o.model), {
    separator,
    temperature: o.temperature,
    seed: o.seed,
    maxStepTokens: o.maxStepLength,
    maxCompletionTokens: o.maxCompletionLength,
    isFinal: (s) => answer.stated(s) !== null,
  });
}

function qualitySummary(sols: readonly Solution[], predicted: readonly (boolean[] | null)[]): Record<string, unknown> {
  const pairs = sols.map((s, i) => [predicted[i], s.gold] as const).filter(([p, g]) => p !== null && g !== null);
  if (pairs.length === 0) return {};
  return {
    vsGold: labelQuality(
      pairs.map(([p]) => p!),
      pairs.map(([, g]) => g!),
    ),
  };
}

function say(obj: Record<string, unknown>): void {
  cliOut(`${JSON.stringify(obj)}\n`);
}

export function registerLabel(program: Command): void {
  const label = program.command("label").description("PRM step labels: Monte Carlo, OmegaPRM binary search, LLM judge, consensus");

  registerSchemaCommand(label, {
    name: "mc",
    description: "Math-Shepherd Monte Carlo labels (hard labels; soft in mc_values)",
    schema: GENERATOR_SCHEMA,
    action: async (o) => {
      const sep = o.stepSeparator;
      const answer = answerExtractor(o.answerPattern);
      const sols = readSolutions(o.data, sep);
      const checkers = sols.map((s) => checkerFor(s, o.data, sep, answer));
      const gen = await makeGenerator(o, sep, answer);
      const rows: unknown[] = [];
      const predicted: boolean[][] = [];
      let rollouts = 0;
      for (const [k, s] of sols.entries()) {
        const r = await mcLabels(gen, checkers[k]!, s.prompt, s.steps, {
          rollouts: o.rollouts,
          truncateAfterFirstNegative: o.truncate,
        });
        rollouts += r.rollouts;
        predicted.push(r.hard);
        const row = stepwiseFromLabels(s.prompt, s.steps, r.hard, { truncate: o.truncate }, { ...s.extra });
        rows.push({ ...row, mc_values: r.soft.slice(0, row.labels.length), first_error: r.firstError, rollouts: r.rollouts });
      }
      writeJsonl(o.output, rows);
      say({ method: "mc", rows: rows.length, rollouts, stepsGenerated: gen.stepsGenerated, ...qualitySummary(sols, predicted) });
    },
  });

  registerSchemaCommand(label, {
    name: "omega",
    description: "OmegaPRM-style binary search for the first error",
    schema: GENERATOR_SCHEMA,
    action: async (o) => {
      const sep = o.stepSeparator;
      const answer = answerExtractor(o.answerPattern);
      const sols = readSolutions(o.data, sep);
      const checkers = sols.map((s) => checkerFor(s, o.data, sep, answer));
      const gen = await makeGenerator(o, sep, answer);
      const rows: unknown[] = [];
      const predicted: boolean[][] = [];
      let rollouts = 0;
      for (const [k, s] of sols.entries()) {
        const r = await omegaFirstError(gen, checkers[k]!, s.prompt, s.steps, { rollouts: o.rollouts });
        rollouts += r.rollouts;
        predicted.push(s.steps.map((_, i) => r.firstError === -1 || i < r.firstError));
        const row = stepwiseFromFirstError(s.prompt, s.steps, r.firstError, { truncate: o.truncate }, { ...s.extra });
        rows.push({ ...row, first_error: r.firstError, rollouts: r.rollouts });
      }
      writeJsonl(o.output, rows);
      say({ method: "omega", rows: rows.length, rollouts, stepsGenerated: gen.stepsGenerated, ...qualitySummary(sols, predicted) });
    },
  });

  registerSchemaCommand(label, {
    name: "judge",
    description: "LLM-as-judge labels: the judge names the first wrong step (unparseable replies are dropped and counted)",
    schema: z
      .object({
        data: SOLUTION_DATA,
        output: LABELLED_OUTPUT,
        model: SHARED.model.nullable().default(null).describe("local judge model folder"),
        tokenizer: SHARED.tokenizer,
        judgeUrl: z.string().nullable().default(null).describe("instead of --model: an OpenAI-compatible base URL (http://host:8000/v1)"),
        judgeModel: z.string().default("default").describe("model name at --judge-url"),
        maxCompletionLength: SHARED.maxCompletionLength.describe("tokens of a judge reply at most"),
        concurrency: z.number().int().positive().default(1).describe("judge calls in flight"),
        stepSeparator: SHARED.stepSeparator,
        truncate: TRUNCATE,
      })
      .strict(),
    action: async (o) => {
      const sols = readSolutions(o.data, o.stepSeparator);
      let judge: JudgeFn;
      if (o.judgeUrl !== null)
        judge = remoteJudge({ url: o.judgeUrl, model: o.judgeModel, maxTokens: o.maxCompletionLength, apiKey: process.env.OPENAI_API_KEY });
      else if (o.model !== null)
        judge = localJudge(await loadCausalLM(o.model), loadTokenizer(o.tokenizer ?? o.model), { maxNewTokens: o.maxCompletionLength });
      else throw new LabelError("[label judge] --model or --judge-url is required");
      const { labels, stats } = await judgeLabels(judge, sols, { concurrency: o.concurrency });
      const rows: unknown[] = [];
      const predicted = labels.map((l, i) =>
        l.firstError === null ? null : sols[i]!.steps.map((_, j) => l.firstError === -1 || j < l.firstError!),
      );
      sols.forEach((s, i) => {
        const fe = labels[i]!.firstError;
        if (fe === null) return;
        const row = stepwiseFromFirstError(s.prompt, s.steps, fe, { truncate: o.truncate }, { ...s.extra });
        rows.push({ ...row, first_error: fe, judge_reply: labels[i]!.reply });
      });
      writeJsonl(o.output, rows);
      say({ method: "judge", ...stats, ...qualitySummary(sols, predicted) });
    },
  });

  registerSchemaCommand(label, {
    name: "consensus",
    description: "keep rows where MC and judge agree on the first error (Qwen 2501.07301)",
    schema: z
      .object({
        mc: z.string().describe("output of `nexus label mc` (or omega)"),
        judge: z.string().describe("output of `nexus label judge`"),
        output: SHARED.output.describe("kept rows, JSONL (TRL stepwise format)"),
        truncate: TRUNCATE,
      })
      .strict(),
    action: (o) => {
      type Labelled = { prompt: string; steps: string[]; firstError: number; extra: Record<string, unknown> };
      const read = (file: string): Labelled[] =>
        readJsonlWith(file, (row, line) => {
          if (typeof row.prompt !== "string" || !Array.isArray(row.completions) || typeof row.first_error !== "number") {
            throw new LabelError(`${file}:${line}: expected {prompt, completions, first_error} (a \`nexus label\` output row)`);
          }
          const extra: Record<string, unknown> = {};
          for (const k of ["id", "answer"]) if (row[k] !== undefined) extra[k] = row[k];
          return { prompt: row.prompt, steps: row.completions as string[], firstError: row.first_error, extra };
        });
      const key = (r: Labelled) => JSON.stringify([r.prompt, r.steps[0] ?? ""]);
      const judged = new Map<string, Labelled[]>();
      for (const r of read(o.judge)) judged.set(key(r), [...(judged.get(key(r)) ?? []), r]);
      // Truncated rows keep a common prefix of steps, so rows are matched on prompt + first step, then on prefix.
      const mcRows = read(o.mc);
      const judgeOf = (m: Labelled): number | null => {
        for (const j of judged.get(key(m)) ?? []) {
          const n = Math.min(j.steps.length, m.steps.length);
          if (m.steps.slice(0, n).every((s, i) => s === j.steps[i])) return j.firstError;
        }
        return null;
      };
      const { kept, stats } = consensusFilter(mcRows, (m) => m.firstError, judgeOf);
      writeJsonl(
        o.output,
        kept.map(({ row, firstError }) => ({
          ...stepwiseFromFirstError(row.prompt, row.steps, firstError, { truncate: o.truncate }, { ...row.extra }),
          first_error: firstError,
        })),
      );
      say({ method: "consensus", ...stats });
    },
  });
}
