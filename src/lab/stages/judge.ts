// The judge stage (after sft, before labels): the LLM judge of the step labels. Locally, a judge model starts
// from the SFT policy's weights (it already reads the task's arithmetic; its vocabulary is extended by the judge
// prompt's and reply's characters, new rows freshly initialised) and learns, by SFT on training problems with
// gold and corrupted solutions shown as the numbered steps of rewards/labels/judge.ts's judgePrompt, to answer
// the verdict line "first wrong step: K" (or "none") that parseJudgeReply reads. Its labels are asked through
// that file's judgeLabels/localJudge path, exactly as a remote judge's are (remoteJudge with --judge-url: then
// this stage trains nothing). Either way the judge's first-error accuracy is measured on gold and corrupted
// solutions of validation problems, which it never saw; an unparseable reply counts as wrong.

import { join } from "node:path";
import {
  ARITHMETIC_CHARSET,
  type ArithmeticProblem,
  arithmeticPrompt,
  arithmeticSolution,
  checkArithmetic,
  corruptSolution,
  NOISE_KINDS,
} from "../../data/tasks/arithmetic.js";
import { Mulberry32 } from "../../data/tasks/rng.js";
import { joinSteps, splitSteps } from "../../data/tasks/task.js";
import { CharTokenizer } from "../../io/char_tokenizer.js";
import { type CausalLM, loadCausalLM } from "../../models/causal_lm.js";
import type { TensorLike } from "../../nn/module.js";
import { type JudgeFn, judgeLabels, judgePrompt, localJudge, remoteJudge } from "../../rewards/labels/judge.js";
import { trainSft } from "../../train/sft.js";
import { labTokenizer, newPolicy, problemsOf, round4 } from "../common.js";
import { loadSftPolicy } from "../models.js";
import type { LabProfile } from "../profiles.js";
import { type LabContext, LabError, type Stage } from "../runner.js";

/** The lab judge's prompt: short, because a character-level model reads every character of it. */
export const LAB_JUDGE_TEMPLATE = "{problem}\n{steps}\nCheck each step.\n";

const REPLY_CHARS = "Step0123456789: first wrong step none\n";

/** Positions of the judge model: prompt (problem, numbered steps) and reply (one line per step). */
const JUDGE_MAX_POSITIONS = 512;

/** The judge's vocabulary: the policy's (same ids) followed by the prompt's and replies' other characters. */
export function judgeTokenizer(): CharTokenizer {
  const text = `${ARITHMETIC_CHARSET}${LAB_JUDGE_TEMPLATE.replace(/\{problem\}|\{steps\}/g, "")}${REPLY_CHARS}`;
  return new CharTokenizer([...new Set(text)].join(""));
}

/** A judge model with the policy's weights; the embedding rows of the judge's extra characters keep their fresh init. */
export function judgeFromPolicy(policy: CausalLM, policyTok: CharTokenizer, tok: CharTokenizer, seed: number): CausalLM {
  if (policyTok.vocab.some((t, i) => tok.vocab[i] !== t))
    throw new LabError("[lab] the judge's vocabulary must start with the policy's (same token ids)");
  const c = policy.config;
  const model = newPolicy(
    { model: { hiddenSize: c.hiddenSize, layers: c.numHiddenLayers, heads: c.numAttentionHeads, intermediateSize: c.intermediateSize } },
    tok,
    seed,
    JUDGE_MAX_POSITIONS,
  );
  const own = model.stateDict();
  const state = new Map<string, TensorLike>();
  for (const [name, t] of policy.stateDict()) {
    const data = t.hostData() as Float32Array;
    const target = own.get(name);
    if (target !== undefined && target.shape[0] !== t.shape[0] && name.endsWith("embed_tokens.weight")) {
      const rows = Float32Array.from(target.hostData() as Float32Array);
      rows.set(data);
      state.set(name, { shape: target.shape, data: rows });
    } else state.set(name, { shape: t.shape, data });
  }
  model.loadStateDict(state);
  return model;
}

/**
 * The reply the judge learns to write: the verdict line "first wrong step: K" (1-based) or "first wrong step: none",
 * from the exact checker. No step-by-step transcript before it: a char-level model of this size does not learn to
 * copy and recompute the steps within the quick profile's budget (measured: a transcript of expected vs candidate
 * lines trained for 150-500 steps parsed worse and was no more accurate), while it does learn the verdict's format.
 */
export function judgeReply(p: ArithmeticProblem, steps: readonly string[]): string {
  const first = checkArithmetic(p, joinSteps(steps)).firstErrorIndex;
  return `first wrong step: ${first < 0 ? "none" : first + 1}`;
}

function judgeDir(ctx: LabContext): string {
  return join(ctx.stageDir("judge"), "model");
}

/** How the labels stage asks the judge: the function, its prompt template and how many calls may be in flight. */
export interface LabJudge {
  judge: JudgeFn;
  /** undefined: rewards/labels/judge.ts's JUDGE_TEMPLATE (the instruction a general chat model needs). */
  template: string | undefined;
  concurrency: number;
}

/** The judge the lab asks: the --judge-url server when the run has one, else the model the judge stage trained. */
export async function labJudge(ctx: LabContext): Promise<LabJudge> {
  const remote = ctx.judge;
  const done = ctx.results.judge as { source?: string } | undefined;
  if (done !== undefined && done.source !== (remote === undefined ? "local" : "remote"))
    throw new LabError(
      `[lab] ${ctx.dir}: its judge stage used the ${done.source} judge, this run ${remote === undefined ? "has no --judge-url" : `asks ${remote.url}`}: use another --name`,
    );
  if (remote !== undefined) {
    return {
      judge: remoteJudge({ url: remote.url, model: remote.model, apiKey: remote.apiKey, maxTokens: 1024 }),
      template: undefined,
      concurrency: 8,
    };
  }
  const model = await loadCausalLM(judgeDir(ctx));
  // room for the verdict line and a little more (a longer reply is cut and then judged unparseable if it has no verdict)
  return { judge: localJudge(model, judgeTokenizer(), { maxNewTokens: 32, maxBatch: 64 }), template: LAB_JUDGE_TEMPLATE, concurrency: 64 };
}

/** Gold or corrupted (one planted error) solutions, `cleanShare` of them gold; `rng` picks which and the error. */
function solutionsOf(
  problems: readonly ArithmeticProblem[],
  rng: Mulberry32,
  cleanShare: number,
): { problem: ArithmeticProblem; steps: string[] }[] {
  return problems.map((p) => {
    const text = rng.next() < cleanShare ? arithmeticSolution(p) : corruptSolution(p, rng.pick(NOISE_KINDS), rng).text;
    return { problem: p, steps: splitSteps(text) };
  });
}

/** The judge's validation set: a gold or corrupted solution (half each) of every validation problem, with its exact first error. */
export function judgeValidationItems(
  profile: LabProfile,
  seed: number,
): { problem: ArithmeticProblem; prompt: string; steps: string[]; firstError: number }[] {
  return solutionsOf(problemsOf(profile, "validation", seed), new Mulberry32(seed + 22), 0.5).map((x) => ({
    ...x,
    prompt: arithmeticPrompt(x.problem),
    firstError: checkArithmetic(x.problem, joinSteps(x.steps)).firstErrorIndex,
  }));
}

export const judgeStage: Stage = {
  name: "judge",
  title: "the LLM judge: train the local step-checking judge (or use --judge-url) and measure it on validation problems",
  async run(ctx) {
    const { profile, seed } = ctx;
    let trained: Record<string, unknown> = {};
    let start = Date.now();
    if (ctx.judge === undefined) {
      const tok = judgeTokenizer();
      const train = solutionsOf(problemsOf(profile, "train", seed).slice(0, profile.judge.examples), new Mulberry32(seed + 21), 0.4);
      const rows = train.map(({ problem, steps }) => ({
        prompt: judgePrompt(arithmeticPrompt(problem), steps, LAB_JUDGE_TEMPLATE),
        completion: judgeReply(problem, steps),
      }));
      const model = judgeFromPolicy(await loadSftPolicy(ctx), labTokenizer(), tok, seed + 23);
      const steps = profile.judge.steps;
      const res = await trainSft({
        model,
        tokenizer: tok,
        data: rows,
        config: {
          learningRate: profile.judge.learningRate,
          maxSteps: steps,
          perDeviceTrainBatchSize: profile.judge.batchSize,
          warmupSteps: Math.ceil(steps / 20),
          lrSchedulerType: "cosine",
          loggingSteps: Math.max(1, Math.floor(steps / 20)),
          seed,
        },
        outputDir: judgeDir(ctx),
        overwrite: true, // an unfinished stage restarts from scratch (the lab resumes by stage)
        quiet: ctx.quiet,
      });
      const curve = res.run.history.filter((h) => typeof h.loss === "number").map((h) => [h.step as number, round4(h.loss as number)]);
      ctx.timePart("train", (Date.now() - start) / 1000);
      start = Date.now();
      trained = { trainRows: rows.length, parameters: model.numParameters(), lossCurve: curve };
    }
    // first-error accuracy on gold and corrupted solutions of validation problems, asked as the labels stage asks
    const items = judgeValidationItems(profile, seed);
    const { judge, template, concurrency } = await labJudge(ctx);
    const { labels, stats } = await judgeLabels(judge, items, { template, concurrency });
    const truth = items.map((x) => x.firstError);
    const right = labels.filter((l, i) => l.firstError === truth[i]).length;
    ctx.timePart("validation", (Date.now() - start) / 1000);
    const onClean = truth.map((t, i) => [t, i] as const).filter(([t]) => t < 0);
    return {
      source: ctx.judge === undefined ? "local" : "remote",
      ...(ctx.judge === undefined ? {} : { url: ctx.judge.url, model: ctx.judge.model }),
      ...trained,
      validation: {
        solutions: items.length,
        parsed: stats.parsed,
        unparseable: stats.unparseable,
        // an unparseable reply counts as wrong
        firstErrorAccuracy: round4(right / Math.max(1, items.length)),
        cleanSolutions: onClean.length,
        cleanAccuracy: round4(onClean.filter(([, i]) => labels[i]!.firstError === -1).length / Math.max(1, onClean.length)),
        flawedAccuracy: round4(
          truth.filter((t, i) => t >= 0 && labels[i]!.firstError === t).length / Math.max(1, items.length - onClean.length),
        ),
      },
    };
  },
};
