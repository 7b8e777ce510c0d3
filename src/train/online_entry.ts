// The entry point every online trainer shares (trainGrpo, trainRloo, trainPpo, trainOnlineDpo, trainSpin, trainGkd,
// trainDistill): resolve the model (object, LoRA model or HF folder) and tokenizer, tokenise the prompts, build the
// reward mix (reward functions, a reward model, a PRM and a judge under one list of weights), evaluate held-out
// reward on evalData, run the one loop, and save the final model one way (the policy or its LoRA adapter, the
// tokenizer, the resolved config, and the algorithm's extras such as PPO's value model), saying where.
// Not here: the loop (online_loop.ts), the algorithms (grpo.ts, ...).

import type { Environment } from "../agent/environment.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { checkTokenizerFitsModel } from "../io/tokenizer.js";
import { type CausalLM, saveCausalLM } from "../models/causal_lm.js";
import type { SequenceClassifier } from "../models/heads.js";
import { LoraModel, saveLoraAdapter } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import type { StepScorer } from "../rewards/interfaces.js";
import type { JudgeFn } from "../rewards/labels/judge.js";
import { judgeReward, rewardModelReward, stepScorerReward } from "../rewards/model_rewards.js";
import { RewardError, type RewardFn } from "../rewards/types.js";
import { ConfigError } from "./config.js";
import type { RunResult } from "./loop.js";
import type { Metrics } from "./metrics.js";
import type { OnlineConfig } from "./online_config.js";
import { type GenerationBatch, type MicroLoss, type OnlineAlgorithm, runOnline } from "./online_loop.js";
import { type PromptDataKind, rolloutFromSamples, rolloutMetrics, scoreRollout, tokenizePrompts } from "./rollout.js";
import { runControl } from "./run_state.js";
import { sampleCompletions } from "./sampling.js";
import { resolveModel, resolveTokenizer, type TrainerOptions, writeOutputExtras } from "./trainer_io.js";

export interface OnlineTrainOptions<C> extends Omit<TrainerOptions<C>, "model"> {
  /** The policy: a model object, a LoraModel whose adapters train, or an HF folder. */
  model: CausalLM | LoraModel<CausalLM> | string;
  /** Rule (or any) reward functions; weights: config rewardWeights, in the order functions, reward model, PRM, judge. */
  rewardFuncs?: RewardFn[];
  /** A reward model (SequenceClassifier, num_labels 1) with its tokenizer (default: the policy's). */
  rewardModel?: SequenceClassifier | null;
  rewardModelTokenizer?: Tokenizer;
  /** A process reward model (or any step scorer), aggregated over the completion's steps (min). */
  prm?: StepScorer | null;
  /** An LLM judge that names the first wrong step (reward 1 when it finds none). */
  judge?: JudgeFn | null;
  /** Explicit frozen reference (default: the base under LoRA, else a frozen copy). */
  refModel?: CausalLM;
  /** Multi-turn rollouts with this environment (its tokens are masked out of every loss). */
  environment?: Environment | null;
  /** Extra evaluation, merged with the held-out reward under an `eval_` prefix. */
  evaluate?: () => Metrics | Promise<Metrics>;
  onMicroBatch?: (batch: GenerationBatch, rows: number[], out: MicroLoss) => void;
  onBatch?: (batch: GenerationBatch) => void;
}

export interface OnlineTrainResult<C> {
  model: CausalLM | LoraModel<CausalLM>;
  config: C;
  run: RunResult;
}

/** How a trainer uses the shared entry point. */
export interface OnlineTrainSpec {
  /** prompt_only (RL) or prompt_completion (SPIN's chosen, GKD's data completions). */
  dataKind: PromptDataKind;
  /** Whether the reward mix is needed (and so evalData means held-out reward). */
  scored: boolean;
  /** Why evalData cannot be used by this trainer (null: held-out reward is evaluated). */
  evalUnsupported?: string | null;
  /** Files the algorithm adds to the output folder (PPO's value model). */
  saveExtras?: (dir: string) => string[];
  /** Reward functions the trainer adds after the user's sources (GRPO's overlong punishment). */
  extraRewards?: RewardFn[];
}

/** How many reward sources the options give (functions, reward model, PRM, judge). */
export function rewardSourceCount(o: Pick<OnlineTrainOptions<unknown>, "rewardFuncs" | "rewardModel" | "prm" | "judge">): number {
  return (o.rewardFuncs?.length ?? 0) + (o.rewardModel ? 1 : 0) + (o.prm ? 1 : 0) + (o.judge ? 1 : 0);
}

/** Every reward source as one list of reward functions (the order rewardWeights follows). */
export function rewardMix(
  o: Pick<OnlineTrainOptions<unknown>, "rewardFuncs" | "rewardModel" | "rewardModelTokenizer" | "prm" | "judge">,
  tok: Tokenizer,
): RewardFn[] {
  const fns = [...(o.rewardFuncs ?? [])];
  if (o.rewardModel) fns.push(rewardModelReward(o.rewardModel, o.rewardModelTokenizer ?? tok));
  if (o.prm) fns.push(stepScorerReward(o.prm));
  if (o.judge) fns.push(judgeReward(o.judge));
  return fns;
}

/** Resolve, run, save: the body of every train<Online>() function. */
export async function trainOnline<C extends OnlineConfig, S>(
  opts: OnlineTrainOptions<C>,
  cfg: C,
  algorithm: OnlineAlgorithm<C, S>,
  spec: OnlineTrainSpec,
): Promise<OnlineTrainResult<C>> {
  const label = algorithm.label;
  // a folder is loaded onto the current backend; a model object is moved there in place (as HF's Trainer does)
  const model = typeof opts.model === "string" ? await resolveModel(opts.model) : opts.model.to();
  const tok = resolveTokenizer(opts.tokenizer, opts.model, label);
  const base = model instanceof LoraModel ? model.base : model;
  checkTokenizerFitsModel(tok, base.config.vocabSize, label);
  const rewardFuncs = spec.scored ? [...rewardMix(opts, tok), ...(spec.extraRewards ?? [])] : [];
  if (spec.scored && rewardFuncs.length === 0) {
    throw new RewardError(`[${label}] give reward functions, a reward model, a PRM or a judge`);
  }
  if (cfg.rewardWeights !== null && cfg.rewardWeights.length !== rewardFuncs.length) {
    throw new ConfigError(`[${label}] rewardWeights has ${cfg.rewardWeights.length} entries for ${rewardFuncs.length} reward sources`);
  }
  const prompts = tokenizePrompts(tok, opts.data, cfg.maxPromptLength, label, spec.dataKind);
  let heldOut: ((step: number) => Promise<Metrics>) | undefined;
  if (opts.evalData !== undefined && opts.evalData !== null) {
    if (spec.evalUnsupported) throw new ConfigError(`[${label}] evalData is not supported: ${spec.evalUnsupported}`);
    const evalPrompts = tokenizePrompts(tok, opts.evalData, cfg.maxPromptLength, `${label} eval`, "prompt_only");
    const n = cfg.evalNumGenerations ?? algorithm.numGenerations(cfg);
    heldOut = async (step) => {
      // the held-out reward of fresh samples from the local policy; its own seeded stream, so training is untouched
      const rows = evalPrompts.flatMap((p) => Array.from({ length: n }, () => p));
      const samples = await sampleCompletions(
        { kind: "local", model: base },
        rows.map((p) => p.promptIds),
        { ...cfg, rng: new Rng(cfg.seed * 7919 + 104729 + step), tokenizer: tok, environment: opts.environment ?? null },
        rows.map((p) => ({ prompt: p.promptText, columns: p.columns })),
      );
      const rollout = rolloutFromSamples(evalPrompts, n, samples);
      const m = rolloutMetrics(rollout, await scoreRollout(rollout, rewardFuncs, cfg.rewardWeights, cfg.missingEosPenalty));
      const keep = Object.entries(m).filter(([k]) => k.startsWith("reward") || k === "completions/mean_length");
      const extra = opts.evaluate ? await opts.evaluate() : {};
      return { ...Object.fromEntries(keep), ...extra };
    };
  }
  const resolved = { trainer: label, ...(opts.extraConfig ?? {}), ...cfg };
  const outputDir = opts.outputDir ?? null;
  const run = await runOnline({
    model,
    tokenizer: tok,
    prompts,
    rewardFuncs,
    config: cfg,
    algorithm,
    refModel: opts.refModel,
    environment: opts.environment ?? null,
    outputDir,
    ...runControl(opts),
    fullConfig: resolved,
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
    evaluate: heldOut ?? (opts.evaluate ? () => (opts.evaluate as () => Metrics | Promise<Metrics>)() : undefined),
    onMicroBatch: opts.onMicroBatch,
    onBatch: opts.onBatch,
  });
  if (outputDir !== null && !run.interrupted) {
    if (model instanceof LoraModel) saveLoraAdapter(model, outputDir);
    else saveCausalLM(model, outputDir);
    writeOutputExtras(outputDir, tok, resolved);
    spec.saveExtras?.(outputDir);
  }
  return { model, config: cfg, run };
}
