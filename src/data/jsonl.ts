// JSONL datasets: a whole-file reader, a streaming line reader for files too large to hold as one string,
// and an atomic writer (temp file + fsync + rename). Rows can be validated by a zod schema; any bad row
// or bad JSON throws a DatasetError naming the file, the 1-based line and the field:
//   data/train.jsonl:17: field "chosen": expected string, got number
// Blank lines are skipped (they still count for line numbers). Not here: the TRL schemas (formats.ts).

import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";
import { Readable } from "node:stream";
import type { z } from "zod";

/** A malformed dataset row (or unreadable JSON). `source` is the file name, or a label for in-memory rows. */
export class DatasetError extends Error {
  override name = "DatasetError";
  constructor(
    message: string,
    readonly source: string,
    readonly line: number | null,
    readonly field: string | null,
  ) {
    super(message);
  }
}

/** `null`, `array`, or the `typeof` name: the "got" half of an error message. */
export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined (missing)";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

type ZIssue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** `messages[1].role` from `["messages", 1, "role"]`. */
export function formatFieldPath(p: Path): string {
  let out = "";
  for (const k of p) out += typeof k === "number" ? `[${k}]` : out === "" ? String(k) : `.${String(k)}`;
  return out;
}

function valueAt(root: unknown, p: Path): unknown {
  let v: unknown = root;
  for (const k of p) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

// A union failure (string | message list) is reported through the branch that got furthest into the value,
// so `[{role: "user", content: 3}]` reports `chosen[0].content`, not "expected string or array".
function describeIssue(issue: ZIssue, root: unknown, base: Path = []): { field: Path; text: string } {
  const field = [...base, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const deepest = issue.errors
      .filter((branch) => branch.length > 0)
      .map((branch) => branch[0]!)
      .reduce<ZIssue | null>((best, i) => (best === null || i.path.length > best.path.length ? i : best), null);
    if (deepest !== null && deepest.path.length > 0) return describeIssue(deepest, root, field);
    const expected = issue.errors.flatMap((branch) => branch.filter((i) => i.code === "invalid_type").map((i) => i.expected));
    if (expected.length > 0)
      return { field, text: `expected ${[...new Set(expected)].join(" or ")}, got ${typeName(valueAt(root, field))}` };
  }
  if (issue.code === "invalid_type") return { field, text: `expected ${issue.expected}, got ${typeName(valueAt(root, field))}` };
  return { field, text: issue.message };
}

/** Validate one parsed row; throws DatasetError `source:line: field "x": ...` on the first issue. */
export function validateRow<S extends z.ZodType>(schema: S, row: unknown, source: string, line: number): z.output<S> {
  const r = schema.safeParse(row);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const { field, text } = describeIssue(issue, row);
  const name = formatFieldPath(field);
  const where = name === "" ? "" : ` field "${name}":`;
  throw new DatasetError(`${source}:${line}:${where} ${text}`, source, line, name === "" ? null : name);
}

function parseLine(text: string, source: string, line: number): Record<string, unknown> {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch (e) {
    throw new DatasetError(`${source}:${line}: invalid JSON: ${(e as Error).message}`, source, line, null);
  }
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    throw new DatasetError(`${source}:${line}: expected a JSON object, got ${typeName(row)}`, source, line, null);
  }
  return row as Record<string, unknown>;
}

/** Row mapper used by the readers: receives each parsed object and its 1-based line number. */
export type RowMapper<T> = (row: Record<string, unknown>, line: number) => T;

function mapperFor<S extends z.ZodType>(source: string, schema?: S): RowMapper<z.output<S>> {
  return (row, line) => (schema ? validateRow(schema, row, source, line) : (row as z.output<S>));
}

/** Parse JSONL text already in memory, mapping each row (with its line number) through `map`. */
export function parseJsonlWith<T>(text: string, source: string, map: RowMapper<T>): T[] {
  const out: T[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let t = lines[i]!;
    if (i === 0 && t.charCodeAt(0) === 0xfeff) t = t.slice(1); // UTF-8 BOM
    if (t.endsWith("\r")) t = t.slice(0, -1);
    if (t.trim() === "") continue;
    out.push(map(parseLine(t, source, i + 1), i + 1));
  }
  return out;
}

/** Parse JSONL text already in memory. `source` names it in errors. */
export function parseJsonl<S extends z.ZodType = z.ZodType<Record<string, unknown>>>(
  text: string,
  source: string,
  schema?: S,
): z.output<S>[] {
  return parseJsonlWith(text, source, mapperFor(source, schema));
}

/** The 1-based line holding byte `at` of a buffer. */
function lineOfByte(buf: Uint8Array, at: number): number {
  let line = 1;
  for (let i = 0; i < at && i < buf.length; i++) if (buf[i] === 0x0a) line++;
  return line;
}

/** Decode UTF-8 strictly: invalid bytes are an error naming the line (never silently U+FFFD). */
export function decodeUtf8(buf: Uint8Array, source: string, firstLine = 1): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    // find the first bad byte: decode growing prefixes cut at line ends
    let start = 0;
    let line = firstLine;
    for (let i = 0; i <= buf.length; i++) {
      if (i === buf.length || buf[i] === 0x0a) {
        try {
          new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(start, i));
        } catch {
          throw new DatasetError(`${source}:${line}: invalid UTF-8`, source, line, null);
        }
        start = i + 1;
        line++;
      }
    }
    const at = lineOfByte(buf, buf.length) + firstLine - 1;
    throw new DatasetError(`${source}:${at}: invalid UTF-8`, source, at, null);
  }
}

/** Read a whole JSONL file (up to V8's string limit, ~512 MiB), mapping each row; see `streamJsonl` beyond that. */
export function readJsonlWith<T>(file: string, map: RowMapper<T>): T[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new DatasetError(`${file}: cannot read: ${(e as Error).message}`, file, null, null);
  }
  return parseJsonlWith(decodeUtf8(buf, file), file, map);
}

/** Read a whole JSONL file, validating rows against `schema` when given. */
export function readJsonl<S extends z.ZodType = z.ZodType<Record<string, unknown>>>(file: string, schema?: S): z.output<S>[] {
  return readJsonlWith(file, mapperFor(file, schema));
}

/** Stream rows of a JSONL file of any size, one line at a time, validating each. */
export async function* streamJsonl<S extends z.ZodType = z.ZodType<Record<string, unknown>>>(
  file: string,
  schema?: S,
): AsyncGenerator<z.output<S>> {
  if (!fs.existsSync(file)) throw new DatasetError(`${file}: cannot read: no such file`, file, null, null);
  const map = mapperFor(file, schema);
  // bytes are checked as they stream: a chunk that is not UTF-8 (mid-character ends carry over) stops the read
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let linesSeen = 1;
  const checked = Readable.from(
    (async function* () {
      for await (const chunk of fs.createReadStream(file)) {
        let text: string;
        try {
          text = decoder.decode(chunk as Buffer, { stream: true });
        } catch {
          decodeUtf8(chunk as Buffer, file, linesSeen); // names the line (unless the bad bytes began in the last chunk)
          throw new DatasetError(`${file}:${linesSeen}: invalid UTF-8`, file, linesSeen, null);
        }
        for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) linesSeen++;
        yield text;
      }
      try {
        const rest = decoder.decode();
        if (rest) yield rest;
      } catch {
        throw new DatasetError(`${file}:${linesSeen}: invalid UTF-8 (the file ends inside a character)`, file, linesSeen, null);
      }
    })(),
  );
  const rl = readline.createInterface({ input: checked, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (let t of rl) {
      line++;
      if (line === 1 && t.charCodeAt(0) === 0xfeff) t = t.slice(1);
      if (t.trim() === "") continue;
      yield map(parseLine(t, file, line), line);
    }
  } finally {
    rl.close();
  }
}

let tmpCounter = 0;

/**
 * Write rows as JSONL atomically: into `<file>.tmp-<pid>-<n>` in the same directory, fsync, then rename, so a
 * reader never sees a half-written file and a crash leaves the old file intact. Creates parent directories.
 */
export function writeJsonl(file: string, rows: Iterable<unknown>): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${++tmpCounter}`;
  const fd = fs.openSync(tmp, "w");
  let ok = false;
  try {
    let buf: string[] = [];
    let size = 0;
    let line = 0;
    for (const row of rows) {
      line++;
      const s = JSON.stringify(row);
      if (s === undefined) throw new DatasetError(`${file}:${line}: row is not JSON-serialisable (${typeName(row)})`, file, line, null);
      buf.push(s);
      size += s.length;
      if (size > 1 << 20) {
        fs.writeSync(fd, `${buf.join("\n")}\n`);
        buf = [];
        size = 0;
      }
    }
    if (buf.length > 0) fs.writeSync(fd, `${buf.join("\n")}\n`);
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) fs.rmSync(tmp, { force: true });
  }
  fs.renameSync(tmp, file);
}
