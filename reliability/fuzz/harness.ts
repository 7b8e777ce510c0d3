// The fuzz harness: what a target is (a seeded case generator plus a judge), how one case is judged
// (accepted and valid, or rejected with a named error; anything else fails), and the parent side that runs
// cases in child processes (child.ts) so a segfault, an abort or a hang is counted against the case that
// caused it and the run goes on from the next one.
// Not here: mutations (mutate.ts) or the targets themselves (targets_*.ts).

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Rng } from "../../src/nn/rng.js";

/** `loadMs`: how long the code under test took (the mutation itself is not timed); absent: the whole case. */
export type Outcome = (
  | { kind: "accepted"; what: string[] }
  | { kind: "rejected"; what: string[]; message: string }
  | { kind: "failed"; what: string[]; reason: string }
) & { loadMs?: number };

export interface FuzzTarget {
  name: string;
  /** Cases in the full run and in the quick (`npm test`) run. */
  cases: { full: number; quick: number };
  /** A case slower than this fails (default SLOW_CASE_MS). */
  slowMs?: number;
  /** A silent child is killed after this long (default HANG_MS). */
  hangMs?: number;
  /** Once per child process, before its first case (fixtures, a server...). */
  setup?(workDir: string): Promise<void> | void;
  teardown?(): Promise<void> | void;
  /** Run case `index`; `rng` is the case's own seeded generator. */
  run(rng: Rng, workDir: string, index: number): Promise<Outcome> | Outcome;
}

/** A case slower than this failed even if it ended well (the issue's "hang over 5 s"). */
export const SLOW_CASE_MS = 5_000;
/** A child silent for this long is killed and its case counted as a hang. */
export const HANG_MS = 20_000;

/** Error classes of the engine itself: never an acceptable rejection (they mean a check is missing). */
const RAW_ERRORS = new Set([
  "Error",
  "TypeError",
  "RangeError",
  "SyntaxError",
  "ReferenceError",
  "EvalError",
  "URIError",
  "AggregateError",
]);

/**
 * A rejection is "named" when it is one of Nexus's error classes (not a raw TypeError/RangeError from deep
 * inside), its message is tagged `[component]` and it names where: `mustName` (a file, a folder) must occur in it.
 */
export function namedError(e: unknown, mustName: readonly string[] = []): string | null {
  if (!(e instanceof Error)) return `threw a non-Error ${String(e)}`;
  if (RAW_ERRORS.has(e.name) || e.name === undefined) return `raw ${e.name}: ${e.message.slice(0, 300)}`;
  if (!/^\[[^\]]+\]|^\S+:\d+:|^\S+: /.test(e.message)) return `${e.name} without a [component] tag: ${e.message.slice(0, 300)}`;
  const missing = mustName.filter((n) => !e.message.includes(n));
  if (missing.length > 0) return `${e.name} does not name ${missing.join(", ")}: ${e.message.slice(0, 300)}`;
  return null;
}

let announce: (what: string[]) => void = () => {};

/** The child reports each case's mutations before loading it, so a crash or a hang can be described. */
export function onAnnounce(fn: (what: string[]) => void): void {
  announce = fn;
}

/** Report a case's mutations before running it (judge does this itself). */
export function announceCase(what: string[]): void {
  announce(what);
}

/** Judge one load: accepted when it returns and `valid` finds nothing wrong, rejected on a named error. */
export async function judge<T>(
  what: string[],
  load: () => T | Promise<T>,
  opts: { mustName?: readonly string[]; valid?: (x: T) => string | null; named?: (e: unknown) => string | null },
): Promise<Outcome> {
  announce(what);
  let x: T;
  const t0 = performance.now();
  try {
    x = await load();
  } catch (e) {
    const loadMs = performance.now() - t0;
    const bad = opts.named ? opts.named(e) : namedError(e, opts.mustName);
    if (bad === null) return { kind: "rejected", what, message: (e as Error).message.slice(0, 200), loadMs };
    return { kind: "failed", what, reason: bad, loadMs };
  }
  const loadMs = performance.now() - t0;
  let invalid: string | null = null;
  try {
    invalid = opts.valid ? opts.valid(x) : null;
  } catch (e) {
    invalid = `validity check threw ${(e as Error).name}: ${(e as Error).message.slice(0, 200)}`;
  }
  return invalid === null
    ? { kind: "accepted", what, loadMs }
    : { kind: "failed", what, reason: `accepted but invalid: ${invalid}`, loadMs };
}

// ---- parent side ----------------------------------------------------------------------------------------

export interface TargetTally {
  target: string;
  tried: number;
  accepted: number;
  rejected: number;
  failed: number;
  /** Failure reasons by kind (crash, hang, slow, unnamed error, invalid), with the first few cases. */
  failures: { index: number; what: string[]; reason: string }[];
  seconds: number;
}

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

/**
 * Run cases [0, count) of `target` in a child process (restarted after a crash or a hang, from the next case).
 * Lines on the child's fd 3: `S <i>` before case i, `R <json>` after it, `E` at the end.
 */
export function runTarget(
  target: string,
  count: number,
  opts: { seed: number; workDir: string; note: (m: string) => void },
): Promise<TargetTally> {
  const tally: TargetTally = { target, tried: 0, accepted: 0, rejected: 0, failed: 0, failures: [], seconds: 0 };
  const t0 = performance.now();
  const fail = (index: number, what: string[], reason: string) => {
    tally.failed++;
    if (tally.failures.length < 20) tally.failures.push({ index, what, reason });
  };
  return new Promise((resolve) => {
    const startChild = (from: number) => {
      if (from >= count) {
        tally.seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
        resolve(tally);
        return;
      }
      const child: ChildProcess = spawn(
        process.execPath,
        ["--import", "tsx", CHILD, target, String(opts.seed), String(from), String(count), opts.workDir],
        { stdio: ["ignore", "ignore", "pipe", "pipe"], env: { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? "1" } },
      );
      let current = -1;
      let currentWhat: string[] = [];
      let next = from;
      let ended = false;
      let hung = false;
      let buf = "";
      let stderr = "";
      let timer: NodeJS.Timeout | null = null;
      let hangMs = HANG_MS;
      const arm = () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          hung = true;
          child.kill("SIGKILL");
        }, hangMs);
      };
      arm();
      child.stderr?.on("data", (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-2000);
      });
      (child.stdio[3] as NodeJS.ReadableStream).on("data", (c: Buffer) => {
        buf += c.toString();
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          if (line.startsWith("T ")) hangMs = Number(line.slice(2));
          arm();
          if (line.startsWith("S ")) {
            current = Number(line.slice(2));
            currentWhat = [];
          } else if (line.startsWith("W ")) currentWhat = JSON.parse(line.slice(2)) as string[];
          else if (line.startsWith("R ")) {
            const r = JSON.parse(line.slice(2)) as { index: number; outcome: Outcome; ms: number };
            tally.tried++;
            current = -1;
            next = r.index + 1;
            const o = r.outcome;
            if (o.kind === "failed") fail(r.index, o.what, o.reason);
            else if (o.kind === "accepted") tally.accepted++;
            else tally.rejected++;
          } else if (line === "E") ended = true;
        }
      });
      child.on("exit", (code, signal) => {
        if (timer) clearTimeout(timer);
        if (ended) return startChild(count);
        const last = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 300);
        if (current >= 0) {
          tally.tried++;
          const why = hung
            ? `hang: no answer within ${hangMs / 1000} s (killed)`
            : `crash: child ${signal ? `killed by ${signal}` : `exited ${code}`} (${last})`;
          fail(current, currentWhat, why);
          opts.note(`${target}: case ${current} ${hung ? "hung" : (signal ?? `exit ${code}`)}; restarting at ${current + 1}`);
          return startChild(current + 1);
        }
        // died outside a case (setup or teardown): the cases it did not run count as failed, never as passed
        const rest = count - next;
        if (rest > 0) {
          tally.tried += rest;
          tally.failed += rest;
          if (tally.failures.length < 20)
            tally.failures.push({ index: next, what: [], reason: `child died outside a case (${signal ?? code}): ${last}` });
        }
        startChild(count);
      });
    };
    startChild(0);
  });
}
