// --reward-module: a TypeScript module (types, an interface, an import of a sibling .ts file) loads through the
// built CLI's code under plain Node (no tsx loader), and a function with the wrong signature (TRL's
// `(prompts, completions)`, or one that treats its argument as the completions array) gets a message that shows
// the right one.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadRewardFunctions } from "../src/cli/reward_loading.js";

const ROOT = join(import.meta.dirname, "..");
const BUILT = join(ROOT, "dist/src/cli/reward_loading.js");
const SOURCE = join(ROOT, "src/cli/reward_loading.ts");

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-reward-module-"));
  writeFileSync(join(dir, "helpers.ts"), "export const lengthOf = (s: string): number => s.length;\n");
  writeFileSync(
    join(dir, "my_rewards.ts"),
    [
      'import { lengthOf } from "./helpers.ts";',
      "interface Args { prompts: string[]; completions: string[]; answer?: unknown[] }",
      "export function short({ completions }: Args): number[] {",
      "  return completions.map((c) => -lengthOf(c));",
      "}",
      "export const exact = async (a: Args): Promise<(number | null)[]> =>",
      "  a.completions.map((c, i) => (a.answer === undefined ? null : c === String(a.answer[i]) ? 1 : 0));",
      "export function trlStyle(prompts: string[], completions: string[]): number[] { return completions.map(() => 1); }",
      "export const arrayStyle = (completions: string[]) => completions.map((c) => c.length);",
    ].join("\n"),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("--reward-module", () => {
  const ctx = { maxCompletionLength: 8 };

  test("a TypeScript module loads on the built CLI under plain node", (t) => {
    if (!existsSync(BUILT) || statSync(BUILT).mtimeMs < statSync(SOURCE).mtimeMs) {
      t.skip("dist/ is missing or older than src/cli/reward_loading.ts: run npm run build");
      return;
    }
    const script = `
      const { loadRewardFunctions } = await import(${JSON.stringify(BUILT)});
      const fns = await loadRewardFunctions(["short", "exact"], ${JSON.stringify(join(dir, "my_rewards.ts"))}, { maxCompletionLength: 8 });
      const out = [];
      for (const f of fns) out.push(await f({ prompts: ["p", "p"], completions: ["abc", "7"], answer: [7, 7] }));
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      [-3, -1],
      [0, 1],
    ]);
  });

  test("TRL's (prompts, completions) signature is refused with the right one shown", async () => {
    await assert.rejects(loadRewardFunctions(["trlStyle"], join(dir, "my_rewards.ts"), ctx), (e: Error) => {
      assert.match(e.message, /export 'trlStyle' takes 2 parameters, not one object/);
      assert.match(e.message, /export function myReward\(\{ prompts, completions, \.\.\.columns \}: RewardArgs\): \(number \| null\)\[\]/);
      assert.match(
        e.message,
        /TRL's `def f\(prompts, completions, \*\*kwargs\)` becomes `\(\{ prompts, completions, \.\.\.kwargs \}\) => \.\.\.`/,
      );
      return true;
    });
    // an unselected helper with two parameters does not get in the way
    const [f] = await loadRewardFunctions(["short"], join(dir, "my_rewards.ts"), ctx);
    assert.deepEqual(await f!({ prompts: ["p"], completions: ["ab"] }), [-2]);
  });

  test("a function that treats its argument as the completions array fails with the signature, not 'reading map'", async () => {
    const [f] = await loadRewardFunctions(["arrayStyle"], join(dir, "my_rewards.ts"), ctx);
    await assert.rejects(Promise.resolve(f!({ prompts: ["p"], completions: ["ab"] })), (e: Error) => {
      assert.match(e.message, /\[reward arrayStyle\] .*my_rewards.ts: .*map is not a function; is its signature right\?/);
      assert.match(e.message, /a reward function takes ONE object/);
      return true;
    });
  });

  test("a missing module is named", async () => {
    await assert.rejects(loadRewardFunctions([], join(dir, "nope.ts"), ctx), /\[reward-module\] .*nope.ts does not exist/);
  });
});
