// Backend selection: `auto | cuda | cpu | ref | sim` by API (`setBackend`) or the NEXUS_BACKEND variable.
// An explicit choice never falls back silently (asking for `cpu` without the addon, or `cuda` without a GPU, throws
// saying why); only `auto` chooses (cuda, then cpu, then ref) and says what it chose, once, on stderr.
// `sim` (a simulated device for tests) is only ever chosen by name. Precision (how matmul and attention
// multiply) is chosen here too, per backend: see setPrecision.

import { cpuUnavailableReason, createCpuKernels, loadCpuAddon } from "./cpu.js";
import { cudaKernels, cudaUnavailableReason } from "./cuda.js";
import { refKernels } from "./ref.js";
import { simKernels } from "./sim.js";
import type { AnyKernels, BackendName, MathMode, OpKernels } from "./types.js";

export type BackendChoice = BackendName | "auto";
export const BACKEND_CHOICES = ["auto", "cuda", "cpu", "ref", "sim"] as const satisfies readonly BackendChoice[];

export class BackendError extends Error {
  override name = "BackendError";
}

let current: OpKernels | null = null;
let cpuKernels: AnyKernels | null = null;

function cpu(): AnyKernels | null {
  const native = loadCpuAddon();
  if (native === null) return null;
  cpuKernels ??= createCpuKernels(native);
  return cpuKernels;
}

function announce(k: AnyKernels, why: string): void {
  if (process.env.NEXUS_QUIET === "1") return;
  const native = loadCpuAddon();
  const detail =
    k.device !== "host" ? k.describe() : k.name === "cpu" && native !== null ? `${native.simdLevel}, ${native.numThreads()} threads` : why;
  process.stderr.write(`[nexus] backend auto -> ${k.name} (${detail})\n`);
}

function resolve(choice: BackendChoice, say: boolean): AnyKernels {
  switch (choice) {
    case "ref":
      return refKernels;
    case "sim":
      return simKernels();
    case "cpu": {
      const k = cpu();
      if (k === null) throw new BackendError(`[backend] 'cpu' was requested but is unavailable: ${cpuUnavailableReason()}`);
      return k;
    }
    case "cuda": {
      const k = cudaKernels();
      if (k === null) throw new BackendError(`[backend] 'cuda' was requested but is unavailable: ${cudaUnavailableReason()}`);
      return k;
    }
    case "auto": {
      const k = cudaKernels() ?? cpu() ?? refKernels;
      if (say) announce(k, `native backend unavailable: ${cpuUnavailableReason()}`);
      return k;
    }
  }
}

export function parseBackendChoice(value: string, source: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new BackendError(`[backend] ${source} must be one of ${BACKEND_CHOICES.join(", ")}; got '${value}'`);
}

/** The kernels in use; chosen on first use from NEXUS_BACKEND (default auto). */
export function kernels(): OpKernels {
  if (current === null) current = resolve(parseBackendChoice(process.env.NEXUS_BACKEND ?? "auto", "NEXUS_BACKEND"), true);
  return current;
}

/** Select the backend for every following op; returns the name actually in use. `announce`: auto says what it picked. */
export function setBackend(choice: BackendChoice, opts: { announce?: boolean } = {}): BackendName {
  current = resolve(parseBackendChoice(choice, "setBackend"), opts.announce ?? false);
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

/** Backends usable on this machine for real work (`sim` is not one: see testBackends in the tests). */
export function availableBackends(): BackendName[] {
  const out: BackendName[] = ["ref"];
  if (loadCpuAddon() !== null) out.push("cpu");
  if (cudaKernels() !== null) out.push("cuda");
  return out;
}

// ---- precision ----

/** What a trainer asks for: `fp32` (float32 products; TF32 tensor cores on cuda) or `bf16` (AMP-style autocast). */
export type Precision = "fp32" | "bf16";
export const PRECISIONS = ["fp32", "bf16"] as const satisfies readonly Precision[];

let precision: Precision = "fp32";
/** Strict fp32 on cuda too (no TF32; NEXUS_STRICT_FP32=1): what the tests compare against ref at float32 tolerances. */
let strictFp32 = process.env.NEXUS_STRICT_FP32 === "1";

/**
 * Set how matmul and attention multiply from now on: fp32 master weights and fp32 everywhere else either way.
 * Throws on a backend that cannot do it (bf16 needs cuda, or the sim test backend).
 */
export function setPrecision(p: Precision, opts: { strictFp32?: boolean } = {}): void {
  if (p !== "fp32" && p !== "bf16") throw new BackendError(`[precision] must be fp32 or bf16, got '${p}'`);
  if (opts.strictFp32 !== undefined) strictFp32 = opts.strictFp32;
  checkPrecision(kernels(), p);
  precision = p;
}

export function getPrecision(): Precision {
  return precision;
}

/** Run fn at a precision, restoring the previous one afterwards. */
export function withPrecision<T>(p: Precision, fn: () => T): T {
  const prev = precision;
  setPrecision(p);
  try {
    return fn();
  } finally {
    precision = prev;
  }
}

function checkPrecision(k: OpKernels, p: Precision): void {
  if (p === "bf16" && !k.mathModes.includes("bf16")) {
    throw new BackendError(
      `[precision] bf16 is not available on the '${k.name}' backend: it multiplies in float32 only (bf16 autocast needs the ` +
        "cuda backend); use precision fp32",
    );
  }
}

/** The math mode of the current precision on backend k (fp32 becomes TF32 where the backend has it, unless strict). */
export function mathMode(k: OpKernels): MathMode {
  if (precision === "bf16") {
    if (!k.mathModes.includes("bf16")) checkPrecision(k, "bf16");
    return "bf16";
  }
  return !strictFp32 && k.name === "cuda" && k.mathModes.includes("tf32") ? "tf32" : "fp32";
}

export type { AnyKernels, BackendName, HostKernels, Kernels, MathMode, OpKernels } from "./types.js";
