// The package root exports the names the online-RL API promises (issue 14): the trainers on the one loop, the new
// losses, the environment built-ins and the loop's config fields. (That every name the README imports is exported
// is checked with the README's blocks, in readme.test.ts.)

import assert from "node:assert/strict";
import { test } from "node:test";
import * as root from "../src/index.js";

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
