// Liveness of `nexus serve`, shared between threads. The HTTP thread beats into a SharedArrayBuffer and records the
// server's state (serving, draining, failed); a verdict reads it: 200 while the HTTP thread keeps beating and the
// generation worker is alive, else 503 with the reason. The main port's GET /health and the health listener
// (--health-port, health_worker.ts) give the same verdict. Why a listener of its own: under a burst of new
// connections the HTTP thread answers them in arrival order, and with a 1,000-connection burst on 2 cores a probe
// behind them waited 150-450 ms even when every request was answered with a constant 429 (measured, Node 20),
// while the health listener's event loop has nothing else to do.
// Not here: the listener thread (health_worker.ts), the API routes (server.ts).

import { Worker } from "node:worker_threads";
import { workerEntry } from "./worker_entry.js";

export type ServerState = "serving" | "draining" | "failed";
const STATES: readonly ServerState[] = ["serving", "draining", "failed"];
const REASONS: Record<ServerState, string> = {
  serving: "",
  draining: "shutting down: finishing admitted requests",
  failed: "the generation worker failed",
};

/** Default: the HTTP thread counts as stuck after 10 s without a beat. */
export const HEALTH_STALE_MS = 10_000;
const BEAT_MS = 100;

/** The HTTP thread's side: beats every 100 ms (an unref'd timer) and the state. */
export class HealthBoard {
  /** [0] the last beat (ms since the epoch), [1] the state's index in STATES. */
  readonly shared = new SharedArrayBuffer(16);
  private readonly cells = new BigInt64Array(this.shared);
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.beat();
    this.timer = setInterval(() => this.beat(), BEAT_MS).unref();
  }

  beat(): void {
    Atomics.store(this.cells, 0, BigInt(Date.now()));
  }

  /** Draining and failed are final: a failed server never reads as draining, neither as serving. */
  set(state: Exclude<ServerState, "serving">): void {
    const i = STATES.indexOf(state);
    if (i > Number(Atomics.load(this.cells, 1))) Atomics.store(this.cells, 1, BigInt(i));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface HealthVerdict {
  status: 200 | 503;
  /** Empty when healthy. */
  reason: string;
}

/** The verdict at time `now` (ms since the epoch) from a board's shared memory. */
export function healthVerdict(shared: SharedArrayBuffer, now: number, staleMs: number): HealthVerdict {
  const cells = new BigInt64Array(shared);
  const state = STATES[Number(Atomics.load(cells, 1))] ?? "failed";
  if (state !== "serving") return { status: 503, reason: REASONS[state] };
  const silent = now - Number(Atomics.load(cells, 0));
  if (silent > staleMs) return { status: 503, reason: `the HTTP thread has not run for ${silent} ms (limit ${staleMs} ms)` };
  return { status: 200, reason: "" };
}

export interface HealthListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the health listener thread on host:port (0 picks a free port); resolves once it listens. */
export function startHealthListener(board: HealthBoard, host: string, port: number, staleMs: number): Promise<HealthListener> {
  const { file, data } = workerEntry(import.meta.url, "health_worker");
  const worker = new Worker(file, { workerData: { ...data, shared: board.shared, host, port, staleMs }, execArgv: process.execArgv });
  return new Promise((resolve, reject) => {
    const failed = (why: string) => {
      void worker.terminate();
      reject(new Error(`[serve] the health listener on ${host}:${port} did not start: ${why}`));
    };
    worker.once("error", (e) => failed(e.message));
    worker.once("exit", (code) => failed(`its thread exited (code ${code})`));
    worker.once("message", (m: { port?: number; error?: string }) => {
      if (m.port === undefined) return failed(m.error ?? "no port");
      worker.removeAllListeners("exit");
      worker.unref();
      const shown = host.includes(":") ? `[${host}]` : host;
      resolve({
        url: `http://${shown}:${m.port}`,
        port: m.port,
        async close() {
          await worker.terminate();
        },
      });
    });
  });
}
