// `nexus eval processbench | bon`: metrics over JSONL files. processbench reads rows {id, problem, steps, label,
// scores | prediction}; a threshold for scores is given, fitted on another file, or fitted on the data itself;
// the LAST stdout line is {"f1","accErr","accCor"}. bon reads one row per problem with scored candidates (what
// `nexus search` writes; correctness given, or computed from the text with the one answer extractor) and
// prints best-of-N, pass@1, pass@N and maj@N. Not here: computing scores (PRM scoring lives in src/rewards).

import type { Command } from "commander";
import { z } from "zod";
import { readJsonl } from "../data/jsonl.js";
import { joinSteps } from "../data/tasks/task.js";
import { MetricError } from "../eval/errors.js";
import { evaluateProcessBench, fitThreshold, type ProcessBenchRow } from "../eval/processbench.js";
import { bestOfNAccuracy, type Candidate, majAtKCandidates, meanPassAtK } from "../eval/selection.js";
import { type AnswerExtractor, answerExtractor } from "../rewards/answer.js";
import { cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

const PB_ROW = z
  .looseObject({
    id: z.union([z.string(), z.number()]).optional(),
    problem: z.string().optional(),
    steps: z.array(z.string()).optional(),
    label: z.number().int().min(-1),
    scores: z.array(z.number()).optional(),
    prediction: z.number().int().min(-1).optional(),
  })
  .refine((r) => r.scores !== undefined || r.prediction !== undefined, { message: "a row needs per-step scores or a prediction" });

const ANSWER = z.union([z.string(), z.number(), z.null()]);
/** A scored candidate: its correctness given, or computed from its text (or steps) and the row's gold `answer`. */
const CANDIDATE = z.looseObject({
  score: z.number().nullable(),
  correct: z.boolean().optional(),
  answer: ANSWER.optional(),
  text: z.string().optional(),
  steps: z.array(z.string()).optional(),
});
const BON_ROW = z.union([
  z.looseObject({ candidates: z.array(CANDIDATE).min(1), answer: z.unknown().optional() }),
  z.looseObject({
    scores: z.array(z.number()).min(1),
    correct: z.array(z.boolean()).min(1),
    answers: z.array(ANSWER).optional(),
  }),
]);

/** One `candidates` row (as `nexus search` writes it) as metric candidates; a null score (-Infinity in JSON) ranks last. */
function candidatesOf(
  r: { candidates: z.output<typeof CANDIDATE>[]; answer?: unknown },
  where: string,
  answer: AnswerExtractor,
  sep: string,
): Candidate[] {
  return r.candidates.map((c, j) => {
    const text = c.text ?? (c.steps !== undefined ? joinSteps(c.steps, sep) : null);
    let correct = c.correct ?? null;
    if (correct === null && text !== null && r.answer !== undefined) correct = answer.correct(text, r.answer);
    if (correct === null) {
      throw new MetricError(
        `${where}: candidate ${j + 1} has no "correct"; give it, or the candidate's "text" (or "steps") and the row's numeric gold "answer"`,
      );
    }
    const key = c.answer !== undefined ? c.answer : text !== null ? answer.key(text) : null;
    return { score: c.score ?? Number.NEGATIVE_INFINITY, correct, answer: key == null ? null : String(key) };
  });
}

function readProcessBench(file: string): ProcessBenchRow[] {
  return readJsonl(file, PB_ROW).map((r) => ({ ...r, id: r.id === undefined ? undefined : String(r.id) }));
}

/** A JSON number, with NaN (an empty subset) as null. */
const jnum = (v: number) => (Number.isNaN(v) ? null : v);

export function registerEval(program: Command): void {
  const ev = program.command("eval").description("evaluation metrics over JSONL files");

  registerSchemaCommand(ev, {
    name: "processbench",
    description: "ProcessBench F1 (accuracy on erroneous and on correct solutions); last line {f1, accErr, accCor}",
    schema: z
      .object({
        data: SHARED.data.describe("rows {id, problem, steps, label, scores | prediction}, JSONL"),
        threshold: z.number().nullable().default(null).describe("a step is wrong when its score is below this"),
        fitThresholdOn: z.string().nullable().default(null).describe("fit the threshold on this file (rows with scores) instead"),
      })
      .strict(),
    action: (o) => {
      if (o.threshold !== null && o.fitThresholdOn !== null) {
        throw new MetricError("[eval processbench] give --threshold or --fit-threshold-on, not both");
      }
      const rows = readProcessBench(o.data);
      const scored = rows.some((r) => r.scores !== undefined);
      let threshold: number | null = o.threshold ?? null;
      if (scored && threshold === null) {
        const fitRows = o.fitThresholdOn === null ? rows : readProcessBench(o.fitThresholdOn);
        const fit = fitThreshold(fitRows);
        threshold = fit.threshold;
        cliOut(`${JSON.stringify({ fittedOn: o.fitThresholdOn ?? o.data, threshold, fitF1: jnum(fit.metric.f1) })}\n`);
      }
      const m = evaluateProcessBench(rows, threshold);
      cliOut(`${JSON.stringify({ rows: rows.length, nErr: m.nErr, nCor: m.nCor, threshold })}\n`);
      cliOut(`${JSON.stringify({ f1: jnum(m.f1), accErr: jnum(m.accErr), accCor: jnum(m.accCor) })}\n`);
    },
  });

  registerSchemaCommand(ev, {
    name: "bon",
    description: "best-of-N accuracy from scored candidates",
    schema: z
      .object({
        data: SHARED.data.describe(
          "one row per problem, JSONL: `nexus search` output ({answer?, candidates: [{score, correct | text | steps, answer?}]}) or {scores, correct, answers?}",
        ),
        n: z.number().int().positive().nullable().default(null).describe("use the first n candidates of each row (default: all)"),
        answerPattern: SHARED.answerPattern,
        stepSeparator: SHARED.stepSeparator,
      })
      .strict(),
    action: (o) => {
      const answer = answerExtractor(o.answerPattern);
      const problems: Candidate[][] = readJsonl(o.data, BON_ROW).map((r, i) => {
        if ("candidates" in r && Array.isArray(r.candidates)) {
          return candidatesOf(
            r as { candidates: z.output<typeof CANDIDATE>[]; answer?: unknown },
            `${o.data}:${i + 1}`,
            answer,
            o.stepSeparator,
          );
        }
        const s = r as { scores: number[]; correct: boolean[]; answers?: (string | number | null)[] };
        if (s.correct.length !== s.scores.length || (s.answers !== undefined && s.answers.length !== s.scores.length)) {
          throw new MetricError(`${o.data}: row ${i + 1}: scores, correct and answers must have the same length`);
        }
        return s.scores.map((score, j) => ({
          score,
          correct: s.correct[j]!,
          answer: s.answers?.[j] == null ? null : String(s.answers[j]),
        }));
      });
      const cut = problems.map((c) => c.slice(0, o.n ?? c.length));
      const n = Math.min(...cut.map((c) => c.length));
      const out: Record<string, number | null> = {
        problems: cut.length,
        n,
        bestOfN: bestOfNAccuracy(cut),
        passAt1: meanPassAtK(
          cut.map((c) => c.map((x) => x.correct)),
          1,
        ),
        passAtN: meanPassAtK(
          cut.map((c) => c.map((x) => x.correct)),
          n,
        ),
      };
      if (cut.every((c) => c.some((x) => x.answer !== null))) out.majAtN = majAtKCandidates(cut);
      cliOut(`${JSON.stringify(out)}\n`);
    },
  });
}
