// JSONL reader/writer: exact DatasetError messages (file:line: field), blank lines and CRLF, the streaming
// reader agreeing with the whole-file reader, and atomic writes leaving no temp files behind.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { z } from "zod";
import { DatasetError, parseJsonl, readJsonl, streamJsonl, writeJsonl } from "../src/data/index.js";

const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), "nexus-jsonl-"));
const Pair = z.looseObject({ chosen: z.string(), rejected: z.string(), margin: z.number().optional() });

function errorOf(fn: () => unknown): DatasetError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DatasetError, `expected DatasetError, got ${e}`);
    return e;
  }
  assert.fail("expected a DatasetError");
}

describe("jsonl", () => {
  test("wrong type names file, 1-based line and field", () => {
    const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ chosen: `c${i}`, rejected: "r" }));
    lines.push(JSON.stringify({ chosen: 5, rejected: "r" }));
    const e = errorOf(() => parseJsonl(lines.join("\n"), "data/train.jsonl", Pair));
    assert.equal(e.message, 'data/train.jsonl:17: field "chosen": expected string, got number');
    assert.equal(e.line, 17);
    assert.equal(e.field, "chosen");
    assert.equal(e.source, "data/train.jsonl");
  });

  test("missing field, null, and optional field of the wrong type", () => {
    assert.equal(
      errorOf(() => parseJsonl('{"rejected":"r"}', "a.jsonl", Pair)).message,
      'a.jsonl:1: field "chosen": expected string, got undefined (missing)',
    );
    assert.equal(
      errorOf(() => parseJsonl('{"chosen":null,"rejected":"r"}', "a.jsonl", Pair)).message,
      'a.jsonl:1: field "chosen": expected string, got null',
    );
    assert.equal(
      errorOf(() => parseJsonl('{"chosen":"c","rejected":"r","margin":"big"}', "a.jsonl", Pair)).message,
      'a.jsonl:1: field "margin": expected number, got string',
    );
  });

  test("blank lines count for line numbers; CRLF and BOM are accepted", () => {
    const text = `\ufeff{"chosen":"a","rejected":"b"}\r\n\r\n\n{"chosen":"c","rejected":[1]}\r\n`;
    const e = errorOf(() => parseJsonl(text, "x.jsonl", Pair));
    assert.equal(e.message, 'x.jsonl:4: field "rejected": expected string, got array');
    const ok = parseJsonl(`\ufeff{"chosen":"a","rejected":"b"}\r\n\r\n{"chosen":"c","rejected":"d"}\r\n`, "x.jsonl", Pair);
    assert.deepEqual(ok, [
      { chosen: "a", rejected: "b" },
      { chosen: "c", rejected: "d" },
    ]);
  });

  test("invalid JSON and non-object rows", () => {
    const e = errorOf(() => parseJsonl('{"chosen":"a","rejected":"b"}\n{"chosen": "a",', "bad.jsonl"));
    assert.match(e.message, /^bad\.jsonl:2: invalid JSON: /);
    assert.equal(e.line, 2);
    assert.equal(errorOf(() => parseJsonl("[1,2]", "bad.jsonl")).message, "bad.jsonl:1: expected a JSON object, got array");
    assert.equal(errorOf(() => parseJsonl("\n\n7", "bad.jsonl")).message, "bad.jsonl:3: expected a JSON object, got number");
  });

  test("missing file is a DatasetError naming it", () => {
    const f = path.join(tmpdir(), "nope.jsonl");
    assert.equal(errorOf(() => readJsonl(f)).source, f);
  });

  test("write then read round-trips; the writer is atomic and leaves no temp file", async () => {
    const dir = tmpdir();
    const f = path.join(dir, "sub", "rows.jsonl");
    const rows = Array.from({ length: 5000 }, (_, i) => ({ chosen: `c${i} "q"\n`, rejected: "r", margin: i / 7 }));
    writeJsonl(f, rows);
    assert.deepEqual(readJsonl(f, Pair), rows);
    const streamed: unknown[] = [];
    for await (const r of streamJsonl(f, Pair)) streamed.push(r);
    assert.deepEqual(streamed, rows);
    assert.deepEqual(fs.readdirSync(path.dirname(f)), ["rows.jsonl"]);
    // Overwrite: a failing row must leave the previous file untouched and no temp file behind.
    assert.throws(() => writeJsonl(f, [{ chosen: "x", rejected: "y" }, undefined]), /rows\.jsonl:2: row is not JSON-serialisable/);
    assert.equal(readJsonl(f).length, 5000);
    assert.deepEqual(fs.readdirSync(path.dirname(f)), ["rows.jsonl"]);
  });

  test("streaming reader reports the same error as the whole-file reader", async () => {
    const f = path.join(tmpdir(), "train.jsonl");
    fs.writeFileSync(f, '{"chosen":"a","rejected":"b"}\n\n{"chosen":"a","rejected":false}\n');
    const want = `${f}:3: field "rejected": expected string, got boolean`;
    assert.equal(errorOf(() => readJsonl(f, Pair)).message, want);
    await assert.rejects(
      async () => {
        for await (const _ of streamJsonl(f, Pair)) void _;
      },
      new DatasetError(want, f, 3, "rejected"),
    );
  });
});
