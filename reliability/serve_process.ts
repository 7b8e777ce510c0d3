// The real `nexus serve` as a child process for the server parts: started on a free loopback port with the
// tiny fixture model, its memory read from /proc, stopped with a signal and its exit code collected.
// Not here: what is sent to it (serve_requests.ts).

import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { FIXTURES } from "./fixtures.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

export interface ServeProcess {
  url: string;
  port: number;
  /** The health listener's port (`--health-port 0` among the arguments), else null. */
  healthPort: number | null;
  pid: number;
  /** Resident and peak resident memory of the server, in MiB. */
  memory(): { rssMiB: number; peakMiB: number };
  /** Send a signal and wait for the exit: code (null if killed) and the signal that ended it. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  stderr(): string;
}

export function startServe(extra: string[], cwd: string): Promise<ServeProcess> {
  const args = [
    "--import",
    TSX,
    path.join(ROOT, "src/cli/main.ts"),
    "serve",
    "--model",
    path.join(FIXTURES, "llama-tiny"),
    "--tokenizer",
    path.join(FIXTURES, "tokenizer"),
    "--port",
    "0",
    "--served-model-name",
    "tiny",
    ...extra,
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, OMP_NUM_THREADS: "1" },
  });
  let err = "";
  child.stderr?.on("data", (c) => {
    err = (err + c).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`nexus serve did not start within 60 s: ${err.slice(-500)}`)), 60_000);
    child.stdout?.on("data", (c) => {
      out += c;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      const url = m[1];
      const pid = child.pid as number;
      const health = /health on (http:\/\/[^\s]+)/.exec(out);
      resolve({
        url,
        port: Number(new URL(url).port),
        healthPort: health === null ? null : Number(new URL(health[1]).port),
        pid,
        memory() {
          const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
          const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? Number.NaN);
          return { rssMiB: kb("VmRSS") / 1024, peakMiB: kb("VmHWM") / 1024 };
        },
        async stop(signal = "SIGTERM", timeoutMs = 30_000) {
          child.kill(signal);
          const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
          const r = await exited;
          clearTimeout(t);
          return { ...r, stderr: err };
        },
        stderr: () => err,
      });
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nexus serve exited (${code}) before listening: ${err.slice(-500)}`));
    });
  });
}

/** p-th percentile (0-100) of a list, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
