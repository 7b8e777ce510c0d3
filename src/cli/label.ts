// `nexus label mc | omega | judge | consensus`: PRM step labels for JSONL solutions, written as TRL stepwise rows
// ({prompt, completions, labels} plus first_error and method columns). Input rows are {prompt, completions: steps}
// or {prompt, completion: text} (split on --separator); the gold answer is the row's `answer` column, else the
// arithmetic task's prompt. Rows that carry gold `labels` also get a label-quality summary. Prints one JSON
// summary line. Not here: the algorithms (src/rewards/labels).

import { type Command, InvalidArgumentError } from "commander";
import { readJsonlWith, writeJsonl } from "../data/jsonl.js";
import { labelQuality } from "../eval/label_quality.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { loadCausalLM } from "../models/causal_lm.js";
import type { StepGenerator } from "../rewards/interfaces.js";
import { consensusFilter } from "../rewards/labels/consensus.js";
import { stepwiseFromFirstError, stepwiseFromLabels } from "../rewards/labels/format.js";
import { type JudgeFn, judgeLabels, localJudge, remoteJudge } from "../rewards/labels/judge.js";
import { mcLabels } from "../rewards/labels/mc.js";
import { ModelStepGenerator } from "../rewards/labels/model_generator.js";
import { omegaFirstError } from "../rewards/labels/omega.js";
import { ARITHMETIC_ANSWER, goldAnswerChecker, LabelError, type StepCheckableAnswer, splitSteps } from "../rewards/labels/steps.js";
import { ArithmeticChainGenerator } from "../rewards/labels/synthetic.js";

interface Solution {
  prompt: string;
  steps: string[];
  gold: boolean[] | null;
  extra: Record<string, unknown>;
  line: number;
}

/** "\n", "\t" and "\\" written literally on a command line become the characters. */
export function unescapeSeparator(raw: string): string {
  return raw.replace(/\\(n|t|r|\\)/g, (_, c: string) => ({ n: "\n", t: "\t", r: "\r", "\\": "\\" })[c]!);
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

function checkerFor(s: Solution, separator: string): StepCheckableAnswer {
  return s.extra.answer !== undefined ? goldAnswerChecker(() => s.extra.answer, separator) : ARITHMETIC_ANSWER;
}

const int = (name: string) => (raw: string) => {
  const v = Number(raw);
  if (!Number.isInteger(v)) throw new InvalidArgumentError(`--${name} expects an integer, got '${raw}'`);
  return v;
};
const num = (name: string) => (raw: string) => {
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) throw new InvalidArgumentError(`--${name} expects a number, got '${raw}'`);
  return v;
};

interface GenOpts {
  data: string;
  output: string;
  model?: string;
  syntheticP?: number;
  rollouts: number;
  separator: string;
  seed: number;
  temperature: number;
  maxStepTokens: number;
  maxCompletionTokens: number;
  finalPattern: string;
  truncate: boolean;
}

async function makeGenerator(o: GenOpts, separator: string): Promise<StepGenerator> {
  if (o.syntheticP !== undefined) return new ArithmeticChainGenerator({ p: o.syntheticP, seed: o.seed });
  if (o.model === undefined) throw new LabelError("[label] --model (or --synthetic-p for the arithmetic test completer) is required");
  const final = new RegExp(o.finalPattern, "i");
  return new ModelStepGenerator(await loadCausalLM(o.model), loadTokenizer(o.model), {
    separator,
    temperature: o.temperature,
    seed: o.seed,
    maxStepTokens: o.maxStepTokens,
    maxCompletionTokens: o.maxCompletionTokens,
    isFinal: (s) => final.test(s),
  });
}

function withGeneratorOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--data <file>", "solutions, JSONL: {prompt, completions} or {prompt, completion}")
    .requiredOption("--output <file>", "labelled rows, JSONL (TRL stepwise format)")
    .option("--model <dir>", "completer model folder (HF layout, with its tokenizer)")
    .option("--synthetic-p <p>", "use the synthetic arithmetic completer with per-step success probability p", num("synthetic-p"))
    .option("--rollouts <n>", "rollouts per step prefix (MC N, OmegaPRM k)", int("rollouts"), 8)
    .option("--separator <s>", "step separator (\\n escapes allowed)", "\\n")
    .option("--seed <n>", "sampling seed", int("seed"), 0)
    .option("--temperature <t>", "completer sampling temperature", num("temperature"), 1)
    .option("--max-step-tokens <n>", "token budget of one step", int("max-step-tokens"), 64)
    .option("--max-completion-tokens <n>", "token budget of one rollout", int("max-completion-tokens"), 512)
    .option("--final-pattern <regex>", "a step matching this ends a rollout", "answer is")
    .option("--truncate", "end each row at its first false step", false);
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
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export function registerLabel(program: Command): void {
  const label = program.command("label").description("PRM step labels: Monte Carlo, OmegaPRM binary search, LLM judge, consensus");

  withGeneratorOptions(label.command("mc").description("Math-Shepherd Monte Carlo labels (hard labels; soft in mc_values)")).action(
    async (o: GenOpts) => {
      const sep = unescapeSeparator(o.separator);
      const sols = readSolutions(o.data, sep);
      const gen = await makeGenerator(o, sep);
      const rows: unknown[] = [];
      const predicted: boolean[][] = [];
      let rollouts = 0;
      for (const s of sols) {
        const r = await mcLabels(gen, checkerFor(s, sep), s.prompt, s.steps, {
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
  );

  withGeneratorOptions(label.command("omega").description("OmegaPRM-style binary search for the first error")).action(
    async (o: GenOpts) => {
      const sep = unescapeSeparator(o.separator);
      const sols = readSolutions(o.data, sep);
      const gen = await makeGenerator(o, sep);
      const rows: unknown[] = [];
      const predicted: boolean[][] = [];
      let rollouts = 0;
      for (const s of sols) {
        const r = await omegaFirstError(gen, checkerFor(s, sep), s.prompt, s.steps, { rollouts: o.rollouts });
        rollouts += r.rollouts;
        predicted.push(s.steps.map((_, i) => r.firstError === -1 || i < r.firstError));
        const row = stepwiseFromFirstError(s.prompt, s.steps, r.firstError, { truncate: o.truncate }, { ...s.extra });
        rows.push({ ...row, first_error: r.firstError, rollouts: r.rollouts });
      }
      writeJsonl(o.output, rows);
      say({ method: "omega", rows: rows.length, rollouts, stepsGenerated: gen.stepsGenerated, ...qualitySummary(sols, predicted) });
    },
  );

  label
    .command("judge")
    .description("LLM-as-judge labels: the judge names the first wrong step (unparseable replies are dropped and counted)")
    .requiredOption("--data <file>", "solutions, JSONL")
    .requiredOption("--output <file>", "labelled rows, JSONL")
    .option("--model <dir>", "local judge model folder")
    .option("--judge-url <url>", "OpenAI-compatible base URL (e.g. http://localhost:8000/v1)")
    .option("--judge-model <name>", "model name at --judge-url", "default")
    .option("--max-new-tokens <n>", "judge reply budget", int("max-new-tokens"), 512)
    .option("--concurrency <n>", "judge calls in flight", int("concurrency"), 1)
    .option("--separator <s>", "step separator for {prompt, completion} rows", "\\n")
    .option("--truncate", "end each row at its first false step", false)
    .action(
      async (o: {
        data: string;
        output: string;
        model?: string;
        judgeUrl?: string;
        judgeModel: string;
        maxNewTokens: number;
        concurrency: number;
        separator: string;
        truncate: boolean;
      }) => {
        const sols = readSolutions(o.data, unescapeSeparator(o.separator));
        let judge: JudgeFn;
        if (o.judgeUrl !== undefined)
          judge = remoteJudge({ url: o.judgeUrl, model: o.judgeModel, maxTokens: o.maxNewTokens, apiKey: process.env.OPENAI_API_KEY });
        else if (o.model !== undefined)
          judge = localJudge(await loadCausalLM(o.model), loadTokenizer(o.model), { maxNewTokens: o.maxNewTokens });
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
    );

  label
    .command("consensus")
    .description("keep rows where MC and judge agree on the first error (Qwen 2501.07301)")
    .requiredOption("--mc <file>", "output of `nexus label mc` (or omega)")
    .requiredOption("--judge <file>", "output of `nexus label judge`")
    .requiredOption("--output <file>", "kept rows, JSONL (TRL stepwise format)")
    .option("--truncate", "end each row at its first false step", false)
    .action((o: { mc: string; judge: string; output: string; truncate: boolean }) => {
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
    });
}
