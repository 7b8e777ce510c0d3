// Entry of the serve generation worker when Nexus runs from its TypeScript sources (tests, `tsx`): worker threads
// do not inherit `--import tsx`, so this registers tsx and imports the worker module named in workerData.entry.
// Compiled installs start dist/src/serve/engine_worker.js directly and never load this file.
import { workerData } from "node:worker_threads";

const { register } = await import("tsx/esm/api");
register();
await import(workerData.entry);
