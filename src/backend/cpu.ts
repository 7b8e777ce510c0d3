// The `cpu` backend's binding: loads the node-gyp addon lazily, declares its typed interface and checks at load
// that it exports every kernel of that interface (a stale or partial build is a load error naming the missing
// kernels, never a silent TypeScript fallback). A few kernels are TypeScript on purpose, listed in CPU_TS_KERNELS:
// V8's own typed-array fill and conversion, and the multi-tensor AdamW as a loop over the native one.
// Float64 is `ref`-only; bf16/tf32 products are not offered here (mathModes ["fp32"]).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { adamwEach, refKernels } from "./ref.js";
import { type FloatArray, type HostKernels, KERNEL_NAMES, type KernelName, type KernelSet } from "./types.js";

type HostSet = KernelSet<FloatArray, Int32Array>;

/** Kernels the cpu backend runs in TypeScript by design (each is already native code inside V8, or a loop of native calls). */
const CPU_TS_KERNELS = {
  fill: refKernels.fill,
  cast: refKernels.cast,
} satisfies Partial<HostSet>;

type CpuTsKernel = keyof typeof CPU_TS_KERNELS | "adamwMulti";
export type CpuNativeKernel = Exclude<KernelName, CpuTsKernel>;

/** What nexus_cpu.node must export: every kernel not in CPU_TS_KERNELS. */
export const CPU_NATIVE_KERNELS = KERNEL_NAMES.filter((n): n is CpuNativeKernel => !(n in CPU_TS_KERNELS) && n !== "adamwMulti");

export type CpuAddon = Pick<HostSet, CpuNativeKernel> & {
  simdLevel: string;
  numThreads(): number;
  [other: string]: unknown;
};

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

/** Names in `required` that `exports` does not provide as functions. */
export function missingKernels(exports: Record<string, unknown>, required: readonly string[]): string[] {
  return required.filter((k) => typeof exports[k] !== "function");
}

/** The native addon, or null when it was not built or is incomplete (the reason is in `cpuUnavailableReason()`). */
export function loadCpuAddon(): CpuAddon | null {
  if (addon !== undefined) return addon;
  const path = findAddon();
  if (path === null) {
    loadError = "build/Release/nexus_cpu.node not found (run `npm run build:native`)";
    addon = null;
    return addon;
  }
  // OpenMP's default wait (spin ~300k iterations after each parallel region, then sleep) makes its workers compete
  // for the cores with the JS thread that runs between kernels; on a busy machine each region then waits a time
  // slice (decode at W1 size: ~190 vs ~1,900 new tokens/s). Sleep at once unless the user chose a policy; libgomp
  // reads these when the addon loads it.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.OMP_WAIT_POLICY = "passive";
  try {
    const mod = createRequire(import.meta.url)(path) as Record<string, unknown>;
    const missing = missingKernels(mod, CPU_NATIVE_KERNELS);
    if (missing.length > 0) {
      loadError = `${path} lacks kernel(s) ${missing.join(", ")} (a stale build: run \`npm run build:native\`)`;
      addon = null;
    } else addon = mod as CpuAddon;
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

type AnyFn = (...args: unknown[]) => unknown;

function float32Only(name: string, fn: AnyFn): AnyFn {
  return (...args: unknown[]) => {
    for (const a of args) {
      if (a instanceof Float64Array) throw new TypeError(`[cpu ${name}] float64 tensors are only supported on the 'ref' backend`);
    }
    return fn(...args);
  };
}

/** The cpu kernel table: every native kernel (checked at load), plus the TypeScript ones listed above. */
export function createCpuKernels(native: CpuAddon): HostKernels {
  const nat = {} as Pick<HostSet, CpuNativeKernel>;
  for (const key of CPU_NATIVE_KERNELS) {
    (nat as Record<string, unknown>)[key] = float32Only(key, native[key] as unknown as AnyFn);
  }
  return {
    ...nat,
    ...CPU_TS_KERNELS,
    adamwMulti(params, grads, m, v, hyper) {
      adamwEach(nat.adamw, params, grads, m, v, hyper);
    },
    name: "cpu",
    device: "host",
    mathModes: ["fp32"],
  } satisfies HostKernels;
}

/** Names of the kernels that run natively (for `nexus bench` and diagnostics). */
export function nativeKernelNames(native: CpuAddon): string[] {
  return CPU_NATIVE_KERNELS.filter((k) => typeof native[k] === "function");
}
