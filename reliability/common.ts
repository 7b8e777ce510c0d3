// What every part of `npm run reliability` shares: the part contract (a seeded, bounded attempt to break one
// property of Nexus, counting what was tried and what held) and the table / JSON-line output.
// Parts live in their own files; run.ts registers them. A short version of each part runs in `npm test`.

export type PartName = "kill_resume" | "fuzz" | "serve_load" | "serve_malformed" | "nonfinite" | "disk" | "determinism" | "contention";

export interface PartResult {
  part: PartName;
  /** Attempts made (runs killed, inputs mutated, requests sent...). */
  tried: number;
  /** Attempts after which the promised property held. */
  held: number;
  /** Attempts after which it did not; tried = held + failed. */
  failed: number;
  /** Figures and the first failures (enough to reproduce: seed, input, message). */
  detail: Record<string, unknown>;
}

export interface PartOptions {
  /** The short version (what `npm test` runs): fewer attempts, same checks. */
  quick: boolean;
  /** Seed of every random choice in the part. */
  seed: number;
  /** A scratch folder of the part's own (removed by the runner afterwards). */
  workDir: string;
  /** A progress line (stderr). */
  note: (msg: string) => void;
}

export type PartFn = (o: PartOptions) => Promise<PartResult>;

export function jsonLine(r: PartResult): string {
  return JSON.stringify({ part: r.part, tried: r.tried, held: r.held, failed: r.failed, detail: r.detail });
}

export function formatTable(rows: readonly PartResult[]): string {
  const head = ["part", "tried", "held", "failed", "verdict"];
  const body = rows.map((r) => [r.part, String(r.tried), String(r.held), String(r.failed), r.failed === 0 ? "held" : "FAILED"]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}
