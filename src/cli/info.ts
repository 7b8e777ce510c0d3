// `nexus info`: which backend `auto` picks, the SIMD level and threads of the native addon, the GPU (name, driver,
// memory, cuBLASLt) when the cuda backend runs here or why it does not, versions.

import type { Command } from "commander";
import { z } from "zod";
import { cpuUnavailableReason, loadCpuAddon, nativeKernelNames } from "../backend/cpu.js";
import { cudaDeviceInfo, cudaUnavailableReason } from "../backend/cuda.js";
import { backendName } from "../backend/index.js";
import { cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { packageVersion } from "./version.js";

export function registerInfo(program: Command): void {
  registerSchemaCommand(program, {
    name: "info",
    description: "show the version, compute backend, SIMD level, native kernels and the GPU",
    schema: z.object({ json: z.boolean().default(false).describe("print one JSON object") }).strict(),
    action: (opts) => {
      const addon = loadCpuAddon();
      const gpu = cudaDeviceInfo();
      const info = {
        nexus: packageVersion(),
        node: process.version,
        backend: backendName(),
        native:
          addon === null
            ? { available: false, reason: cpuUnavailableReason() }
            : {
                available: true,
                simd: addon.simdLevel,
                threads: addon.numThreads(),
                kernels: nativeKernelNames(addon),
              },
        cuda:
          gpu === null
            ? { available: false, reason: cudaUnavailableReason() }
            : {
                available: true,
                gpu: gpu.name,
                computeCapability: gpu.computeCapability,
                multiprocessors: gpu.multiprocessors,
                memoryGiB: Number((gpu.totalBytes / 2 ** 30).toFixed(2)),
                freeGiB: Number((gpu.freeBytes / 2 ** 30).toFixed(2)),
                driver: gpu.driverVersion,
                runtime: gpu.runtimeVersion,
                cublasLt: gpu.cublasLt,
              },
      };
      if (opts.json) cliOut(`${JSON.stringify(info)}\n`);
      else cliOut(`${JSON.stringify(info, null, 2)}\n`);
    },
  });
}
