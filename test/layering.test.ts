// The folders of src/ import only downward (DESIGN.md "Layers"): every relative import of every source file is
// checked against a rank per folder, so a reward that reaches into the trainers (or an agent into train/) fails
// here with the file and the import named. Equal ranks may import each other; the package root sits on top.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { test } from "node:test";

/** Higher ranks may import lower (or equal) ones, never higher. */
const RANK: Record<string, number> = {
  backend: 0,
  tensor: 1,
  nn: 2,
  io: 3,
  models: 4,
  generate: 5,
  data: 6,
  losses: 6,
  rewards: 7,
  agent: 8,
  train: 9,
  search: 9,
  serve: 9,
  eval: 10,
  report: 10,
  lab: 11,
  cli: 12,
  "(root)": 13,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

const layerOf = (file: string): string => {
  const parts = relative("src", file).split("/");
  return parts.length === 1 ? "(root)" : parts[0];
};

test("every src/ folder imports only from its own or lower layers", () => {
  const files = sources("src");
  assert.ok(files.length > 100);
  const bad: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    assert.ok(from in RANK, `${file}: folder ${from} has no rank in this test; add it to RANK`);
    for (const m of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
      const to = layerOf(normalize(join(dirname(file), m[1])));
      assert.ok(to in RANK, `${file} imports ${m[1]} from an unranked folder ${to}`);
      if (RANK[to] > RANK[from]) bad.push(`${file} (${from}) imports ${m[1]} (${to})`);
    }
  }
  assert.deepEqual(bad, []);
});
