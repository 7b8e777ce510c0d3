// One `nexus` subcommand from one strict zod schema: every field becomes a kebab-case flag (help text = its
// `.describe()` and default, parser = its kind), plus `--config FILE` and the GLOBAL_OPTIONS. Precedence:
// schema defaults < config file < flags. A field without a default is required. Unknown flags and config keys
// are errors with a did-you-mean (TRL spellings too); a bad value names the flag, or the file and the key as
// written. Not here: what a command does (its action), the trainers' common paths (train_command.ts).

import { Command, Option } from "commander";
import { z } from "zod";
import { ConfigError } from "../train/config.js";
import { type ConfigFileEntry, readConfigEntries } from "./config_file.js";
import { coerceFileValue, describeDefault, type FieldInfo, fieldInfo, kebabCase, parseFieldText } from "./fields.js";
import { ESCAPED_FIELDS, GLOBAL_OPTIONS, type GlobalOption, type GlobalValues } from "./shared_options.js";
import { flagSuggestion, keySuggestion } from "./suggest.js";

/** What an action receives besides its options. */
export interface CommandRun {
  /** `nexus` command path, e.g. "search bon". */
  name: string;
  /** Whether an option was set by a flag or the config file (not its default). */
  given: (field: string) => boolean;
  globals: GlobalValues;
  /** The --config file, or null. */
  configFile: string | null;
}

export interface CommandSpec<S extends z.ZodObject> {
  /** Subcommand name (`nexus <parent> <name>`). */
  name: string;
  description: string;
  /** Strict object schema of every option; a field with no default (and not nullable/optional) is required. */
  schema: S;
  /** Cross-field rules: an error message or null. */
  rules?: ((o: z.output<S>) => string | null)[];
  /** Other names of options (camelCase → field) accepted as config-file keys (TRL spellings); as flags, a did-you-mean. */
  aliases?: Readonly<Record<string, string>>;
  /** What to say about a flag this command does not have (camelCase name → a field to suggest, or a sentence). */
  hints?: Readonly<Record<string, string>>;
  /** Help text after the options (data format, examples). */
  epilog?: string;
  action: (opts: z.output<S>, run: CommandRun) => void | Promise<void>;
}

/** Placeholders in help by option name; lists show `<a,b>`, everything else `<value>`. */
const METAVARS: Readonly<Record<string, string>> = Object.freeze({
  config: "file",
  model: "dir",
  tokenizer: "dir",
  data: "file",
  evalData: "file",
  output: "path",
  prmModel: "dir",
  teacher: "dir",
  rewardModel: "dir",
  valueModel: "dir",
});

/** A commander Command whose unknown-option error suggests the option meant (TRL spellings, hints, typos). */
export class NexusCommand extends Command {
  /** camelCase names of this command's options. */
  readonly known = new Set<string>();
  hints: Readonly<Record<string, string>> = {};

  override createCommand(name?: string): Command {
    return new NexusCommand(name);
  }

  // Overrides commander's (untyped) handler to add our suggestions.
  unknownOption(flag: string): never {
    const bare = flag.split("=")[0]!;
    const hint = bare.startsWith("--") ? flagSuggestion(bare, this.known, this.hints) : "";
    this.error(`error: unknown option '${bare}'${hint}`, { code: "commander.unknownOption", exitCode: 1 });
  }
}

/** Error of a command's options (bad value, missing required option, unknown config key). */
export class OptionsError extends ConfigError {}

function addField(cmd: NexusCommand, key: string, field: z.ZodType): void {
  const info = fieldInfo(field);
  const flag = kebabCase(key);
  const doc = `${info.description}${info.choices !== undefined ? ` [${info.choices.join(" | ")}]` : ""}${describeDefault(info)}`;
  cmd.known.add(key);
  if (info.kind === "boolean") {
    cmd.addOption(new Option(`--${flag}`, doc));
    cmd.addOption(new Option(`--no-${flag}`, `set --${flag} to false`).hideHelp(info.defaultValue === false));
    return;
  }
  const list = info.kind === "enumList" || info.kind === "numberList" || info.kind === "stringList";
  const metavar = list ? "a,b" : info.kind === "stringRecord" ? "name=value" : (METAVARS[key] ?? "value");
  const opt = new Option(`--${flag} <${metavar}>`, doc);
  const escapes = ESCAPED_FIELDS.has(key);
  if (info.kind === "stringRecord") {
    // repeatable: each `--x name=value` adds one entry
    opt.argParser((raw: string, prev: unknown) => ({
      ...((prev as Record<string, string> | undefined) ?? {}),
      ...(parseFieldText(info, raw) as Record<string, string>),
    }));
  } else opt.argParser((raw: string) => parseFieldText(info, raw, escapes));
  cmd.addOption(opt);
}

/** Register `<parent> <spec.name>` with one flag per schema field, --config and the global flags. */
export function registerSchemaCommand<S extends z.ZodObject>(parent: Command, spec: CommandSpec<S>): NexusCommand {
  const cmd = new NexusCommand(spec.name);
  cmd.copyInheritedSettings(parent);
  parent.addCommand(cmd);
  cmd.description(spec.description).allowUnknownOption(false).allowExcessArguments(false);
  cmd.hints = { ...spec.hints, ...Object.fromEntries(Object.entries(spec.aliases ?? {}).map(([a, f]) => [a, f])) };
  const shape = spec.schema.shape as Record<string, z.ZodType>;
  for (const key of Object.keys(shape)) {
    if (key === "config" || key in GLOBAL_OPTIONS) throw new Error(`[cli ${spec.name}] option '${key}' clashes with a global option`);
  }
  cmd.addOption(new Option("--config <file>", "YAML or JSON file of these options (snake_case or camelCase keys); flags override it"));
  cmd.known.add("config");
  for (const [key, field] of Object.entries(shape)) addField(cmd, key, field);
  for (const [key, g] of Object.entries(GLOBAL_OPTIONS) as [string, GlobalOption][]) addField(cmd, key, g.field);
  if (spec.epilog !== undefined) cmd.addHelpText("after", `\n${spec.epilog}`);
  const path = commandPath(cmd);
  cmd.action(async (_: unknown, self: Command) => {
    const flags = self.opts() as Record<string, unknown>;
    const r = resolveCommandOptions({ ...spec, name: path }, flags, (k) => self.getOptionValueSource(k) === "cli");
    for (const [key, g] of Object.entries(GLOBAL_OPTIONS) as [string, GlobalOption][]) {
      g.apply((r.globals as Record<string, unknown>)[key] as never, r.given(key));
    }
    await spec.action(r.values, { name: path, given: r.given, globals: r.globals, configFile: r.configFile });
  });
  return cmd;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

export interface ResolvedOptions<T> {
  values: T;
  globals: GlobalValues;
  given: (field: string) => boolean;
  configFile: string | null;
}

/**
 * Merge schema defaults < config file < flags and validate (exported for tests and for code that wants the
 * CLI's precedence without commander). `flagGiven(k)` says whether option k was on the command line.
 */
export function resolveCommandOptions<S extends z.ZodObject>(
  spec: Pick<CommandSpec<S>, "name" | "schema" | "rules" | "aliases" | "hints">,
  flags: Record<string, unknown>,
  flagGiven: (key: string) => boolean = (k) => flags[k] !== undefined,
): ResolvedOptions<z.output<S>> {
  const where = `[${spec.name}]`;
  const shape = spec.schema.shape as Record<string, z.ZodType>;
  const globalShape = Object.fromEntries(Object.entries(GLOBAL_OPTIONS).map(([k, g]) => [k, g.field]));
  const configFile = typeof flags.config === "string" ? flags.config : null;
  const values: Record<string, unknown> = {};
  const globals: Record<string, unknown> = {};
  const fromFile = new Map<string, ConfigFileEntry>();
  if (configFile !== null) {
    const known = new Set([...Object.keys(shape), ...Object.keys(globalShape)]);
    for (const e of readConfigEntries(configFile)) {
      const field = spec.aliases?.[e.field] ?? e.field;
      const target = field in shape ? values : field in globalShape ? globals : null;
      if (target === null || field === "config") {
        throw new OptionsError(
          `${where} ${configFile}: unknown key '${e.key}'${keySuggestion(e.key, known, { ...spec.hints, ...spec.aliases })}`,
        );
      }
      const info = fieldInfo((shape[field] ?? globalShape[field]) as z.ZodType);
      try {
        target[field] = coerceFileValue(info, e.value);
      } catch (err) {
        throw new OptionsError(`${where} ${configFile}: '${e.key}': ${(err as Error).message}`);
      }
      fromFile.set(field, e);
    }
  }
  for (const key of Object.keys(shape)) if (flagGiven(key) && flags[key] !== undefined) values[key] = flags[key];
  for (const key of Object.keys(globalShape)) if (flagGiven(key) && flags[key] !== undefined) globals[key] = flags[key];
  const given = (k: string) => (flagGiven(k) && flags[k] !== undefined) || fromFile.has(k);
  const source = (k: string) => {
    if (flagGiven(k) && flags[k] !== undefined) return `--${kebabCase(k)}`;
    const e = fromFile.get(k);
    return e !== undefined ? `${configFile}: '${e.key}'` : `--${kebabCase(k)}`;
  };
  for (const [key, field] of Object.entries(shape)) {
    const info: FieldInfo = fieldInfo(field);
    if (info.required && values[key] === undefined) {
      throw new OptionsError(`${where} --${kebabCase(key)} is required (or '${key}' in a --config file)`);
    }
  }
  const parse = <T extends z.ZodObject>(schema: T, input: Record<string, unknown>): z.output<T> => {
    const r = schema.safeParse(input);
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    const key = String(issue.path[0] ?? "");
    const at = issue.path.length > 1 ? ` (item ${issue.path.slice(1).join(".")})` : "";
    throw new OptionsError(`${where} ${key === "" ? "" : `${source(key)}${at}: `}${issue.message}`);
  };
  const out = parse(spec.schema, values);
  const globalOut = parse(z.object(globalShape).strict(), globals) as GlobalValues;
  for (const rule of spec.rules ?? []) {
    const msg = rule(out);
    if (msg !== null) throw new OptionsError(`${where} ${msg}`);
  }
  return { values: out, globals: globalOut, given, configFile };
}
