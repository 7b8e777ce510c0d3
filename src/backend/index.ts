// Backend selection: `auto | cpu | ref` by API (`setBackend`) or the NEXUS_BACKEND variable.
// An explicit choice never falls back silently (asking for `cpu` without the addon throws);
// only `auto` chooses (cpu, then ref) and says what it chose, once, on stderr.

import { cpuUnavailableReason, createCpuKernels, loadCpuAddon } from "./cpu.js";
import { refKernels } from "./ref.js";
import type { BackendName, Kernels } from "./types.js";

export type BackendChoice = BackendName | "auto";

export class BackendError extends Error {
  override name = "BackendError";
}

let current: Kernels | null = null;
let cpuKernels: Kernels | null = null;

function resolve(choice: BackendChoice, announce: boolean): Kernels {
  if (choice === "ref") return refKernels;
  const native = loadCpuAddon();
  if (choice === "cpu") {
    if (native === null) throw new BackendError(`[backend] 'cpu' was requested but is unavailable: ${cpuUnavailableReason()}`);
  }
  if (native !== null) {
    cpuKernels ??= createCpuKernels(native);
    if (choice === "auto" && announce && process.env.NEXUS_QUIET !== "1") {
      process.stderr.write(`[nexus] backend auto -> cpu (${native.simdLevel}, ${native.numThreads()} threads)\n`);
    }
    return cpuKernels;
  }
  if (announce) process.stderr.write(`[nexus] backend auto -> ref (native backend unavailable: ${cpuUnavailableReason()})\n`);
  return refKernels;
}

function parseChoice(value: string, source: string): BackendChoice {
  if (value === "auto" || value === "cpu" || value === "ref") return value;
  throw new BackendError(`[backend] ${source} must be auto, cpu or ref; got '${value}'`);
}

/** The kernels in use; chosen on first use from NEXUS_BACKEND (default auto). */
export function kernels(): Kernels {
  if (current === null) current = resolve(parseChoice(process.env.NEXUS_BACKEND ?? "auto", "NEXUS_BACKEND"), true);
  return current;
}

/** Select the backend for every following op; returns the name actually in use. */
export function setBackend(choice: BackendChoice): BackendName {
  current = resolve(parseChoice(choice, "setBackend"), false);
  return current.name;
}

export function backendName(): BackendName {
  return kernels().name;
}

/** Run fn with another backend, restoring the previous one afterwards (tests, comparisons). */
export function withBackend<T>(choice: BackendChoice, fn: () => T): T {
  const prev = current;
  setBackend(choice);
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** Backends usable on this machine (for running one test suite on each). */
export function availableBackends(): BackendName[] {
  return loadCpuAddon() === null ? ["ref"] : ["ref", "cpu"];
}

export type { BackendName, Kernels } from "./types.js";
