// The shared CLI of every trainer: one commander subcommand built from the trainer's strict zod config schema.
// Common flags (--config, --model, --data, --eval-data, --output, --resume, --tokenizer) plus one kebab-case
// flag per schema field, documented from the field's `.describe()` text and default. Precedence: schema
// defaults < config file (YAML/JSON, snake_case or camelCase keys) < flags. Unknown flags and keys are errors.
// Not here: any training; the action callback receives the resolved config and paths.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { z } from "zod";
import { ConfigError, readConfigFile, resolveConfig } from "../train/config.js";

/** What a trainer's action receives: the validated config and the run's paths. */
export interface TrainCommandContext<C> {
  /** Resolved method config (schema defaults < config file < flags). */
  config: C;
  /** Model folder (HF layout) to start from. */
  model: string;
  /** Tokenizer folder; defaults to the model folder. */
  tokenizer: string;
  /** Training data (JSONL). */
  data: string;
  /** Evaluation data (JSONL), or null. */
  evalData: string | null;
  /** Output folder: checkpoints, metrics.jsonl, final model. */
  output: string;
  /** Continue from the newest checkpoint in `output`. */
  resume: boolean;
  /** Everything resolved (paths + config), as written to `training_config.json`. */
  resolved: Record<string, unknown>;
}

export interface TrainCommandSpec<S extends z.ZodObject> {
  /** Subcommand name: `nexus <name>`. */
  name: string;
  description: string;
  /** Strict object schema of the method's config; each field should carry `.describe()` and a default. */
  schema: S;
  /** Cross-field rules: return an error message or null. */
  rules?: ((c: z.output<S>) => string | null)[];
  action: (ctx: TrainCommandContext<z.output<S>>) => void | Promise<void>;
}

/** Path keys a config file may set besides the schema fields (TRL spellings accepted too). */
const PATH_KEYS: Record<string, "model" | "tokenizer" | "data" | "evalData" | "output" | "resume"> = {
  model: "model",
  modelNameOrPath: "model",
  tokenizer: "tokenizer",
  data: "data",
  datasetPath: "data",
  evalData: "evalData",
  output: "output",
  outputDir: "output",
  resume: "resume",
};

const COMMON_FLAGS = new Set(["config", "model", "tokenizer", "data", "evalData", "output", "resume"]);

/** camelCase → kebab-case (`learningRate` → `learning-rate`). */
export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

interface FieldInfo {
  kind: "number" | "int" | "boolean" | "string" | "enum" | "numberList" | "stringList" | "other";
  choices?: string[];
  nullable: boolean;
  defaultValue: unknown;
  hasDefault: boolean;
  description: string;
}

// biome-ignore lint/suspicious/noExplicitAny: zod's internal def is untyped across wrapper kinds
type AnyDef = any;

/** Read a field's base kind, default and description through default/optional/nullable wrappers. */
export function fieldInfo(field: z.ZodType): FieldInfo {
  let cur: AnyDef = field;
  let nullable = false;
  let hasDefault = false;
  let defaultValue: unknown;
  const description: string = (field as AnyDef).description ?? "";
  for (let i = 0; i < 8; i++) {
    const t = cur.def.type;
    if (t === "default" || t === "prefault") {
      if (!hasDefault) {
        hasDefault = true;
        defaultValue = cur.def.defaultValue;
      }
      cur = cur.def.innerType;
    } else if (t === "optional" || t === "nullable") {
      if (t === "nullable") nullable = true;
      cur = cur.def.innerType;
    } else break;
  }
  const t = cur.def.type;
  let kind: FieldInfo["kind"] = "other";
  let choices: string[] | undefined;
  if (t === "number") kind = cur.isInt || cur.format === "safeint" ? "int" : "number";
  else if (t === "boolean") kind = "boolean";
  else if (t === "string") kind = "string";
  else if (t === "enum") {
    kind = "enum";
    choices = (cur.options as unknown[]).map(String);
  } else if (t === "array") {
    const el = cur.def.element.def.type;
    kind = el === "number" ? "numberList" : "stringList";
  }
  return { kind, choices, nullable, defaultValue, hasDefault, description };
}

function parseNumber(flag: string, int: boolean, nullable: boolean) {
  return (raw: string): number | null => {
    if (nullable && (raw === "null" || raw === "none")) return null;
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v)) throw new InvalidArgumentError(`--${flag} expects a number, got '${raw}'`);
    if (int && !Number.isInteger(v)) throw new InvalidArgumentError(`--${flag} expects an integer, got '${raw}'`);
    return v;
  };
}

function showDefault(v: unknown): string {
  if (v === undefined) return "";
  return ` (default: ${JSON.stringify(v)})`;
}

/** Register `nexus <name>` with every option of `spec.schema`; returns the subcommand. */
export function registerTrainCommand<S extends z.ZodObject>(program: Command, spec: TrainCommandSpec<S>): Command {
  const cmd = program
    .command(spec.name)
    .description(spec.description)
    .allowUnknownOption(false)
    .allowExcessArguments(false)
    .option("--config <file>", "YAML or JSON config file (snake_case or camelCase keys); flags override it")
    .option("--model <dir>", "model folder (HF layout: config.json + safetensors)")
    .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
    .option("--data <file>", "training data, JSONL")
    .option("--eval-data <file>", "evaluation data, JSONL")
    .option("--output <dir>", "output folder: checkpoints, metrics.jsonl, final model")
    .option("--resume", "continue from the newest checkpoint in --output");

  const shape = spec.schema.shape as Record<string, z.ZodType>;
  for (const [key, field] of Object.entries(shape)) {
    if (COMMON_FLAGS.has(key)) throw new ConfigError(`[cli ${spec.name}] config field '${key}' clashes with a common flag`);
    const info = fieldInfo(field);
    const flag = kebabCase(key);
    const doc = `${info.description}${showDefault(info.defaultValue)}`;
    if (info.kind === "boolean") {
      cmd.addOption(new Option(`--${flag}`, doc));
      cmd.addOption(new Option(`--no-${flag}`, `set ${key} to false`).hideHelp(info.defaultValue === false));
      continue;
    }
    const opt = new Option(`--${flag} <value>`, doc);
    if (info.kind === "number" || info.kind === "int") opt.argParser(parseNumber(flag, info.kind === "int", info.nullable));
    else if (info.kind === "enum") opt.choices(info.choices ?? []);
    else if (info.kind === "numberList") {
      const one = parseNumber(flag, false, false);
      opt.argParser((raw: string) => raw.split(",").map((s) => one(s.trim())));
    } else if (info.kind === "stringList") opt.argParser((raw: string) => raw.split(",").map((s) => s.trim()));
    else if (info.kind === "string" && info.nullable) opt.argParser((raw: string) => (raw === "null" ? null : raw));
    else if (info.kind === "other") {
      opt.argParser((raw: string) => {
        try {
          return JSON.parse(raw);
        } catch {
          return raw;
        }
      });
    }
    cmd.addOption(opt);
  }

  cmd.action(async (opts: Record<string, unknown>, self: Command) => {
    const ctx = resolveTrainCommand(spec, opts, (k) => self.getOptionValueSource(k) === "cli");
    await spec.action(ctx);
  });
  return cmd;
}

/**
 * Merge schema defaults, the --config file and the flags into a context (exported for tests and for code
 * that wants the CLI's precedence without commander). `given(k)` says whether flag k was on the command line.
 */
export function resolveTrainCommand<S extends z.ZodObject>(
  spec: Pick<TrainCommandSpec<S>, "name" | "schema" | "rules">,
  opts: Record<string, unknown>,
  given: (key: string) => boolean = (k) => opts[k] !== undefined,
): TrainCommandContext<z.output<S>> {
  const where = spec.name;
  const fileValues = typeof opts.config === "string" ? readConfigFile(opts.config) : {};
  const paths: Record<string, unknown> = {};
  const merged: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fileValues)) {
    if (k in PATH_KEYS) paths[PATH_KEYS[k]] = v;
    else merged[k] = v;
  }
  const shape = spec.schema.shape as Record<string, z.ZodType>;
  for (const key of Object.keys(shape)) if (given(key) && opts[key] !== undefined) merged[key] = opts[key];
  for (const key of ["model", "tokenizer", "data", "evalData", "output", "resume"]) {
    if (given(key) && opts[key] !== undefined) paths[key] = opts[key];
  }
  const config = resolveConfig(where, spec.schema, merged, spec.rules ?? []);
  const need = (k: "model" | "data" | "output"): string => {
    const v = paths[k];
    if (typeof v !== "string" || v === "") throw new ConfigError(`[${where}] --${k} is required (or '${k}' in the config file)`);
    return v;
  };
  const model = need("model");
  const data = need("data");
  const output = need("output");
  const tokenizer = typeof paths.tokenizer === "string" ? paths.tokenizer : model;
  const evalData = typeof paths.evalData === "string" ? paths.evalData : null;
  const resume = paths.resume === true;
  const resolved = { model, tokenizer, data, evalData, output, resume, ...(config as Record<string, unknown>) };
  return { config, model, tokenizer, data, evalData, output, resume, resolved };
}

/** Write the resolved config as `training_config.json` into a folder (the output dir; checkpoints get theirs from the loop). */
export function writeResolvedConfig(dir: string, resolved: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "training_config.json");
  writeFileSync(path, `${JSON.stringify(resolved, null, 2)}\n`);
  return path;
}
