// Shared pieces of the report layer: the ReportError type, XML escaping, fixed number formatting, and the
// table / claim shapes that both the HTML report and the terminal summary render.
// It draws nothing and writes nothing; formatting is locale-free so the same numbers give the same bytes.

import type { Verdict } from "../eval/bootstrap.js";

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
  /** Kept for compatibility: true only when the verdict is "holds", null when not measured, else false. */
  holds: boolean | null;
  /** holds (95% interval above 0), contradicted (below 0), not shown (contains 0), not measured. */
  verdict?: Verdict;
  /** The pre-registered comparison: contender − baseline, in `unit`. */
  difference?: number | null;
  /** 95% interval of the difference. */
  interval?: [number, number] | null;
  /** Unit of difference and interval for display ("pp", "F1", "MB", "AUROC"). */
  unit?: string;
  /** The comparison chosen before the run, in words. */
  comparison?: string;
}

/** A claim's verdict; claims without one (older results) map holds true/false/null to holds/contradicted/not measured. */
export function claimVerdict(c: Claim): Verdict {
  if (c.verdict !== undefined) return c.verdict;
  return c.holds === true ? "holds" : c.holds === false ? "contradicted" : "not measured";
}

/** The status mark for a verdict, shared by the HTML and terminal renderings. */
export function claimMark(v: Verdict | boolean | null): string {
  const verdict: Verdict = typeof v === "string" ? v : v === true ? "holds" : v === false ? "contradicted" : "not measured";
  return VERDICT_MARKS[verdict];
}

const VERDICT_MARKS = Object.freeze({ holds: "✓", contradicted: "✗", "not shown": "~", "not measured": "–" } satisfies Record<
  Verdict,
  string
>);

/** The cell class of a verdict. */
export const VERDICT_CLASSES = Object.freeze({
  holds: "pass",
  contradicted: "fail",
  "not shown": "warn",
  "not measured": "muted",
} satisfies Record<Verdict, CellClass>);

/** "Δ +5.2 pp, 95% CI [+1.0, +9.3]" (empty when the claim has no difference). */
export function claimInterval(c: Claim): string {
  if (c.difference === undefined || c.difference === null || !Number.isFinite(c.difference)) return "";
  const f = (x: number) => `${x >= 0 ? "+" : "−"}${formatNumber(Math.abs(x), decimalsFor(c))}`;
  const unit = c.unit ? ` ${c.unit}` : "";
  const ci = c.interval ? `, 95% CI [${f(c.interval[0])}, ${f(c.interval[1])}]` : ", no interval";
  return `Δ ${f(c.difference)}${unit}${ci}`;
}

function decimalsFor(c: Claim): number {
  const span = Math.max(Math.abs(c.difference ?? 0), ...(c.interval ?? []).map(Math.abs));
  return span >= 100 ? 0 : span >= 10 ? 1 : span >= 0.1 ? 2 : 3;
}

/** "3 of 9 claims hold, 1 contradicted, 4 not shown, 1 not measured". */
export function claimSummary(claims: Claim[]): string {
  const n = (v: Verdict) => claims.filter((c) => claimVerdict(c) === v).length;
  return `${n("holds")} of ${claims.length} claims hold, ${n("contradicted")} contradicted, ${n("not shown")} not shown, ${n("not measured")} not measured`;
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
