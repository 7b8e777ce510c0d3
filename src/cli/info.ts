// `nexus info`: which backend `auto` picks, the SIMD level and threads of the native addon, versions.

import type { Command } from "commander";
import { cpuUnavailableReason, loadCpuAddon, nativeKernelNames } from "../backend/cpu.js";
import { backendName } from "../backend/index.js";

export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("show the compute backend, SIMD level and native kernels")
    .option("--json", "print one JSON object", false)
    .action((opts: { json: boolean }) => {
      const addon = loadCpuAddon();
      const info = {
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
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    });
}
