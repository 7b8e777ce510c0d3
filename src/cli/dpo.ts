// `nexus dpo`: DPO on a preference JSONL ({prompt?, chosen, rejected}) from an HF model folder, through the
// shared trainer CLI (train_command.ts: --config/--model/--data/--output/--resume + one flag per config field).
// Also holds the load/train/save plumbing the other preference commands (kto, orpo, cpo) reuse.
// Not here: any training logic (src/train/dpo.ts).

import type { Command } from "commander";
import type { z } from "zod";
import { type DatasetKind, loadDataset, type RowOf } from "../data/formats.js";
import { checkTokenizerFitsModel, loadTokenizer, saveTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { type CausalLM, loadCausalLM, saveCausalLM } from "../models/causal_lm.js";
import { DPO_RULES, DPO_SCHEMA, trainDpo } from "../train/dpo.js";
import { registerTrainCommand, type TrainCommandContext, writeResolvedConfig } from "./train_command.js";

export interface PreferenceRunInputs<K extends DatasetKind> {
  model: CausalLM;
  tokenizer: Tokenizer;
  rows: RowOf<K>[];
  /** --eval-data rows (same format), or null. */
  evalRows: RowOf<K>[] | null;
}

/** Load model, tokenizer and rows; train; save the final model and tokenizer into the output folder. */
export async function runPreferenceCommand<K extends DatasetKind, C>(
  ctx: TrainCommandContext<C>,
  kind: K,
  train: (inputs: PreferenceRunInputs<K>) => Promise<unknown>,
): Promise<void> {
  const model = await loadCausalLM(ctx.model);
  const tokenizer = loadTokenizer(ctx.tokenizer);
  checkTokenizerFitsModel(tokenizer, model.config.vocabSize, ctx.model);
  const rows = loadDataset(ctx.data, kind, { name: ctx.data });
  const evalRows = ctx.evalData === null ? null : loadDataset(ctx.evalData, kind, { name: ctx.evalData });
  writeResolvedConfig(ctx.output, ctx.resolved);
  await train({ model, tokenizer, rows, evalRows });
  saveCausalLM(model, ctx.output);
  saveTokenizer(tokenizer, ctx.output);
}

/** The data paths named in errors. */
export function sources(ctx: TrainCommandContext<unknown>): { source: string; evalSource?: string } {
  return ctx.evalData === null ? { source: ctx.data } : { source: ctx.data, evalSource: ctx.evalData };
}

export function registerDpo(program: Command): Command {
  return registerTrainCommand(program, {
    name: "dpo",
    description: "Direct Preference Optimization on {prompt?, chosen, rejected} rows (TRL DPOTrainer)",
    schema: DPO_SCHEMA,
    rules: DPO_RULES,
    evalData: true,
    action: (ctx: TrainCommandContext<z.output<typeof DPO_SCHEMA>>) =>
      runPreferenceCommand(ctx, "preference", ({ model, tokenizer, rows, evalRows }) =>
        trainDpo({ model, tokenizer, rows, evalRows, config: ctx.config, outputDir: ctx.output, ...ctx.control, ...sources(ctx) }),
      ),
  });
}
