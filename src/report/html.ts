// The HTML report: one self-contained file (inline CSS, inline SVG charts, no scripts, no external resources,
// a Content-Security-Policy that forbids both) built from sections of paragraphs, claims, tables and charts.
// Markup is XHTML-compatible (void elements self-closed) so tests can check it as XML. It does not compute any
// metric or draw charts (see svg.ts); `writeReport` writes atomically (temp file + fsync + rename).

import * as fs from "node:fs";
import * as path from "node:path";
import {
  type Cell,
  type Claim,
  cellParts,
  checkTable,
  claimInterval,
  claimMark,
  claimSummary,
  claimVerdict,
  escapeXml,
  ReportError,
  type Table,
  VERDICT_CLASSES,
} from "./format.js";

/** A chart with an optional caption; a bare string is an SVG from svg.ts with no caption. */
export interface Figure {
  svg: string;
  caption?: string;
}

/** One section; its parts render in this order: paragraphs, claims, tables, charts. */
export interface Section {
  heading: string;
  /** Plain text, escaped; one <p> each. */
  paragraphs?: string[];
  claims?: Claim[];
  tables?: Table[];
  /** Inline SVG strings (trusted: inserted as they are) or figures. */
  charts?: (string | Figure)[];
}

export interface Report {
  title: string;
  subtitle?: string;
  sections: Section[];
  /** Footer text, e.g. the command line and the time of the run (the renderer adds no timestamp itself). */
  footer?: string;
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fafafa; color: #1f2328; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
header, main, footer, nav { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 28px; }
h1 { font-size: 1.8em; margin: 0 0 4px; }
h2 { font-size: 1.35em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
.subtitle { color: #57606a; margin: 0 0 8px; }
.summary { font-weight: 600; }
nav ol { margin: 8px 0; padding-left: 22px; columns: 2; }
nav a { color: #0969da; text-decoration: none; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 4px 20px 16px; margin: 20px 0; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.93em; max-width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; color: #333; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
.pass { background: #dafbe1; color: #116329; }
.fail { background: #ffebe9; color: #a40e26; }
.warn { background: #fff8c5; color: #7d4e00; }
.muted { color: #6e7781; }
.best { font-weight: 700; }
td.mark { font-size: 1.1em; text-align: center; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
figure { margin: 16px 0; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #57606a; font-size: 0.9em; }
footer { color: #6e7781; font-size: 0.85em; padding-bottom: 28px; }
@media (min-width: 1000px) { .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 0 20px; } .charts > figure { min-width: 0; } }
@media (max-width: 600px) { header, main, footer, nav { padding: 0 8px; } section { padding: 4px 10px 12px; } }
@media print {
  body { background: #fff; font-size: 11pt; }
  nav { display: none; }
  section { border: none; padding: 0; page-break-inside: auto; }
  figure, table, tr { break-inside: avoid; }
  .charts { display: block; }
}
`;

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** Renders the whole report as one HTML string (deterministic: same report → same bytes). */
export function renderReport(report: Report): string {
  const e = escapeXml;
  const ids = report.sections.map((s, i) => `s${i + 1}-${slug(s.heading)}`);
  const claims = report.sections.flatMap((s) => s.claims ?? []);
  const out: string[] = [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8" />',
    '<meta name="viewport" content="width=device-width, initial-scale=1" />',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}" />`,
    `<title>${e(report.title)}</title>`,
    `<style>${CSS}</style>`,
    "</head>",
    "<body>",
    "<header>",
    `<h1>${e(report.title)}</h1>`,
  ];
  if (report.subtitle) out.push(`<p class="subtitle">${e(report.subtitle)}</p>`);
  if (claims.length > 0) out.push(`<p class="summary">${e(claimSummary(claims))}</p>`);
  out.push("</header>");
  if (report.sections.length > 1) {
    out.push("<nav><ol>", ...report.sections.map((s, i) => `<li><a href="#${ids[i]}">${e(s.heading)}</a></li>`), "</ol></nav>");
  }
  out.push("<main>");
  for (const [i, s] of report.sections.entries()) out.push(renderSection(s, ids[i]!));
  out.push("</main>");
  if (report.footer) out.push(`<footer><p>${e(report.footer)}</p></footer>`);
  out.push("</body>", "</html>", "");
  return out.join("\n");
}

function renderSection(s: Section, id: string): string {
  const e = escapeXml;
  const out: string[] = [`<section id="${id}">`, `<h2>${e(s.heading)}</h2>`];
  for (const p of s.paragraphs ?? []) out.push(`<p>${e(p)}</p>`);
  if (s.claims && s.claims.length > 0) out.push(renderClaims(s.claims));
  for (const t of s.tables ?? []) out.push(renderTable(t));
  const charts = s.charts ?? [];
  if (charts.length > 0) {
    out.push('<div class="charts">');
    charts.forEach((ch, k) => {
      const fig = typeof ch === "string" ? { svg: ch } : ch;
      const svg = fig.svg.trim();
      if (!svg.startsWith("<svg") || !svg.endsWith("</svg>")) {
        throw new ReportError(
          `[renderReport] section "${s.heading}" chart ${k} is not an <svg>…</svg> string (starts "${svg.slice(0, 20)}")`,
        );
      }
      out.push(`<figure>${svg}${fig.caption ? `<figcaption>${e(fig.caption)}</figcaption>` : ""}</figure>`);
    });
    out.push("</div>");
  }
  out.push("</section>");
  return out.join("\n");
}

/** One HTML table; numeric cells are right-aligned and formatted by format.ts. */
export function renderTable(t: Table): string {
  checkTable(t, "renderReport");
  const e = escapeXml;
  const head = `<tr>${t.columns.map((col) => `<th scope="col">${e(col)}</th>`).join("")}</tr>`;
  const body = t.rows.map((row) => `<tr>${row.map((cell, j) => td(cell, t.digits?.[j])).join("")}</tr>`);
  const cap = t.caption ? `<caption>${e(t.caption)}</caption>` : "";
  return `<div class="table-wrap"><table>${cap}<thead>${head}</thead><tbody>${body.join("")}</tbody></table></div>`;
}

function td(cell: Cell, digits: number | undefined): string {
  const p = cellParts(cell, digits);
  const cls = [p.numeric ? "num" : "", p.cls ?? ""].filter(Boolean).join(" ");
  const attrs = `${cls ? ` class="${cls}"` : ""}${p.title ? ` title="${escapeXml(p.title)}"` : ""}`;
  return `<td${attrs}>${escapeXml(p.text)}</td>`;
}

/** The claims table: mark, id, statement, what was measured with the difference and its 95% interval, and the verdict in words. */
export function renderClaims(claims: Claim[]): string {
  const e = escapeXml;
  const rows = claims.map((c) => {
    const verdict = claimVerdict(c);
    const cls = VERDICT_CLASSES[verdict];
    const measured = c.measured ? e(c.measured) : '<span class="muted">not measured</span>';
    const ci = claimInterval(c);
    const how = c.comparison ? `<br/><span class="muted">${e(c.comparison)}</span>` : "";
    return (
      `<tr class="claim ${cls}"><td class="mark ${cls}">${claimMark(verdict)}</td><td><code>${e(c.id)}</code></td>` +
      `<td>${e(c.statement)}${how}</td><td>${measured}${ci ? `<br/>${e(ci)}` : ""}</td><td class="${cls}">${verdict}</td></tr>`
    );
  });
  const head = ["", "claim", "statement (pre-registered comparison)", "measured (difference, 95% CI)", "verdict"]
    .map((h) => `<th scope="col">${h}</th>`)
    .join("");
  return `<div class="table-wrap"><table class="claims"><caption>Claims</caption><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "section"
  );
}

/** Renders and writes the report atomically: `<file>.tmp-<pid>` in the same folder, fsync, rename. */
export function writeReport(file: string, report: Report): void {
  const html = renderReport(report);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeFileSync(fd, html);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the folder itself is unusable; nothing was written
    }
    throw new ReportError(`[writeReport] could not write ${file}: ${(err as Error).message}`);
  }
}
