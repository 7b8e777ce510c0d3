// How `nexus serve` starts a worker thread of its own modules (the generation worker, the health listener): the
// compiled module directly, or, when Nexus runs from its TypeScript sources (tests, tsx), worker_bootstrap.mjs,
// which registers tsx first (worker threads do not inherit `--import tsx`).

import { fileURLToPath } from "node:url";

/** The file to start and the workerData fields the bootstrap needs, for module `name` beside `siblingUrl`. */
export function workerEntry(siblingUrl: string, name: string): { file: string; data: { entry?: string } } {
  if (siblingUrl.endsWith(".ts")) {
    return {
      file: fileURLToPath(new URL("./worker_bootstrap.mjs", siblingUrl)),
      data: { entry: new URL(`./${name}.ts`, siblingUrl).href },
    };
  }
  return { file: fileURLToPath(new URL(`./${name}.js`, siblingUrl)), data: {} };
}
