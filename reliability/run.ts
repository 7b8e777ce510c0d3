// `npm run reliability [-- --only a,b] [--quick] [--json] [--seed N]`: runs each part of the reliability suite
// (see common.ts), prints one table row per part (or, with --json, one JSON object per line on stdout) and exits
// non-zero when anything did not hold. Parts live in their own files; adding one is one line in PARTS.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatTable, jsonLine, type PartFn, type PartName, type PartResult } from "./common.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
type Loader = () => Promise<PartFn | string>;

/** part → (file in reliability/, exported function), in the order they run. */
const PARTS: Record<PartName, Loader> = {
  kill_resume: lazy("kill_resume.ts", "killResume"),
  fuzz: lazy("fuzz.ts", "fuzz"),
  serve_load: lazy("serve_load.ts", "serveLoad"),
  serve_malformed: lazy("serve_malformed.ts", "serveMalformed"),
  nonfinite: lazy("nonfinite.ts", "nonfinite"),
  disk: lazy("disk.ts", "disk"),
  determinism: lazy("determinism.ts", "determinism"),
  contention: lazy("contention.ts", "contention"),
};

function lazy(file: string, exportName: string): Loader {
  return async () => {
    if (!existsSync(join(HERE, file))) return `reliability/${file} does not exist`;
    const fn = ((await import(`./${file}`)) as Record<string, unknown>)[exportName];
    return typeof fn === "function" ? (fn as PartFn) : `reliability/${file} does not export ${exportName}()`;
  };
}

interface Args {
  only: PartName[] | null;
  quick: boolean;
  json: boolean;
  seed: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { only: null, quick: false, json: false, seed: 0 };
  const known = Object.keys(PARTS);
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i] ?? "";
    if (flag === "--quick") a.quick = true;
    else if (flag === "--json") a.json = true;
    else if (flag === "--seed") {
      a.seed = Number(value());
      if (!Number.isInteger(a.seed)) throw new Error("--seed needs an integer");
    } else if (flag === "--only") {
      const names = value().split(",").filter(Boolean);
      const bad = names.filter((n) => !known.includes(n));
      if (names.length === 0 || bad.length > 0) throw new Error(`--only takes a comma-separated list of: ${known.join(", ")}`);
      a.only = names as PartName[];
    } else if (flag === "--help" || flag === "-h") {
      process.stdout.write(`usage: npm run reliability -- [--only a,b] [--quick] [--json] [--seed N]\nparts: ${known.join(", ")}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument '${argv[i]}' (try --help)`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rows: PartResult[] = [];
  let missing = 0;
  for (const name of args.only ?? (Object.keys(PARTS) as PartName[])) {
    const fn = await PARTS[name]();
    if (typeof fn === "string") {
      process.stderr.write(`[reliability] ${name}: not run (${fn})\n`);
      missing++;
      continue;
    }
    const workDir = mkdtempSync(join(tmpdir(), `nexus-rel-${name}-`));
    const t0 = performance.now();
    process.stderr.write(`[reliability] ${name}${args.quick ? " (quick)" : ""}...\n`);
    try {
      const r = await fn({ quick: args.quick, seed: args.seed, workDir, note: (m) => process.stderr.write(`  ${m}\n`) });
      r.detail.seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      rows.push(r);
      if (args.json) process.stdout.write(`${jsonLine(r)}\n`);
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  }
  if (!args.json) process.stdout.write(`${formatTable(rows)}\n`);
  if (rows.some((r) => r.failed > 0) || missing > 0) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`[reliability] ${(e as Error).stack ?? e}\n`);
  process.exitCode = 2;
});
