// The package root exports every symbol the README's code blocks import from "nexus-align", and the names the
// online-RL API promises (issue 14): the trainers on the one loop, the new losses, the environment built-ins and
// the loop's config fields.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as root from "../src/index.js";

test("every name a README code block imports from nexus-align is exported by the package root", () => {
  const readme = readFileSync("README.md", "utf8");
  const names = new Set<string>();
  const types = new Set<string>();
  for (const block of readme.matchAll(/```(?:ts|typescript|js)\n([\s\S]*?)```/g)) {
    for (const m of block[1].matchAll(/import\s*\{([^}]*)\}\s*from\s*"nexus-align"/g)) {
      for (const part of m[1].split(",")) {
        const name = part.trim().split(/\s+as\s+/)[0];
        if (name.startsWith("type ")) types.add(name.slice(5).trim());
        else if (name !== "") names.add(name);
      }
    }
  }
  assert.ok(names.size >= 10, `found ${names.size} imported names`);
  assert.deepEqual(
    [...names].filter((n) => !(n in root)),
    [],
  );
  // types vanish at run time: each must be declared by a module and named in the root's exports
  const sources = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : [join(dir, e.name)]));
  const rootText = readFileSync("src/index.ts", "utf8");
  const starred = [...rootText.matchAll(/export \* from "\.\/(\w+)\/index\.js"/g)].map((m) => m[1]);
  for (const t of types) {
    const decl = sources("src").filter((f) => new RegExp(`export (interface|type) ${t}\\b`).test(readFileSync(f, "utf8")));
    assert.ok(decl.length > 0, `type ${t} is declared`);
    const folder = decl[0].split("/")[1];
    assert.ok(rootText.includes(`type ${t},`) || starred.includes(folder), `type ${t} is exported from the root`);
  }
});

test("the online-RL names are at the root", () => {
  const r = root as Record<string, unknown>;
  for (const name of [
    "trainGrpo",
    "trainRloo",
    "trainPpo",
    "trainOnlineDpo",
    "trainSpin",
    "trainGkd",
    "trainDistill",
    "gkdLoss",
    "grpoLoss",
    "reinforcePlusPlusAdvantages",
    "rolloutCorrection",
    "calculatorEnvironment",
    "gridEnvironment",
    "runOnline",
    "sampleCompletions",
    "ONLINE_FIELDS",
  ]) {
    assert.equal(typeof r[name] === "function" || typeof r[name] === "object", true, `${name} is not exported`);
  }
  const fields = root.ONLINE_FIELDS as Record<string, unknown>;
  for (const f of ["maxOffPolicySteps", "importanceSamplingCorrection", "importanceSamplingCap"]) assert.ok(f in fields, f);
  assert.deepEqual(root.GRPO_SCHEMA.shape.lossType.parse("cispo"), "cispo");
  assert.deepEqual(root.GRPO_SCHEMA.shape.lossType.parse("sapo"), "sapo");
});
