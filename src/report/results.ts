// Plain-text renderings for the terminal: the claims table as aligned lines (✓ / ✗ / –) and
// any report table as aligned columns. Colour (ANSI) only when asked or when stdout is a TTY and NO_COLOR is
// unset. It prints nothing itself; the CLI decides where the lines go.

import { type Claim, cellParts, checkTable, claimInterval, claimMark, claimVerdict, type Table } from "./format.js";

export interface TextOptions {
  /** ANSI colours; default: stdout is a TTY and NO_COLOR is not set. */
  color?: boolean;
}

const ANSI = Object.freeze({ pass: "\x1b[32m", fail: "\x1b[31m", muted: "\x1b[2m", bold: "\x1b[1m", reset: "\x1b[0m" });

function useColor(opts: TextOptions | undefined): boolean {
  return opts?.color ?? (process.stdout.isTTY === true && process.env.NO_COLOR === undefined);
}

/** Display width in code points (the report's marks and arrows are one column wide). */
function width(s: string): number {
  return Array.from(s).length;
}

function pad(s: string, w: number, right = false): string {
  const fill = " ".repeat(Math.max(0, w - width(s)));
  return right ? fill + s : s + fill;
}

/**
 * One line per claim, ids padded to one column, then the verdict and the interval:
 * `✓ grpo_beats_sft  GRPO improves over SFT: 41.2 % → 63.0 % pass@1 [holds; Δ +21.8 pp, 95% CI [+12.0, +30.1]]`;
 * unmeasured claims end in "not measured".
 */
export function formatClaimsTable(claims: Claim[], opts?: TextOptions): string {
  const color = useColor(opts);
  const w = Math.max(0, ...claims.map((c) => width(c.id)));
  return claims
    .map((c) => {
      const verdict = claimVerdict(c);
      const tone = verdict === "holds" ? ANSI.pass : verdict === "contradicted" ? ANSI.fail : ANSI.muted;
      const mark = color ? `${tone}${claimMark(verdict)}${ANSI.reset}` : claimMark(verdict);
      if (verdict === "not measured") return `${mark} ${pad(c.id, w)}  ${c.statement}: ${c.measured ? `${c.measured} ` : ""}[not measured]`;
      const measured = c.measured ? c.measured : "(no measurement given)";
      const ci = claimInterval(c);
      return `${mark} ${pad(c.id, w)}  ${c.statement}: ${measured} [${verdict}${ci ? `; ${ci}` : ""}]`;
    })
    .join("\n");
}

/** A report table as aligned text: caption line, header, a rule, rows; numbers right-aligned. */
export function formatTextTable(table: Table, opts?: TextOptions): string {
  checkTable(table, "formatTextTable");
  const color = useColor(opts);
  const cells = table.rows.map((row) => row.map((cell, j) => cellParts(cell, table.digits?.[j])));
  const widths = table.columns.map((col, j) => Math.max(width(col), ...cells.map((r) => width(r[j]!.text))));
  const numeric = table.columns.map((_, j) => cells.length > 0 && cells.every((r) => r[j]!.numeric || r[j]!.text === "—"));
  const lines: string[] = [];
  if (table.caption) lines.push(color ? `${ANSI.bold}${table.caption}${ANSI.reset}` : table.caption);
  lines.push(
    table.columns
      .map((col, j) => pad(col, widths[j]!, numeric[j]))
      .join("  ")
      .trimEnd(),
  );
  lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of cells) {
    const parts = r.map((p, j) => {
      const s = pad(p.text, widths[j]!, numeric[j]);
      const tone = p.cls === "pass" ? ANSI.pass : p.cls === "fail" ? ANSI.fail : p.cls === "muted" ? ANSI.muted : "";
      return color && tone ? `${tone}${s}${ANSI.reset}` : s;
    });
    lines.push(parts.join("  ").trimEnd());
  }
  return lines.join("\n");
}
