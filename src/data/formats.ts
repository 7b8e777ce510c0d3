// TRL dataset conventions as zod schemas, a kind detector, implicit-prompt extraction and `loadDataset`.
// Kinds: language modeling {text} | {messages}; prompt-only {prompt, ...extra}; prompt-completion; preference
// {prompt?, chosen, rejected, margin?}; unpaired preference {prompt, completion, label}; stepwise supervision
// {prompt, completions[], labels[]}. Each value is a string ("standard") or a list of {role, content} messages
// ("conversational"); one row may not mix the two. Extra columns are kept (reward functions read them).
// Not here: chat templates and tokenisation (io/tokenizer.ts), collation into tensors.

import { z } from "zod";
import { DatasetError, readJsonlWith, streamJsonl, typeName, validateRow } from "./jsonl.js";

// ---- schemas ----------------------------------------------------------------------------------------------

export const MessageSchema = z.looseObject({ role: z.string(), content: z.string() });
export type Message = z.output<typeof MessageSchema>;
export const MessagesSchema = z.array(MessageSchema);
/** A standard (string) or conversational (message list) value. */
export const TextOrMessagesSchema = z.union([z.string(), MessagesSchema]);
export type TextOrMessages = string | Message[];

const isStr = (v: unknown): boolean => typeof v === "string";

// All present text fields of a row must share one format (TRL applies one chat template to the whole row).
function sameFormat(fields: readonly string[]) {
  return (row: Record<string, unknown>, ctx: z.core.$RefinementCtx) => {
    const present = fields.filter((f) => row[f] !== undefined);
    const first = present[0];
    if (first === undefined) return;
    for (const f of present.slice(1)) {
      if (isStr(row[f]) !== isStr(row[first])) {
        const want = isStr(row[first]) ? "string" : "message list";
        ctx.addIssue({
          code: "custom",
          path: [f],
          message: `expected ${want} like "${first}", got ${isStr(row[f]) ? "string" : "message list"}`,
        });
      }
    }
  };
}

export const LanguageModelingSchema = z.union([z.looseObject({ text: z.string() }), z.looseObject({ messages: MessagesSchema })]);
export const PromptOnlySchema = z.looseObject({ prompt: TextOrMessagesSchema });
export const PromptCompletionSchema = z
  .looseObject({ prompt: TextOrMessagesSchema, completion: TextOrMessagesSchema })
  .superRefine(sameFormat(["prompt", "completion"]));
export const PreferenceSchema = z
  .looseObject({
    prompt: TextOrMessagesSchema.optional(),
    chosen: TextOrMessagesSchema,
    rejected: TextOrMessagesSchema,
    margin: z.number().optional(),
  })
  .superRefine(sameFormat(["prompt", "chosen", "rejected"]));
export const UnpairedPreferenceSchema = z
  .looseObject({ prompt: TextOrMessagesSchema, completion: TextOrMessagesSchema, label: z.boolean() })
  .superRefine(sameFormat(["prompt", "completion"]));
export const StepwiseSupervisionSchema = z
  .looseObject({ prompt: z.string(), completions: z.array(z.string()).min(1), labels: z.array(z.boolean()) })
  .superRefine((row, ctx) => {
    if (row.labels.length !== row.completions.length) {
      ctx.addIssue({
        code: "custom",
        path: ["labels"],
        message: `expected ${row.completions.length} labels (one per completion), got ${row.labels.length}`,
      });
    }
  });

export type LanguageModelingRow = z.output<typeof LanguageModelingSchema>;
export type PromptOnlyRow = z.output<typeof PromptOnlySchema>;
export type PromptCompletionRow = z.output<typeof PromptCompletionSchema>;
export type PreferenceRow = z.output<typeof PreferenceSchema>;
export type UnpairedPreferenceRow = z.output<typeof UnpairedPreferenceSchema>;
export type StepwiseSupervisionRow = z.output<typeof StepwiseSupervisionSchema>;

export const DATASET_SCHEMAS = Object.freeze({
  language_modeling: LanguageModelingSchema,
  prompt_only: PromptOnlySchema,
  prompt_completion: PromptCompletionSchema,
  preference: PreferenceSchema,
  unpaired_preference: UnpairedPreferenceSchema,
  stepwise_supervision: StepwiseSupervisionSchema,
});
export type DatasetKind = keyof typeof DATASET_SCHEMAS;
export type RowOf<K extends DatasetKind> = z.output<(typeof DATASET_SCHEMAS)[K]>;
export const DATASET_KINDS = Object.freeze(Object.keys(DATASET_SCHEMAS) as DatasetKind[]);

// ---- detection --------------------------------------------------------------------------------------------

/** The dataset kind implied by a row's keys (TRL's key sets), or null if none fits. Checks keys, not types. */
export function detectKind(row: Record<string, unknown>): DatasetKind | null {
  const has = (k: string) => row[k] !== undefined;
  if (has("completions") && has("labels")) return "stepwise_supervision";
  if (has("chosen") && has("rejected")) return "preference";
  if (has("prompt") && has("completion") && has("label")) return "unpaired_preference";
  if (has("prompt") && has("completion")) return "prompt_completion";
  if (has("text") || has("messages")) return "language_modeling";
  if (has("prompt")) return "prompt_only";
  return null;
}

/** True when the row's text fields are message lists (TRL `is_conversational`). */
export function isConversational(row: Record<string, unknown>): boolean {
  for (const k of ["prompt", "chosen", "rejected", "completion", "messages"]) {
    const v = row[k];
    if (v === undefined) continue;
    return Array.isArray(v) && v.length > 0 && typeof v[0] === "object" && v[0] !== null && "role" in v[0] && "content" in v[0];
  }
  return false;
}

// ---- implicit prompts -------------------------------------------------------------------------------------

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * Split an implicit-prompt preference pair into {prompt, chosen, rejected}, as TRL `extract_prompt`: the prompt is
 * the common prefix (characters for strings, whole messages for message lists) up to the first difference; when
 * the prefix ends with a space, the space goes to the completions (`"The sky is| blue."`). Like TRL, when one
 * value is a prefix of the other the loop runs out and the prompt stops one element short of the shorter one.
 * Differs from TRL: a difference at index 0 gives an empty prompt (TRL's `chosen[idx - 1]` wraps to the last
 * element there), and empty inputs throw instead of raising UnboundLocalError.
 */
export function extractPrompt<T extends TextOrMessages>(chosen: T, rejected: T): { prompt: T; chosen: T; rejected: T } {
  if ((typeof chosen === "string") !== (typeof rejected === "string")) {
    throw new DatasetError("[extractPrompt] chosen and rejected must both be strings or both message lists", "<row>", null, null);
  }
  const n = Math.min(chosen.length, rejected.length);
  if (n === 0) throw new DatasetError("[extractPrompt] chosen and rejected must be non-empty", "<row>", null, null);
  let idx = n - 1; // value of Python's loop variable when the loop finishes without `break`
  for (let i = 0; i < n; i++) {
    if (!deepEqual(chosen[i], rejected[i])) {
      idx = i > 0 && chosen[i - 1] === " " ? i - 1 : i;
      break;
    }
  }
  return { prompt: chosen.slice(0, idx) as T, chosen: chosen.slice(idx) as T, rejected: rejected.slice(idx) as T };
}

/** TRL `maybe_extract_prompt`: a preference row with an explicit prompt is returned as is. */
export function maybeExtractPrompt(row: PreferenceRow): PreferenceRow & { prompt: TextOrMessages } {
  if (row.prompt !== undefined) return row as PreferenceRow & { prompt: TextOrMessages };
  return { ...row, ...extractPrompt(row.chosen, row.rejected) };
}

/** TRL `unpair_preference_dataset`: each pair becomes a desirable (chosen) and an undesirable (rejected) row. */
export function unpairPreference(rows: readonly PreferenceRow[]): UnpairedPreferenceRow[] {
  const withPrompt = rows.map(maybeExtractPrompt);
  return [
    ...withPrompt.map((r) => ({ prompt: r.prompt, completion: r.chosen, label: true })),
    ...withPrompt.map((r) => ({ prompt: r.prompt, completion: r.rejected, label: false })),
  ];
}

// ---- loading ----------------------------------------------------------------------------------------------

export interface LoadOptions {
  /** Name used in errors for in-memory rows (default `<memory>`); row numbers are 1-based like file lines. */
  name?: string;
  /** Preference rows without a prompt get one from `extractPrompt` (default false: keep them implicit). */
  extractImplicitPrompt?: boolean;
}

function requireKind(row: Record<string, unknown>, source: string, line: number): DatasetKind {
  const k = detectKind(row);
  if (k === null) {
    const keys = Object.keys(row).join(", ") || "none";
    throw new DatasetError(`${source}:${line}: cannot tell the dataset kind from the columns (${keys})`, source, line, null);
  }
  return k;
}

function checkRow<K extends DatasetKind>(row: unknown, kind: K, source: string, line: number, opts: LoadOptions): RowOf<K> {
  const r = validateRow(DATASET_SCHEMAS[kind], row, source, line) as RowOf<K>;
  if (kind === "preference" && opts.extractImplicitPrompt) return maybeExtractPrompt(r as PreferenceRow) as RowOf<K>;
  return r;
}

/**
 * Load and validate a dataset from a JSONL file or an in-memory array. With `kind` omitted, the kind is detected
 * from the first row and every row must match it (kind null for an empty source). Throws DatasetError `file:line: field "x": ...`.
 */
export function loadDataset<K extends DatasetKind>(source: string | readonly unknown[], kind: K, opts?: LoadOptions): RowOf<K>[];
export function loadDataset(
  source: string | readonly unknown[],
  kind?: undefined,
  opts?: LoadOptions,
): { kind: DatasetKind | null; rows: unknown[] };
export function loadDataset(
  source: string | readonly unknown[],
  kind?: DatasetKind,
  opts: LoadOptions = {},
): unknown[] | { kind: DatasetKind | null; rows: unknown[] } {
  const name = typeof source === "string" ? source : (opts.name ?? "<memory>");
  let k: DatasetKind | undefined = kind;
  const map = (row: unknown, line: number): unknown => {
    const obj = asObject(row, name, line);
    if (kind === undefined) {
      const here = requireKind(obj, name, line);
      k ??= here;
      if (here !== k)
        throw new DatasetError(`${name}:${line}: row has ${here} columns, but the dataset is ${k} (from its first row)`, name, line, null);
    }
    return checkRow(obj, k!, name, line, opts);
  };
  const rows = typeof source === "string" ? readJsonlWith(source, map) : source.map((row, i) => map(row, i + 1));
  if (kind !== undefined) return rows;
  return { kind: k ?? null, rows };
}

/** Stream a large JSONL dataset of a known kind, validating each row as it is read. */
export async function* streamDataset<K extends DatasetKind>(file: string, kind: K, opts: LoadOptions = {}): AsyncGenerator<RowOf<K>> {
  for await (const row of streamJsonl(file, DATASET_SCHEMAS[kind])) {
    yield (kind === "preference" && opts.extractImplicitPrompt ? maybeExtractPrompt(row as PreferenceRow) : row) as RowOf<K>;
  }
}

function asObject(row: unknown, source: string, line: number): Record<string, unknown> {
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    throw new DatasetError(`${source}:${line}: expected an object, got ${typeName(row)}`, source, line, null);
  }
  return row as Record<string, unknown>;
}
