// The backends a parametric suite runs on: every backend usable here (ref, cpu when built, cuda when a GPU answers)
// plus `sim`, the simulated device that runs the device code paths (opaque buffers, counted transfers, the caching
// allocator) on the host. Without a GPU, the first call prints one line saying why cuda is skipped.

import { cudaUnavailableReason } from "../../src/backend/cuda.js";
import { availableBackends, type BackendName } from "../../src/backend/index.js";

let said = false;

export function testBackends(): BackendName[] {
  const out = availableBackends();
  if (!out.includes("cuda") && !said) {
    said = true;
    process.stdout.write(`# cuda skipped: ${cudaUnavailableReason()}\n`);
  }
  return [...out, "sim"];
}

/** Device backends among testBackends() (sim, and cuda when present). */
export function deviceBackends(): BackendName[] {
  return testBackends().filter((b) => b === "sim" || b === "cuda");
}
