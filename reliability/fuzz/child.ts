// One fuzz child process: `node --import tsx child.ts <target> <seed> <from> <count> <workDir>` runs cases
// [from, count) of one target and reports on fd 3 (`S <i>` before a case, `R <json>` after, `E` at the end),
// written synchronously so the parent knows which case was running when the process died.
// Not here: judging (harness.ts) or the targets (targets.ts).

import { mkdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { HANG_MS, onAnnounce, SLOW_CASE_MS } from "./harness.js";
import { caseRng } from "./mutate.js";
import { TARGETS } from "./targets.js";

async function main(): Promise<void> {
  const [name, seedArg, fromArg, countArg, workDir] = process.argv.slice(2);
  const target = TARGETS[name];
  if (target === undefined) throw new Error(`unknown fuzz target ${name}`);
  const seed = Number(seedArg);
  const dir = join(workDir, `${name}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const say = (line: string) => writeSync(3, `${line}\n`);
  onAnnounce((what) => say(`W ${JSON.stringify(what.map((w) => w.slice(0, 200)))}`));
  // a rejection nobody awaited is an uncaught error too: it fails the case that is running
  let stray: string | null = null;
  process.on("unhandledRejection", (e) => {
    stray = `unhandled rejection: ${(e as Error)?.stack ?? e}`.slice(0, 400);
  });
  process.on("uncaughtException", (e) => {
    stray = `uncaught exception: ${e.stack ?? e}`.slice(0, 400);
  });
  say(`T ${target.hangMs ?? HANG_MS}`);
  const slowMs = target.slowMs ?? SLOW_CASE_MS;
  await target.setup?.(dir);
  for (let i = Number(fromArg); i < Number(countArg); i++) {
    say(`S ${i}`);
    const t0 = performance.now();
    let outcome = await target.run(caseRng(seed, name, i), dir, i);
    const ms = performance.now() - t0;
    if (stray !== null) {
      outcome = { kind: "failed", what: outcome.what, reason: stray };
      stray = null;
    } else if ((outcome.loadMs ?? ms) > slowMs && outcome.kind !== "failed") {
      const took = ((outcome.loadMs ?? ms) / 1000).toFixed(1);
      outcome = { kind: "failed", what: outcome.what, reason: `slow: ${took} s (limit ${slowMs / 1000} s)` };
    }
    say(`R ${JSON.stringify({ index: i, outcome, ms })}`);
  }
  await target.teardown?.();
  rmSync(dir, { recursive: true, force: true });
  say("E");
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`[fuzz child] ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
