// A controlled busy machine for `--contention` (bench) and the `contention` reliability part: another process
// that keeps one core busy (a spinning loop, as a compile job or a second trainer would), started and stopped
// around a measurement. Ratios are taken within one run (step time with the core busy / without), so they hold
// on a shared machine where absolute times do not.
// Not here: what is measured (w1.ts, reliability/contention.ts).

import { type ChildProcess, spawn } from "node:child_process";

/** Start a process spinning on one core; stop() ends it. */
export function startCoreHog(): { stop(): Promise<void> } {
  const child: ChildProcess = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  return {
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Run fn while one core is kept busy by another process (given 200 ms to get going first). */
export async function withCoreBusy<T>(fn: () => T | Promise<T>): Promise<T> {
  const hog = startCoreHog();
  try {
    await new Promise((r) => setTimeout(r, 200));
    return await fn();
  } finally {
    await hog.stop();
  }
}
