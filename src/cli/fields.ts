// What a zod field looks like on the command line: its kind (number, enum, list, ...), default, description, and
// the one parser that turns a flag's text (or a config file's string) into a value of that kind. Lists accept
// `a,b` and JSON (`[1, 0.5]`) alike; enums and enum lists name the valid values when given another.
// Not here: registering options (schema_command.ts) or validation beyond the kind (zod does that).

import { InvalidArgumentError } from "commander";
import type { z } from "zod";

export type FieldKind =
  | "number"
  | "int"
  | "boolean"
  | "string"
  | "enum"
  | "enumList"
  | "numberList"
  | "stringList"
  | "stringRecord"
  | "json";

export interface FieldInfo {
  kind: FieldKind;
  /** Valid values of an enum or enum list. */
  choices?: string[];
  nullable: boolean;
  hasDefault: boolean;
  defaultValue: unknown;
  /** No default and not optional: the command needs it. */
  required: boolean;
  description: string;
}

// biome-ignore lint/suspicious/noExplicitAny: zod's internal def is untyped across wrapper kinds
type AnyDef = any;

/** camelCase → kebab-case (`learningRate` → `learning-rate`). */
export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** kebab-case or snake_case → camelCase. */
export function camelCase(name: string): string {
  return name.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

interface Unwrapped {
  inner: AnyDef;
  nullable: boolean;
  hasDefault: boolean;
  defaultValue: unknown;
  optional: boolean;
  /** The outermost description (a wrapper made by .nullable() or .default() does not inherit it). */
  description: string;
}

function unwrap(field: z.ZodType): Unwrapped {
  let cur: AnyDef = field;
  let description = "";
  let nullable = false;
  let optional = false;
  let hasDefault = false;
  let defaultValue: unknown;
  for (let i = 0; i < 10; i++) {
    if (description === "" && typeof cur.description === "string") description = cur.description;
    const t = cur.def.type;
    if (t === "default" || t === "prefault") {
      if (!hasDefault) {
        hasDefault = true;
        defaultValue = typeof cur.def.defaultValue === "function" ? cur.def.defaultValue() : cur.def.defaultValue;
      }
      cur = cur.def.innerType;
    } else if (t === "optional" || t === "nullable") {
      if (t === "nullable") nullable = true;
      else optional = true;
      cur = cur.def.innerType;
    } else if (t === "pipe") cur = cur.def.in;
    else break;
  }
  if (description === "" && typeof cur.description === "string") description = cur.description;
  return { inner: cur, nullable, hasDefault, defaultValue, optional, description };
}

function enumValues(def: AnyDef): string[] | null {
  if (def.def.type === "enum") return (def.options as unknown[]).map(String);
  if (def.def.type === "literal") return (def.def.values as unknown[]).map(String);
  return null;
}

function baseKind(d: AnyDef): { kind: FieldKind; choices?: string[] } {
  const t = d.def.type;
  if (t === "number") return { kind: d.isInt || d.format === "safeint" || d.format === "int32" ? "int" : "number" };
  if (t === "boolean") return { kind: "boolean" };
  if (t === "string") return { kind: "string" };
  const values = enumValues(d);
  if (values !== null) return { kind: "enum", choices: values };
  if (t === "array") {
    const el = unwrap(d.def.element).inner;
    const choices = enumValues(el);
    if (choices !== null) return { kind: "enumList", choices };
    if (el.def.type === "number") return { kind: "numberList" };
    if (el.def.type === "string") return { kind: "stringList" };
    return { kind: "json" };
  }
  if (t === "tuple" && (d.def.items as AnyDef[]).every((x) => unwrap(x).inner.def.type === "number")) return { kind: "numberList" };
  if (t === "record" && unwrap(d.def.valueType).inner.def.type === "string") return { kind: "stringRecord" };
  if (t === "union") {
    // `a | a[]` (TRL's "one loss type or a list"): the list kind, which also accepts one value.
    const kinds = (d.def.options as AnyDef[]).map((o) => baseKind(unwrap(o).inner));
    const list = kinds.find((k) => k.kind === "enumList" || k.kind === "numberList" || k.kind === "stringList");
    if (list !== undefined) return list;
    const en = kinds.filter((k) => k.kind === "enum");
    if (en.length === kinds.length) return { kind: "enum", choices: en.flatMap((k) => k.choices ?? []) };
  }
  return { kind: "json" };
}

/** Read a field's kind, default and description through default/optional/nullable wrappers. */
export function fieldInfo(field: z.ZodType): FieldInfo {
  const u = unwrap(field);
  const { kind, choices } = baseKind(u.inner);
  const description = u.description;
  return {
    kind,
    choices,
    nullable: u.nullable,
    hasDefault: u.hasDefault,
    defaultValue: u.defaultValue,
    required: !u.hasDefault && !u.optional && !u.nullable,
    description,
  };
}

/** "\n", "\t", "\r" and "\\" written literally on a command line become the characters. */
export function unescapeText(raw: string): string {
  return raw.replace(/\\(n|t|r|\\)/g, (_, c: string) => ({ n: "\n", t: "\t", r: "\r", "\\": "\\" })[c]!);
}

const isNull = (raw: string) => raw === "null" || raw === "none";

function parseNumberText(raw: string, int: boolean): number {
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) throw new InvalidArgumentError(`expected a number, got '${raw}'`);
  if (int && !Number.isInteger(v)) throw new InvalidArgumentError(`expected an integer, got '${raw}'`);
  return v;
}

function checkChoice(v: unknown, choices: readonly string[]): string {
  const s = String(v);
  if (!choices.includes(s)) throw new InvalidArgumentError(`'${s}' is not one of ${choices.join(", ")}`);
  return s;
}

/** `a,b` or a JSON list → the list's items as written (strings, or JSON values). */
function listItems(raw: string): unknown[] {
  const t = raw.trim();
  if (t.startsWith("[")) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new InvalidArgumentError(`'${raw}' is not a JSON list (${(e as Error).message})`);
    }
    if (!Array.isArray(v)) throw new InvalidArgumentError(`'${raw}' is not a list`);
    return v;
  }
  return t === "" ? [] : t.split(",").map((s) => s.trim());
}

/**
 * Parse one flag's text for a field of `info`'s kind; `escapes` turns `\n` into a newline (separators).
 * Throws commander's InvalidArgumentError with the reason (the caller names the flag or the key).
 */
export function parseFieldText(info: FieldInfo, raw: string, escapes = false): unknown {
  if (info.nullable && isNull(raw) && info.kind !== "boolean") return null;
  switch (info.kind) {
    case "number":
    case "int":
      return parseNumberText(raw, info.kind === "int");
    case "boolean":
      if (raw === "true" || raw === "1") return true;
      if (raw === "false" || raw === "0") return false;
      throw new InvalidArgumentError(`expected true or false, got '${raw}'`);
    case "string":
      return escapes ? unescapeText(raw) : raw;
    case "enum":
      return checkChoice(raw, info.choices ?? []);
    case "enumList":
      return listItems(raw).map((x) => checkChoice(x, info.choices ?? []));
    case "numberList":
      return listItems(raw).map((x) => (typeof x === "number" ? x : parseNumberText(String(x), false)));
    case "stringList":
      return listItems(raw).map(String);
    case "stringRecord": {
      const t = raw.trim();
      if (t.startsWith("{")) {
        try {
          return JSON.parse(t);
        } catch (e) {
          throw new InvalidArgumentError(`'${raw}' is not a JSON object (${(e as Error).message})`);
        }
      }
      const at = raw.indexOf("=");
      if (at <= 0 || at === raw.length - 1) throw new InvalidArgumentError(`expected NAME=VALUE, got '${raw}'`);
      return { [raw.slice(0, at)]: raw.slice(at + 1) };
    }
    case "json":
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
  }
}

/**
 * A config-file value for a field: YAML already typed most values; a string where a list, number or enum is
 * expected goes through the flag parser (so `loss_type: sigmoid,sft` works as on the command line).
 */
export function coerceFileValue(info: FieldInfo, v: unknown): unknown {
  if (typeof v === "string" && info.kind !== "string" && info.kind !== "json") return parseFieldText(info, v);
  if (info.kind === "enumList" && Array.isArray(v)) return v.map((x) => checkChoice(x, info.choices ?? []));
  if (info.kind === "enum" && v !== null) return checkChoice(v, info.choices ?? []);
  return v;
}

/** `(default: x)` for help, or "" when there is none. */
export function describeDefault(info: FieldInfo): string {
  if (info.required) return " (required)";
  if (!info.hasDefault) return "";
  if (info.defaultValue === null) return /\bdefault\b/.test(info.description) ? "" : " (default: none)";
  return ` (default: ${JSON.stringify(info.defaultValue)})`;
}
