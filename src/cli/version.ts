// The package's version, read from its package.json (found by walking up from this file, so it works from
// src/ under tsx and from dist/ when built).

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | null = null;

/** `version` of the nexus-align package.json above this file. */
export function packageVersion(): string {
  if (cached !== null) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const f = join(dir, "package.json");
    if (existsSync(f)) {
      const pkg = JSON.parse(readFileSync(f, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "nexus-align" && typeof pkg.version === "string") return (cached = pkg.version);
    }
    dir = dirname(dir);
  }
  throw new Error("[cli] cannot find nexus-align's package.json");
}
