// What every offline trainer's entry point shares around the loop: the options a `train<Method>()` call
// takes (a model object or folder, a tokenizer object or folder, rows or a JSONL path), resolving them, and
// writing the output folder (final model, tokenizer, resolved config). Not here: losses, batching, the loop.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { loadTokenizer, saveTokenizer, type Tokenizer } from "../io/tokenizer.js";
import { type CausalLM, loadCausalLM } from "../models/causal_lm.js";
import { resolveConfig } from "./config.js";
import type { RunControl } from "./run_state.js";

export interface TrainerOptions<C> extends RunControl {
  /** A model object (trained in place) or an HF model folder. */
  model: CausalLM | string;
  /** A tokenizer, or a folder; defaults to the model folder. */
  tokenizer?: Tokenizer | string;
  /** Training rows in memory, or a JSONL path. */
  data: string | readonly unknown[];
  /** Evaluation rows or a JSONL path. */
  evalData?: string | readonly unknown[] | null;
  /** Config values (camelCase); unknown keys are errors, missing ones take the method's defaults. */
  config?: Partial<C> | Record<string, unknown>;
  /** Checkpoints, metrics.jsonl and the final model go here; null (default) trains in memory only. */
  outputDir?: string | null;
  /** No progress lines on stderr. */
  quiet?: boolean;
  /** Stop after this optimizer step as if interrupted (tests of resume). */
  stopAfterStep?: number;
  /** Extra entries for the config written next to checkpoints (the CLI's paths). */
  extraConfig?: Record<string, unknown>;
}

/** A model folder loaded onto the current backend, or a model object moved there (in place) as HF's Trainer does. */
export async function resolveModel(model: CausalLM | string): Promise<CausalLM> {
  return typeof model === "string" ? await loadCausalLM(model) : model.to();
}

/** A tokenizer object as given, or loaded from its folder, or from the model's folder (`model` when it is a path). */
export function resolveTokenizer(tok: Tokenizer | string | undefined, model: unknown, where: string): Tokenizer {
  if (tok !== undefined && typeof tok !== "string") return tok;
  const dir = tok ?? (typeof model === "string" ? model : null);
  if (dir === null)
    throw new Error(`[${where}] pass a tokenizer (the model was given as an object, so there is no folder to load one from)`);
  return loadTokenizer(dir);
}

export function resolveTrainerConfig<S extends z.ZodObject>(
  where: string,
  schema: S,
  input: Record<string, unknown> | undefined,
  rules: ((c: z.output<S>) => string | null)[] = [],
): z.output<S> {
  return resolveConfig(where, schema, input ?? {}, rules);
}

/** Tokenizer files and the resolved config into the output folder (the model files are the trainer's). */
export function writeOutputExtras(dir: string, tok: Tokenizer, resolved: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  saveTokenizer(tok, dir);
  writeFileSync(join(dir, "training_config.json"), `${JSON.stringify(resolved, null, 2)}\n`);
}
