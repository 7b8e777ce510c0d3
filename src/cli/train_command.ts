// The shared CLI of every trainer: TRAIN_COMMAND_FIELDS (model, data, output, ... : add a flag every trainer has
// there) plus the trainer's strict zod config schema, registered through schema_command.ts (flags, --config,
// help, did-you-mean). The action receives the resolved method config and the run's paths.
// Not here: any training; flag parsing rules (schema_command.ts, fields.ts).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Command, CommanderError } from "commander";
import { z } from "zod";
import { ConfigError, resolveConfig } from "../train/config.js";
import { prepareOutputDir } from "../train/output_dir.js";
import { type RunControl, TrainingInterrupted } from "../train/run_state.js";
import { cliErr } from "./output.js";
import { type CommandRun, registerSchemaCommand, resolveCommandOptions } from "./schema_command.js";
import { GLOBAL_OPTIONS, SHARED } from "./shared_options.js";

export { fieldInfo, kebabCase } from "./fields.js";

/** Options every trainer command has besides its method config. */
export const TRAIN_COMMAND_FIELDS = {
  model: SHARED.model.describe("model folder to start from (HF layout: config.json + safetensors + tokenizer)"),
  tokenizer: SHARED.tokenizer,
  data: SHARED.data.describe("training data, JSONL"),
  output: z.string().describe("output folder: checkpoints, metrics.jsonl, final model"),
  resume: z.boolean().default(false).describe("continue from the newest good checkpoint in --output (the config must match)"),
  overwrite: z.boolean().default(false).describe("replace another run in --output (removes only the files Nexus wrote there)"),
  allowConfigChange: z
    .boolean()
    .default(false)
    .describe("with --resume: continue although the config differs from the checkpoint's (the changed keys are printed)"),
};

/** Held-out data, for trainers that evaluate (TrainCommandSpec.evalData). */
const EVAL_DATA_FIELD = {
  evalData: z.string().nullable().default(null).describe("held-out data, JSONL: evaluated every evalSteps and at the end"),
};

/** TRL's names for the path options, accepted as config-file keys. */
const TRAIN_ALIASES = {
  modelNameOrPath: "model",
  outputDir: "output",
  datasetPath: "data",
  datasetName: "data",
  overwriteOutputDir: "overwrite",
} as const;

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
  /** Evaluation data (JSONL), or null (always null for a trainer without `evalData`). */
  evalData: string | null;
  /** Output folder: checkpoints, metrics.jsonl, final model. */
  output: string;
  /** Continue from the newest checkpoint in `output`. */
  resume: boolean;
  /** Replace another run in `output` (the command clears it before the action runs). */
  overwrite: boolean;
  /** Resume although the config differs from the checkpoint's. */
  allowConfigChange: boolean;
  /** What the trainer's options take (spread it in): resume, allowConfigChange and the Ctrl-C signal. */
  control: RunControl;
  /** Everything resolved (paths + config), as written to `training_config.json`. */
  resolved: Record<string, unknown>;
  /** Which options were set by flag or config file, the global flags, the config file. */
  run?: CommandRun;
}

export interface TrainCommandSpec<S extends z.ZodObject> {
  /** Subcommand name: `nexus <name>`. */
  name: string;
  description: string;
  /** Strict object schema of the method's config; each field should carry `.describe()` and a default. */
  schema: S;
  /** Cross-field rules: return an error message or null. */
  rules?: ((c: z.output<S>) => string | null)[];
  /** The trainer evaluates `--eval-data` (else the flag is not offered and is refused with a reason). */
  evalData?: boolean;
  /** Other config-file names of method options (TRL spellings) → field. */
  aliases?: Readonly<Record<string, string>>;
  /** What to say about flags this trainer does not have. */
  hints?: Readonly<Record<string, string>>;
  /**
   * Fields of the method's config schema that this command does not use (a field shared by a family of trainers
   * whose value is fixed or meaningless here), each with the reason: no flag, no config-file key, and naming one
   * is refused with the reason. The trainer gets the field's default. Without `evalData`, the evaluation fields
   * (evalSteps, evalNumGenerations) are left out too.
   */
  unused?: Readonly<Record<string, string>>;
  epilog?: string;
  action: (ctx: TrainCommandContext<z.output<S>>) => void | Promise<void>;
}

type SchemaSpec<S extends z.ZodObject> = Pick<TrainCommandSpec<S>, "name" | "schema" | "evalData" | "unused">;

/** Fields of the method's schema the command leaves out, with the reason (spec.unused, and evaluation without evalData). */
function unusedFields<S extends z.ZodObject>(spec: SchemaSpec<S>): Record<string, string> {
  const shape = spec.schema.shape as Record<string, z.ZodType>;
  const out: Record<string, string> = {};
  if (!spec.evalData) {
    for (const k of ["evalSteps", "evalNumGenerations"]) if (k in shape) out[k] = "it evaluates no held-out data";
  }
  for (const [k, why] of Object.entries(spec.unused ?? {})) {
    if (!(k in shape)) throw new ConfigError(`[cli ${spec.name}] unused field '${k}' is not in the config schema`);
    out[k] = why;
  }
  return out;
}

function fullSchema<S extends z.ZodObject>(spec: SchemaSpec<S>) {
  const paths = { ...TRAIN_COMMAND_FIELDS, ...(spec.evalData ? EVAL_DATA_FIELD : {}) };
  const unused = unusedFields(spec);
  const method: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(spec.schema.shape as Record<string, z.ZodType>)) {
    if (key in paths || key === "evalData") throw new ConfigError(`[cli ${spec.name}] config field '${key}' clashes with a common flag`);
    // a config field that is also a global flag (precision) is set by that flag: the trainer gets the global's value
    if (!(key in GLOBAL_OPTIONS) && !(key in unused)) method[key] = field;
  }
  return z.object({ ...paths, ...method }).strict();
}

/** What to say about a flag or config key the command does not take: --eval-data without evaluation, unused fields. */
function trainHints<S extends z.ZodObject>(spec: SchemaSpec<S> & Pick<TrainCommandSpec<S>, "hints">): Record<string, string> {
  const unused = Object.fromEntries(
    Object.entries(unusedFields(spec)).map(([k, why]) => [k, `nexus ${spec.name} does not use it: ${why}`]),
  );
  return { ...(spec.evalData ? {} : { evalData: evalDataHint(spec.name) }), ...unused, ...spec.hints };
}

function context<S extends z.ZodObject>(
  spec: Pick<TrainCommandSpec<S>, "name" | "schema" | "rules">,
  all: Record<string, unknown>,
  run?: CommandRun,
): TrainCommandContext<z.output<S>> {
  const methodInput: Record<string, unknown> = {};
  for (const key of Object.keys(spec.schema.shape)) {
    const value = key in GLOBAL_OPTIONS ? (run?.globals as Record<string, unknown> | undefined)?.[key] : all[key];
    if (value !== undefined) methodInput[key] = value;
  }
  const config = resolveConfig(spec.name, spec.schema, methodInput, spec.rules ?? []);
  const model = all.model as string;
  const tokenizer = (all.tokenizer as string | null) ?? model;
  const evalData = (all.evalData as string | null | undefined) ?? null;
  const p = { model, tokenizer, data: all.data as string, evalData, output: all.output as string, resume: all.resume === true };
  const overwrite = all.overwrite === true;
  const allowConfigChange = all.allowConfigChange === true;
  // overwrite is done by the command before the trainer starts: the trainer sees a cleared folder
  const control: RunControl = { resume: p.resume, allowConfigChange };
  return { config, ...p, overwrite, allowConfigChange, control, resolved: { ...p, ...(config as Record<string, unknown>) }, run };
}

function evalDataHint(name: string): string {
  return `nexus ${name} does not evaluate held-out data; drop --eval-data`;
}

/** Register `nexus <name>` with the trainer options and every option of `spec.schema`; returns the subcommand. */
export function registerTrainCommand<S extends z.ZodObject>(program: Command, spec: TrainCommandSpec<S>): Command {
  const schema = fullSchema(spec);
  return registerSchemaCommand(program, {
    name: spec.name,
    description: spec.description,
    schema,
    aliases: { ...TRAIN_ALIASES, ...spec.aliases },
    hints: trainHints(spec),
    epilog: spec.epilog,
    action: async (all, run) => {
      const ctx = context(spec, all as Record<string, unknown>, run);
      // the folder is checked (and, with --overwrite, cleared) before anything is written into it
      prepareOutputDir(ctx.output, {
        label: spec.name,
        resume: ctx.resume,
        overwrite: ctx.overwrite,
        protect: [ctx.model, ctx.tokenizer, ctx.data, ctx.evalData],
      });
      await withInterrupts(spec.name, ctx, () => spec.action(ctx));
      cliErr(`[${spec.name}] saved the trained model to ${ctx.output} (with its checkpoints and metrics.jsonl)\n`);
    },
  });
}

/** The command line that resumes this one: the same arguments, --resume instead of --overwrite. */
export function resumeCommand(argv: readonly string[]): string {
  const args = argv.filter((a) => a !== "--overwrite" && a !== "--resume");
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return ["nexus", ...args.map(quote), "--resume"].join(" ");
}

/**
 * Run a training action with Ctrl-C handling: the first SIGINT/SIGTERM asks the trainer (through ctx.control.signal)
 * to write a checkpoint at the next step boundary and stop; the command then exits 130 (143 for SIGTERM) saying how
 * to resume. A second signal exits at once: checkpoints are written atomically, so none is left half-written.
 */
async function withInterrupts(name: string, ctx: TrainCommandContext<unknown>, action: () => void | Promise<void>): Promise<void> {
  const ac = new AbortController();
  ctx.control.signal = ac.signal;
  let received: NodeJS.Signals | null = null;
  const code = () => (received === "SIGTERM" ? 143 : 130);
  const onSignal = (sig: NodeJS.Signals) => {
    if (received !== null) {
      cliErr(`\n[${name}] ${sig} again: exiting now; the checkpoints already on disk are complete\n`);
      process.exit(code());
    }
    received = sig;
    cliErr(`\n[${name}] ${sig}: stopping after the current step and writing a checkpoint (press Ctrl-C again to exit at once)\n`);
    ac.abort(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await action();
  } catch (e) {
    if (!(e instanceof TrainingInterrupted)) throw e;
    const where = e.checkpoint === null ? "" : ` (checkpoint: ${e.checkpoint})`;
    cliErr(`[${name}] stopped after step ${e.step}${where}. To resume:\n  ${resumeCommand(process.argv.slice(2))}\n`);
    throw new CommanderError(code(), "nexus.interrupted", e.message);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * Merge schema defaults, the --config file and the flags into a context (exported for tests and for code
 * that wants the CLI's precedence without commander). `given(k)` says whether flag k was on the command line.
 */
export function resolveTrainCommand<S extends z.ZodObject>(
  spec: Pick<TrainCommandSpec<S>, "name" | "schema" | "rules" | "evalData" | "aliases" | "unused" | "hints">,
  opts: Record<string, unknown>,
  given: (key: string) => boolean = (k) => opts[k] !== undefined,
): TrainCommandContext<z.output<S>> {
  const schema = fullSchema(spec);
  const r = resolveCommandOptions(
    { name: spec.name, schema, aliases: { ...TRAIN_ALIASES, ...spec.aliases }, hints: trainHints(spec) },
    opts,
    given,
  );
  return context(spec, r.values as Record<string, unknown>);
}

/** Write the resolved config as `training_config.json` into a folder (the output dir; checkpoints get theirs from the loop). */
export function writeResolvedConfig(dir: string, resolved: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "training_config.json");
  writeFileSync(path, `${JSON.stringify(resolved, null, 2)}\n`);
  return path;
}
