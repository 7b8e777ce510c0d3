// The `cpu` backend's binding: loads the node-gyp addon lazily and declares its typed interface.
// Every kernel the addon exports under a `Kernels` method name replaces the `ref` loop of that name; kernels
// it does not export keep the TypeScript loop (still float32, still on this backend). Float64 is `ref`-only.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { refKernels } from "./ref.js";
import type { Kernels } from "./types.js";

export interface CpuAddon {
  simdLevel: string;
  numThreads(): number;
  [kernel: string]: unknown;
}

let addon: CpuAddon | null | undefined;
let loadError = "";

function findAddon(): string | null {
  // src/backend/cpu.ts and dist/src/backend/cpu.js both sit below the package root
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, "build", "Release", "nexus_cpu.node");
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

/** The native addon, or null when it was not built (the reason is in `cpuUnavailableReason()`). */
export function loadCpuAddon(): CpuAddon | null {
  if (addon !== undefined) return addon;
  const path = findAddon();
  if (path === null) {
    loadError = "build/Release/nexus_cpu.node not found (run `npm run build:native`)";
    addon = null;
    return addon;
  }
  try {
    addon = createRequire(import.meta.url)(path) as CpuAddon;
  } catch (e) {
    loadError = `${path} failed to load: ${(e as Error).message}`;
    addon = null;
  }
  return addon;
}

export function cpuUnavailableReason(): string {
  loadCpuAddon();
  return loadError;
}

function float32Only(name: string, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return (...args: unknown[]) => {
    for (const a of args) {
      if (a instanceof Float64Array) throw new TypeError(`[cpu ${name}] float64 tensors are only supported on the 'ref' backend`);
    }
    return fn(...args);
  };
}

/** Builds the cpu kernel table: native kernels where the addon has them, float32 TypeScript loops otherwise. */
export function createCpuKernels(native: CpuAddon): Kernels {
  const table: Record<string, unknown> = { ...refKernels, name: "cpu" };
  for (const key of Object.keys(refKernels)) {
    const fn = native[key];
    if (key !== "name" && typeof fn === "function") table[key] = float32Only(key, fn as (...a: unknown[]) => unknown);
  }
  return table as unknown as Kernels;
}

/** Names of the kernels that run natively (for `nexus bench` and diagnostics). */
export function nativeKernelNames(native: CpuAddon): string[] {
  return Object.keys(refKernels).filter((k) => typeof native[k] === "function");
}
