// Every fuzz target by name (the child process looks them up here; fuzz.ts runs them in this order).

import type { FuzzTarget } from "./harness.js";
import { cliTarget, jsonlTarget, trainerConfigTarget } from "./targets_data.js";
import { httpTarget } from "./targets_http.js";
import { chatTemplateTarget, configTarget, indexTarget, safetensorsTarget, tokenizerConfigTarget, tokenizerTarget } from "./targets_io.js";
import { nativeTarget } from "./targets_native.js";

export const TARGETS: Record<string, FuzzTarget> = Object.fromEntries(
  [
    safetensorsTarget,
    indexTarget,
    configTarget,
    tokenizerTarget,
    tokenizerConfigTarget,
    chatTemplateTarget,
    jsonlTarget,
    trainerConfigTarget,
    cliTarget,
    httpTarget,
    nativeTarget,
  ].map((t) => [t.name, t]),
);
