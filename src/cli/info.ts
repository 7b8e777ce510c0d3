// `nexus info`: which backend `auto` picks, the SIMD level and threads of the native addon, versions.

import type { Command } from "commander";
import { z } from "zod";
import { cpuUnavailableReason, loadCpuAddon, nativeKernelNames } from "../backend/cpu.js";
import { backendName } from "../backend/index.js";
import { registerSchemaCommand } from "./schema_command.js";
import { packageVersion } from "./version.js";

export function registerInfo(program: Command): void {
  registerSchemaCommand(program, {
    name: "info",
    description: "show the version, compute backend, SIMD level and native kernels",
    schema: z.object({ json: z.boolean().default(false).describe("print one JSON object") }).strict(),
    action: (opts) => {
      const addon = loadCpuAddon();
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
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    },
  });
}
