// The kernel interface end to end: every backend object has every kernel of KERNEL_NAMES (the list the compiler checks
// against the interface); the native addons are checked at load against lists derived from it, so a stale or partial
// build is a load error naming what is missing; backend choices and their errors.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CPU_NATIVE_KERNELS, loadCpuAddon, missingKernels } from "../src/backend/cpu.js";
import { CUDA_COMPOSED, CUDA_EXPORTS, cudaUnavailableReason } from "../src/backend/cuda.js";
import { kernels, parseBackendChoice, setBackend, withBackend } from "../src/backend/index.js";
import { KERNEL_NAMES, KERNEL_NAMES_COMPLETE } from "../src/backend/types.js";
import { testBackends } from "./helpers/backends.js";

describe("kernel interface", () => {
  test("KERNEL_NAMES lists every kernel of the interface (checked by the compiler) without repeats", () => {
    assert.equal(KERNEL_NAMES_COMPLETE, true);
    assert.equal(new Set(KERNEL_NAMES).size, KERNEL_NAMES.length);
  });

  for (const backend of testBackends()) {
    test(`'${backend}' implements every kernel`, () => {
      const k = withBackend(backend, () => kernels()) as unknown as Record<string, unknown>;
      const missing = KERNEL_NAMES.filter((n) => typeof k[n] !== "function");
      assert.deepEqual(missing, [], `'${backend}' lacks ${missing.join(", ")}`);
      assert.equal(k.name, backend);
    });
  }

  test("the cpu addon is checked at load against the kernels it must export", () => {
    assert.deepEqual(missingKernels({ unary: () => 0, matmul: () => 0 }, ["unary", "sort", "matmul", "copyToStrided"]), [
      "sort",
      "copyToStrided",
    ]);
    // everything but the TypeScript-by-design kernels (fill, cast, adamwMulti) is native
    assert.deepEqual(
      KERNEL_NAMES.filter((n) => !CPU_NATIVE_KERNELS.includes(n as never)),
      ["fill", "cast", "adamwMulti"],
    );
    const addon = loadCpuAddon();
    if (addon !== null) assert.deepEqual(missingKernels(addon, CPU_NATIVE_KERNELS), []);
  });

  test("nexus_cuda must export every kernel and its memory calls; a build here exports them all", (t) => {
    // every kernel is native except the few the binding composes from other calls (each listed with its reason)
    assert.deepEqual(CUDA_COMPOSED, ["logSoftmax", "sampleTokens", "packedWeightSize", "packWeight", "linearPacked"]);
    for (const k of KERNEL_NAMES) if (!CUDA_COMPOSED.includes(k)) assert.ok(CUDA_EXPORTS.includes(k), `CUDA_EXPORTS lacks ${k}`);
    for (const m of ["init", "malloc", "free", "upload", "download", "synchronize", "deviceInfo"]) assert.ok(CUDA_EXPORTS.includes(m));
    const path = fileURLToPath(new URL("../build-cuda/nexus_cuda.node", import.meta.url));
    if (!existsSync(path)) {
      t.diagnostic("nexus_cuda.node is not built here (npm run build:cuda)");
      return;
    }
    let mod: Record<string, unknown>;
    try {
      mod = createRequire(import.meta.url)(path) as Record<string, unknown>;
    } catch (e) {
      t.diagnostic(`nexus_cuda.node does not load here: ${(e as Error).message}`);
      return;
    }
    assert.deepEqual(missingKernels(mod, CUDA_EXPORTS), []);
  });
});

describe("backend choice", () => {
  test("names are checked; an explicit cuda without a GPU says why instead of falling back", () => {
    assert.throws(() => parseBackendChoice("gpu", "--backend"), /--backend must be one of auto, cuda, cpu, ref, sim; got 'gpu'/);
    if (!testBackends().includes("cuda")) {
      const reason = cudaUnavailableReason();
      assert.ok(reason.length > 0);
      assert.throws(
        () => setBackend("cuda"),
        (e: Error) => e.message === `[backend] 'cuda' was requested but is unavailable: ${reason}`,
      );
    }
    assert.equal(setBackend("auto"), testBackends().includes("cuda") ? "cuda" : loadCpuAddon() ? "cpu" : "ref");
  });
});
