// Shared pieces of the report layer: the ReportError type, XML escaping, fixed number formatting, and the
// table / claim shapes that both the HTML report and the terminal summary render.
// It draws nothing and writes nothing; formatting is locale-free so the same numbers give the same bytes.

export class ReportError extends Error {
  override name = "ReportError";
}

/** Escapes text for XML/HTML element content and double- or single-quoted attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ENTITIES[c]!);
}

const XML_ENTITIES: Readonly<Record<string, string>> = Object.freeze({
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
});

/**
 * Formats a number for a table or label, independent of locale: integers as they are, other values with
 * `digits` decimals when given, else 4 significant digits (exponent form below 1e-4 or from 1e6 on).
 */
export function formatNumber(value: number, digits?: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (digits !== undefined) return normZero(value.toFixed(digits));
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return value.toExponential(3).replace(/\.?0+e/, "e");
  // toPrecision then Number() drops trailing zeros and never yields an exponent in this range.
  return normZero(String(Number(value.toPrecision(4))));
}

function normZero(s: string): string {
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** A cell class the report's stylesheet knows. */
export type CellClass = "pass" | "fail" | "warn" | "muted" | "best";

/** A table cell: a bare value, or a value with a class (colouring) and a tooltip. null renders as "—". */
export type Cell = string | number | null | { value: string | number | null; class?: CellClass; title?: string };

export interface Table {
  /** Column headers. */
  columns: string[];
  /** Rows; each has one cell per column. */
  rows: Cell[][];
  /** Shown above the table. */
  caption?: string;
  /** Decimals per column for non-integer numbers (undefined: 4 significant digits). */
  digits?: (number | undefined)[];
}

/** One seed claim of the report and what the run measured for it. */
export interface Claim {
  /** Stable identifier, e.g. "grpo_beats_sft". */
  id: string;
  /** What is claimed, in words. */
  statement: string;
  /** What was measured, e.g. "41.2 % → 63.0 % pass@1"; empty or null when not measured. */
  measured: string | null;
  /** true holds, false fails, null not measured. */
  holds: boolean | null;
}

/** The status word for a claim, shared by the HTML and terminal renderings. */
export function claimMark(holds: boolean | null): string {
  return holds === true ? "✓" : holds === false ? "✗" : "–";
}

/** "3 of 4 claims hold, 1 fails, 0 not measured". */
export function claimSummary(claims: Claim[]): string {
  const held = claims.filter((c) => c.holds === true).length;
  const failed = claims.filter((c) => c.holds === false).length;
  const unmeasured = claims.length - held - failed;
  return `${held} of ${claims.length} claims hold, ${failed} ${failed === 1 ? "fails" : "fail"}, ${unmeasured} not measured`;
}

/** A cell's text (numbers formatted) and its optional class/title. */
export function cellParts(cell: Cell, digits?: number): { text: string; cls?: CellClass; title?: string; numeric: boolean } {
  const obj = cell !== null && typeof cell === "object" ? cell : { value: cell };
  const v = obj.value;
  const text = v === null ? "—" : typeof v === "number" ? formatNumber(v, Number.isInteger(v) ? undefined : digits) : v;
  return {
    text,
    cls: "class" in obj ? obj.class : undefined,
    title: "title" in obj ? obj.title : undefined,
    numeric: typeof v === "number",
  };
}

/** Checks that every row has one cell per column. */
export function checkTable(table: Table, where: string): void {
  table.rows.forEach((row, i) => {
    if (row.length !== table.columns.length) {
      throw new ReportError(`[${where}] table "${table.caption ?? ""}" row ${i} has ${row.length} cells, expected ${table.columns.length}`);
    }
  });
}
