// The rows every `nexus score` subcommand reads, with one meaning of each column across Nexus (TRL stepwise):
// `completions` (or ProcessBench's `steps`) is the list of steps of ONE solution; `completion` is one solution's
// text, split into steps on --step-separator; `solutions` holds SEVERAL solutions of the prompt (each a text or
// a list of steps). Not here: scoring.

import { readJsonl } from "../data/jsonl.js";
import { splitSteps } from "../data/tasks/task.js";
import { SHARED } from "./shared_options.js";

export class ScoreCliError extends Error {
  override name = "ScoreCliError";
}

/** One input row: its solutions as step lists. */
export interface ScoreInput {
  row: Record<string, unknown>;
  solutions: string[][];
  /** The row gave `solutions` (several), not one solution. */
  many: boolean;
}

const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** What a score input row may hold (for help texts and errors). */
export const SCORE_ROW_FORMAT =
  '{prompt, completions: [step, ...]} (TRL stepwise), {prompt, steps: [...]}, {prompt, completion: "text"}, or {prompt, solutions: [text or [step, ...], ...]}';

export function readScoreRows(file: string, separator: string): ScoreInput[] {
  return readJsonl(file).map((row, i) => {
    const where = `${file}:${i + 1}`;
    if (typeof row.prompt !== "string") throw new ScoreCliError(`[score] ${where}: "prompt" must be a string`);
    const given = ["completions", "steps", "completion", "solutions"].filter((k) => row[k] !== undefined);
    if (given.length !== 1) {
      throw new ScoreCliError(
        `[score] ${where}: ${given.length === 0 ? "no solution" : `both ${given.join(" and ")}`}; a row is ${SCORE_ROW_FORMAT}`,
      );
    }
    const k = given[0]!;
    const v = row[k];
    if (k === "completions" || k === "steps") {
      if (!isStrList(v)) throw new ScoreCliError(`[score] ${where}: "${k}" must be a list of step strings (one solution)`);
      return { row, solutions: [v], many: false };
    }
    if (k === "completion") {
      if (typeof v !== "string") throw new ScoreCliError(`[score] ${where}: "completion" must be a string`);
      return { row, solutions: [splitSteps(v, separator)], many: false };
    }
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string" || isStrList(s))) {
      throw new ScoreCliError(`[score] ${where}: "solutions" must be a list of solution texts or step lists`);
    }
    return { row, solutions: v.map((s) => (typeof s === "string" ? splitSteps(s, separator) : s)), many: true };
  });
}

/** The options of every score subcommand. */
export const SCORE_FIELDS = {
  model: SHARED.model,
  tokenizer: SHARED.tokenizer,
  data: SHARED.data.describe(`rows ${SCORE_ROW_FORMAT}`),
  output: SHARED.output.describe("the input rows plus scores, JSONL"),
  stepSeparator: SHARED.stepSeparator,
};
