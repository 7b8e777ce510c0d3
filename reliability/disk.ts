// Part disk (issue 13 item 5): an unusable output folder is reported before training starts, and a disk that fills
// up at save time never corrupts an earlier checkpoint.
// - `--output` naming a file, or a path under a file: a clear message, nothing trained.
// - A read-only folder (a read-only tmpfs where root can mount one, else a folder without write permission):
//   reported before training.
// - A folder too small for one checkpoint (a small tmpfs): reported before training.
// - A tmpfs that fills during the run: the run stops naming the checkpoint it could not write; every checkpoint on
//   disk verifies, no temp folder is left; once space is freed, --resume finishes equal to an uninterrupted run.
// - Everywhere (also without root): write errors injected into the k-th checkpoint write (ENOSPC, EIO) in process.
// Mounted file systems are unmounted at the end.

import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { createCausalLM } from "../src/models/index.js";
import { checkpointFolders, loadCheckpoint } from "../src/train/checkpoint.js";
import { resolveConfig } from "../src/train/config.js";
import { LOOP_SCHEMA, runTraining } from "../src/train/loop.js";
import { type SftExample, sftLossSum } from "../src/train/sft.js";
import type { PartOptions, PartResult } from "./common.js";
import { compareRuns, type Fixtures, runNexus, TOK, tinyConfig, trainerArgs, writeFixtures } from "./lifecycle_runs.js";

const fsCjs = createRequire(import.meta.url)("node:fs") as typeof import("node:fs");

/** Run fn while the n-th and later writes into the temp folder of checkpoint-<step> under `under` fail with `code`. */
async function withWriteFault<T>(under: string, step: number, failAt: number, code: string, fn: () => Promise<T>): Promise<T> {
  const orig = fsCjs.writeSync;
  const paths = new Map<number, string>();
  const origOpen = fsCjs.openSync;
  let writes = 0;
  fsCjs.openSync = ((p: string, ...rest: unknown[]) => {
    const fd = (origOpen as (...a: unknown[]) => number)(p, ...rest);
    paths.set(fd, String(p));
    return fd;
  }) as typeof fsCjs.openSync;
  fsCjs.writeSync = ((fd: number, ...rest: unknown[]) => {
    const p = paths.get(fd) ?? "";
    if (p.startsWith(under) && p.includes(`/.checkpoint-${step}.tmp-`) && ++writes >= failAt) {
      throw Object.assign(new Error(`${code}: injected write error, write`), { code });
    }
    return (orig as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fsCjs.writeSync;
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    fsCjs.writeSync = orig;
    fsCjs.openSync = origOpen;
    syncBuiltinESMExports();
  }
}

const TEXTS = ["abc=cba", "bad=dab", "face=ecaf", "head=daeh", "add=dda", "gab=bag"];
const EXAMPLES: SftExample[] = TEXTS.map((t) => {
  const ids = TOK.encode(t + TOK.eosToken);
  return { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) };
});

function sftRun(outputDir: string, seed: number) {
  const model = createCausalLM(tinyConfig(), { seed });
  return runTraining({
    model,
    task: {
      rowTokens: (r: SftExample) => r.ids.length,
      countUnits: (rows: SftExample[]) => rows.reduce((n, r) => n + r.lossMask.reduce((a, b) => a + b, 0), 0),
      lossSum: (rows: SftExample[]) => ({ loss: sftLossSum(model, rows, TOK.padTokenId).loss }),
    },
    rows: EXAMPLES,
    config: resolveConfig("disk", LOOP_SCHEMA, { maxSteps: 6, perDeviceTrainBatchSize: 3, saveSteps: 1, saveTotalLimit: 10, seed }),
    outputDir,
    quiet: true,
    label: "disk",
  });
}

/** Problems of what is on disk: checkpoints that do not verify, temp folders left behind. */
function diskProblems(dir: string): string[] {
  const out: string[] = [];
  for (const s of checkpointFolders(dir)) {
    try {
      loadCheckpoint(join(dir, `checkpoint-${s}`));
    } catch (e) {
      out.push((e as Error).message);
    }
  }
  if (existsSync(dir)) for (const n of readdirSync(dir)) if (/^\.checkpoint-.*\.tmp-/.test(n)) out.push(`temp folder ${n} left behind`);
  return out;
}

function mount(dir: string, opts: string): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir], { stdio: "ignore" }).status === 0;
}

function umount(dir: string): void {
  spawnSync("umount", [dir], { stdio: "ignore" });
}

export async function disk(o: PartOptions): Promise<PartResult> {
  const f: Fixtures = writeFixtures(join(o.workDir, "fixtures"), o.seed);
  let tried = 0;
  let held = 0;
  const failures: string[] = [];
  const notTried: string[] = [];
  const verdict = (ok: boolean, what: string) => {
    tried++;
    if (ok) held++;
    else failures.push(what);
    o.note(`${ok ? "held" : "FAILED"}: ${what}`);
  };
  const sft = (output: string, extra: string[] = []) => runNexus([...trainerArgs("sft", f, output, 6), "--save-steps", "1", ...extra]);

  // 1-2. a file, or a path under a file
  {
    const r = await sft(f.sft);
    verdict(
      r.code === 1 && /is a file, not a folder/.test(r.stderr) && !/EEXIST/.test(r.stderr),
      `--output <file>: ${r.stderr.trim().split("\n").pop()}`,
    );
    const under = await sft(join(f.sft, "run"));
    verdict(
      under.code === 1 && /cannot create the output folder .*ENOTDIR/.test(under.stderr) && !existsSync(join(f.sft, "run")),
      `--output <file>/run: ${under.stderr.trim().split("\n").pop()}`,
    );
  }

  // 3. a read-only folder, reported before training (nothing written)
  const mounts: string[] = [];
  try {
    const ro = join(o.workDir, "readonly");
    const root = process.getuid?.() === 0;
    let ready = false;
    if (!root) {
      mkdirSync(ro);
      chmodSync(ro, 0o555); // root ignores permissions: it gets a read-only tmpfs instead
      ready = true;
    } else if (!o.quick && mount(ro, "ro,size=1m")) {
      mounts.push(ro);
      ready = true;
    }
    if (ready) {
      const r = await sft(join(ro, "run"));
      verdict(
        r.code === 1 && /cannot (create|write to) the output folder .*(EROFS|EACCES)/.test(r.stderr) && !/step 1/.test(r.stderr),
        `read-only folder: ${r.stderr.trim().split("\n").pop()}`,
      );
    } else notTried.push("read-only folder (needs root to mount a tmpfs; the quick run skips it)");

    // 4-5. a tmpfs too small for one checkpoint; a tmpfs that fills during the run
    const small = join(o.workDir, "small");
    const full = join(o.workDir, "full");
    if (!o.quick && root && mount(small, "size=8k")) {
      mounts.push(small);
      const r = await sft(join(small, "run"));
      verdict(
        r.code === 1 && /has .* free; one checkpoint of this run needs about/.test(r.stderr),
        `too small: ${r.stderr.trim().split("\n").pop()}`,
      );
    } else notTried.push("folder smaller than one checkpoint (needs root to mount a tmpfs)");
    if (!o.quick && root && mount(full, "size=160k")) {
      mounts.push(full);
      const out = join(full, "run");
      const r = await sft(out);
      const problems = diskProblems(out);
      const named = /could not write checkpoint-\d+ .*(ENOSPC|no space)|could not append step/.test(r.stderr);
      // free space and finish: the result equals an uninterrupted run
      spawnSync("mount", ["-o", "remount,size=16m", full], { stdio: "ignore" });
      const again = await sft(out, ["--resume"]);
      const ref = join(o.workDir, "reference");
      await sft(ref);
      const diff = again.code === 0 ? compareRuns(ref, out) : `resume exited ${again.code}: ${again.stderr.slice(-200)}`;
      verdict(
        r.code === 1 && named && problems.length === 0 && diff === null,
        `disk full during the run (exit ${r.code}, ${checkpointFolders(out).length} checkpoints kept): ${[...problems, diff ?? "resumed equal"].join("; ")}; ${r.stderr.trim().split("\n").pop()}`,
      );
    } else notTried.push("disk filling during the run (needs root to mount a tmpfs)");
  } finally {
    for (const m of mounts) umount(m);
  }

  // 6. injected write errors at the k-th checkpoint write (works without root)
  const injections = o.quick ? 2 : 8;
  for (let k = 0; k < injections; k++) {
    const dir = join(o.workDir, `inject-${k}`);
    const code = k % 2 === 0 ? "ENOSPC" : "EIO";
    const step = 2 + (k % 4); // earlier checkpoints exist and must survive
    const failAt = 1 + (k % 3);
    let error: unknown = null;
    await withWriteFault(dir, step, failAt, code, async () => {
      try {
        await sftRun(dir, o.seed);
      } catch (e) {
        error = e;
      }
    });
    const msg = error instanceof Error ? error.message : String(error);
    const problems = diskProblems(dir);
    verdict(
      /could not write checkpoint-\d+ in .*: (ENOSPC|EIO): injected write error.*the checkpoints already on disk are kept/.test(msg) &&
        problems.length === 0 &&
        JSON.stringify(checkpointFolders(dir)) === JSON.stringify(Array.from({ length: step - 1 }, (_, i) => i + 1)),
      `${code} at write ${failAt} of checkpoint-${step}: ${msg.slice(0, 160)}${problems.length ? `; ${problems.join("; ")}` : ""}`,
    );
  }
  return { part: "disk", tried, held, failed: tried - held, detail: { notTried, failures: failures.slice(0, 10) } };
}
