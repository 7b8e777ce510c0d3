// Part `fuzz`: seeded mutations (truncation, bit flips, huge / negative / fractional sizes, wrong dtypes and
// types, overlapping offsets, deep JSON, invalid UTF-8, NaN strings) of every input Nexus reads: safetensors
// files and the sharded index, config.json, tokenizer.json, tokenizer_config.json, chat templates, JSONL
// datasets of every kind, YAML/JSON trainer configs, the CLI's arguments, HTTP bodies and headers of
// `nexus serve`, and the native addon's arguments. Every case runs in a child process (fuzz/harness.ts) and
// holds when the input is accepted and works, or is rejected with a named error; a crash, an abort, a hang,
// a raw TypeError/RangeError or a case over 5 s fails. Not here: the targets (fuzz/targets*.ts).

import type { PartFn, PartResult } from "./common.js";
import { runTarget, type TargetTally } from "./fuzz/harness.js";
import { TARGETS } from "./fuzz/targets.js";

/** Children at once: the machine has two cores, and the native cases use OpenMP. */
const CONCURRENCY = 2;

export const fuzz: PartFn = async (o) => {
  const names = Object.keys(TARGETS);
  const tallies: TargetTally[] = [];
  const queue = [...names];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const count = o.quick ? TARGETS[name].cases.quick : TARGETS[name].cases.full;
      const t = await runTarget(name, count, { seed: o.seed, workDir: o.workDir, note: o.note });
      o.note(
        `${name}: ${t.tried} tried, ${t.accepted} accepted, ${t.rejected} rejected with a named error, ${t.failed} failed (${t.seconds} s)`,
      );
      for (const f of t.failures.slice(0, 3)) o.note(`  case ${f.index} [${f.what.join("; ").slice(0, 200)}]: ${f.reason.slice(0, 300)}`);
      tallies.push(t);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  tallies.sort((a, b) => names.indexOf(a.target) - names.indexOf(b.target));
  const tried = tallies.reduce((a, t) => a + t.tried, 0);
  const failed = tallies.reduce((a, t) => a + t.failed, 0);
  const result: PartResult = {
    part: "fuzz",
    tried,
    held: tried - failed,
    failed,
    detail: {
      seed: o.seed,
      targets: Object.fromEntries(
        tallies.map((t) => [
          t.target,
          {
            tried: t.tried,
            accepted: t.accepted,
            rejected: t.rejected,
            failed: t.failed,
            seconds: t.seconds,
            failures: t.failures.slice(0, 5),
          },
        ]),
      ),
    },
  };
  return result;
};
