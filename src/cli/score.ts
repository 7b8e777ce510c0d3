// `nexus score orm|prm`: score solutions in a JSONL file with a trained ORM or PRM. A row is {prompt, steps[]}
// (one solution) or {prompt, completions[]} (several solution texts, split into steps on the separator); each
// output row is the input plus scores. Other scorers (verifier, surprise) plug in through
// `registerScoreSubcommand`, called before `registerScore` builds the command. Not here: training, search.

import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { readJsonl, writeJsonl } from "../data/jsonl.js";
import { splitSteps } from "../data/tasks/task.js";
import { STEP_AGGREGATIONS, type StepAggregation } from "../rewards/interfaces.js";
import { loadOrmScorer, loadPrmScorer, type ScoredRow } from "../rewards/scoring.js";

export class ScoreCliError extends Error {
  override name = "ScoreCliError";
}

/** An extension: adds options and an action to `nexus score <name>` (the command is created for it). */
export type ScoreSubcommand = (cmd: Command) => void;

const EXTRA_SUBCOMMANDS = new Map<string, { description: string; configure: ScoreSubcommand }>();

/** Add `nexus score <name>` (e.g. verifier, surprise) from another module; call before the program is built. */
export function registerScoreSubcommand(name: string, description: string, configure: ScoreSubcommand): void {
  if (name === "orm" || name === "prm" || EXTRA_SUBCOMMANDS.has(name))
    throw new ScoreCliError(`[score] subcommand "${name}" is already registered`);
  EXTRA_SUBCOMMANDS.set(name, { description, configure });
}

function positiveInt(raw: string): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`expects an integer >= 1, got '${raw}'`);
  return v;
}

/** The rows of a score input file: one or several solutions per prompt, as step lists. */
export interface ScoreInput {
  row: Record<string, unknown>;
  solutions: string[][];
  /** The row gave `completions` (a list), not `steps` (one solution). */
  many: boolean;
}

export function readScoreRows(file: string, separator: string): ScoreInput[] {
  return readJsonl(file).map((row, i) => {
    const where = `${file}:${i + 1}`;
    if (typeof row.prompt !== "string") throw new ScoreCliError(`[score] ${where}: "prompt" must be a string`);
    const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
    if (isStrList(row.steps)) return { row, solutions: [row.steps], many: false };
    if (isStrList(row.completions)) return { row, solutions: row.completions.map((c) => splitSteps(c, separator)), many: true };
    if (typeof row.completion === "string") return { row, solutions: [splitSteps(row.completion, separator)], many: false };
    throw new ScoreCliError(`[score] ${where}: needs "steps" (string[]), "completions" (string[]) or "completion" (string)`);
  });
}

interface CommonOpts {
  model: string;
  data: string;
  output: string;
  tokenizer?: string;
  batchSize: number;
  stepSeparator?: string;
}

function common(cmd: Command): Command {
  return cmd
    .requiredOption("--model <dir>", "reward model folder")
    .requiredOption("--data <file>", "JSONL rows {prompt, steps[]} or {prompt, completions[]}")
    .requiredOption("--output <file>", "JSONL output: the input rows plus scores")
    .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
    .option("--batch-size <n>", "rows per forward pass", positiveInt, 16)
    .option("--step-separator <s>", "step separator (PRM default: the one it was trained with; else \\n)");
}

function flatten(inputs: readonly ScoreInput[]): ScoredRow[] {
  return inputs.flatMap((x) => x.solutions.map((steps) => ({ prompt: x.row.prompt as string, steps })));
}

export function registerScore(program: Command): void {
  const score = program.command("score").description("score solutions with a reward model (orm | prm | registered extensions)");

  common(score.command("orm").description("outcome reward model: one score per solution"))
    .option("--sigmoid", "map rewards through a sigmoid to (0, 1)", false)
    .action(async (o: CommonOpts & { sigmoid: boolean }) => {
      const scorer = loadOrmScorer(o.model, {
        tokenizer: o.tokenizer,
        batchSize: o.batchSize,
        sigmoid: o.sigmoid,
        stepSeparator: o.stepSeparator,
      });
      const inputs = readScoreRows(o.data, scorer.stepSeparator);
      const flat = await scorer.scoreBatch(flatten(inputs));
      let k = 0;
      writeJsonl(
        o.output,
        inputs.map((x) => {
          const s = x.solutions.map(() => flat[k++]);
          return x.many ? { ...x.row, scores: s } : { ...x.row, score: s[0] };
        }),
      );
    });

  common(score.command("prm").description("process reward model: per-step P(correct) and an aggregated score"))
    .option("--aggregation <how>", `step aggregation: ${Object.keys(STEP_AGGREGATIONS).join(" | ")}`, "min")
    .action(async (o: CommonOpts & { aggregation: string }) => {
      if (!(o.aggregation in STEP_AGGREGATIONS))
        throw new ScoreCliError(
          `[score prm] --aggregation must be one of ${Object.keys(STEP_AGGREGATIONS).join(", ")}, got "${o.aggregation}"`,
        );
      const agg = STEP_AGGREGATIONS[o.aggregation as StepAggregation];
      const scorer = loadPrmScorer(o.model, { tokenizer: o.tokenizer, batchSize: o.batchSize, stepSeparator: o.stepSeparator });
      const inputs = readScoreRows(o.data, scorer.stepSeparator);
      const flat = await scorer.scoreBatch(flatten(inputs));
      let k = 0;
      writeJsonl(
        o.output,
        inputs.map((x) => {
          const s = x.solutions.map(() => flat[k++]);
          return x.many ? { ...x.row, step_scores: s, scores: s.map(agg) } : { ...x.row, step_scores: s[0], score: agg(s[0]) };
        }),
      );
    });

  for (const [name, ext] of EXTRA_SUBCOMMANDS) ext.configure(score.command(name).description(ext.description));
}
