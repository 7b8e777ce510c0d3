// Chart primitives that return inline SVG strings: line chart, grouped bar chart and scatter, with nice axis
// ticks, a legend and a fixed colour palette. Hand-written SVG, no dependencies, no scripts, no fonts loaded.
// Output is deterministic (same spec → same bytes): coordinates are rounded to 0.01 and ids come from a hash of
// the spec. It does not do layout beyond one chart, interactivity, or text measurement (widths are estimated).

import { escapeXml, formatNumber, ReportError } from "./format.js";

/** Tableau 10 (first 8): distinct on white and in greyscale print; series past 8 also get a dash pattern. */
export const PALETTE: readonly string[] = Object.freeze([
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#b07aa1",
  "#edc948",
  "#9c755f",
]);
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

export interface Series {
  name: string;
  /** [x, y] pairs; non-finite values break the line (and are skipped by scatter). */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Fixed y domain [min, max]; points outside are clipped. Default: nice bounds around the data. */
  yRange?: [number, number];
  /** Logarithmic x axis (base 10); points with x ≤ 0 are dropped. */
  logX?: boolean;
  width?: number;
  height?: number;
}

export interface ScatterSpec extends LineChartSpec {
  /** Draws the y = x line (for calibration plots). */
  diagonal?: boolean;
  /** Fixed x domain. */
  xRange?: [number, number];
}

export interface Bar {
  name: string;
  value: number;
  /** Half-width of the error bar (e.g. a standard error), drawn as value ± error. */
  error?: number;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarChartSpec {
  title: string;
  yLabel: string;
  groups: BarGroup[];
  yRange?: [number, number];
  /** Decimals of the value labels (default: 4 significant digits). */
  digits?: number;
  width?: number;
  height?: number;
}

export interface Ticks {
  /** Tick values, ascending, covering [min, max]. */
  ticks: number[];
  min: number;
  max: number;
  step: number;
  /** Decimals that show every tick exactly. */
  decimals: number;
}

/** Nice ticks (steps of 1, 2 or 5 × 10^k) covering [lo, hi] with about maxTicks ticks. */
export function niceTicks(lo: number, hi: number, maxTicks = 6): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new ReportError(`[niceTicks] bounds must be finite, got ${lo}, ${hi}`);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / Math.max(1, maxTicks - 1);
  let e = Math.floor(Math.log10(raw));
  const f = raw / 10 ** e;
  let m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  if (m === 10) [m, e] = [1, e + 1];
  // k·m·10^e computed as a division for e < 0 so that 3·0.1 prints as 0.3.
  const at = (k: number) => (e >= 0 ? k * m * 10 ** e : (k * m) / 10 ** -e);
  const step = at(1);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(at(k) === 0 ? 0 : at(k));
  return { ticks, min: ticks[0]!, max: ticks[ticks.length - 1]!, step, decimals: Math.max(0, -e) };
}

/** Ticks for a log10 axis: the powers of ten covering [lo, hi], with 2× and 5× added when few decades. */
export function logTicks(lo: number, hi: number): Ticks {
  if (!(lo > 0) || !(hi > 0) || !Number.isFinite(lo) || !Number.isFinite(hi)) {
    throw new ReportError(`[logTicks] bounds must be finite and > 0, got ${lo}, ${hi}`);
  }
  const a = Math.floor(Math.log10(Math.min(lo, hi)) + 1e-9);
  let b = Math.ceil(Math.log10(Math.max(lo, hi)) - 1e-9);
  if (a === b) b = a + 1;
  const pow = (k: number) => (k >= 0 ? 10 ** k : 1 / 10 ** -k);
  const ticks: number[] = [];
  for (let k = a; k <= b; k++) {
    ticks.push(pow(k));
    if (b - a <= 2 && k < b) ticks.push(2 * pow(k), 5 * pow(k));
  }
  return { ticks, min: pow(a), max: pow(b), step: 10, decimals: Math.max(0, -a) };
}

/** A number for an SVG coordinate: rounded to 0.01, no "-0", no exponent. */
function c(v: number): string {
  const r = Math.round(v * 100) / 100;
  return r === 0 ? "0" : String(r);
}

function tickLabel(v: number, t: Ticks, log: boolean): string {
  if (log) return Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(0) : formatNumber(v);
  if (v === 0) return "0";
  if (t.step >= 1e6 || t.step < 1e-4) return v.toExponential(Math.min(3, Math.max(0, Math.round(Math.log10(Math.abs(v) / t.step)))));
  return v.toFixed(t.decimals);
}

/** FNV-1a of a string, for deterministic per-chart ids (clip paths must be unique within one HTML page). */
function hashId(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36);
}

/** Estimated text width in px at the given font size (no measurement in a string renderer). */
function textWidth(s: string, size: number): number {
  return Array.from(s).length * size * 0.6;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

interface Frame {
  width: number;
  height: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
}

interface LegendItem {
  name: string;
  color: string;
  dash: string;
  kind: "line" | "box" | "dot";
}

/** Lays legend items in rows of the given width; returns the SVG and the height used. */
function legend(items: LegendItem[], x0: number, y0: number, width: number): { svg: string; height: number } {
  if (items.length === 0) return { svg: "", height: 0 };
  const parts: string[] = [];
  let x = x0;
  let y = y0 + 8;
  for (const it of items) {
    const w = 26 + textWidth(it.name, 12) + 16;
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += 18;
    }
    const dash = it.dash ? ` stroke-dasharray="${it.dash}"` : "";
    if (it.kind === "line")
      parts.push(`<line x1="${c(x)}" y1="${c(y)}" x2="${c(x + 20)}" y2="${c(y)}" stroke="${it.color}" stroke-width="2.5"${dash}/>`);
    else if (it.kind === "dot") parts.push(`<circle cx="${c(x + 10)}" cy="${c(y)}" r="4" fill="${it.color}"/>`);
    else parts.push(`<rect x="${c(x + 4)}" y="${c(y - 6)}" width="12" height="12" fill="${it.color}"/>`);
    parts.push(`<text x="${c(x + 26)}" y="${c(y + 4)}">${escapeXml(it.name)}</text>`);
    x += w;
  }
  return { svg: `<g class="legend" font-size="12" fill="#333">${parts.join("")}</g>`, height: y - y0 + 14 };
}

function legendHeight(items: LegendItem[], width: number): number {
  return legend(items, 0, 0, width).height;
}

function open(f: Frame, title: string): string {
  const t = escapeXml(title);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="nx-chart" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-label="${t}" ${FONT} font-size="12">` +
    `<title>${t}</title><rect width="${f.width}" height="${f.height}" fill="#ffffff"/>` +
    `<text x="${c(f.width / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#222">${t}</text>`
  );
}

function yAxis(f: Frame, ticks: number[], t: Ticks, toY: (v: number) => number, label: string): string {
  const parts: string[] = [];
  for (const v of ticks) {
    const y = toY(v);
    parts.push(`<line x1="${c(f.left)}" y1="${c(y)}" x2="${c(f.left + f.plotW)}" y2="${c(y)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${c(f.left - 6)}" y="${c(y + 4)}" text-anchor="end">${escapeXml(tickLabel(v, t, false))}</text>`);
  }
  const cy = f.top + f.plotH / 2;
  parts.push(
    `<text x="14" y="${c(cy)}" text-anchor="middle" transform="rotate(-90 14 ${c(cy)})" font-size="13">${escapeXml(label)}</text>`,
  );
  return `<g class="y-axis" fill="#444">${parts.join("")}</g>`;
}

/** Shared line / scatter renderer. */
function xyChart(spec: ScatterSpec, mode: "line" | "scatter", where: string): string {
  const width = spec.width ?? 640;
  const logX = spec.logX === true;
  for (const r of [spec.yRange, spec.xRange]) {
    if (r && !(Number.isFinite(r[0]) && Number.isFinite(r[1]) && r[0] < r[1]))
      throw new ReportError(`[${where}] range must be finite with min < max, got [${r}]`);
  }
  if (logX && spec.xRange && spec.xRange[0] <= 0) throw new ReportError(`[${where}] logX needs xRange > 0, got [${spec.xRange}]`);
  const ok = (p: readonly [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logX || p[0] > 0);
  const finite = spec.series.flatMap((s) => s.points.filter(ok));
  const empty = finite.length === 0;
  const xs = finite.map((p) => p[0]);
  const ys = finite.map((p) => p[1]);
  const xLo = spec.xRange?.[0] ?? (empty ? (logX ? 1 : 0) : Math.min(...xs));
  const xHi = spec.xRange?.[1] ?? (empty ? (logX ? 10 : 1) : Math.max(...xs));
  const xt = logX ? logTicks(xLo, xHi) : niceTicks(xLo, xHi, 7);
  const yt = spec.yRange ? niceTicks(spec.yRange[0], spec.yRange[1]) : niceTicks(empty ? 0 : Math.min(...ys), empty ? 1 : Math.max(...ys));
  const [x0, x1] = spec.xRange ?? [xt.min, xt.max];
  const [y0, y1] = spec.yRange ?? [yt.min, yt.max];

  const items: LegendItem[] = spec.series.map((s, i) => ({
    name: s.points.some(ok) ? s.name : `${s.name} (no data)`,
    color: PALETTE[i % PALETTE.length]!,
    dash: mode === "line" ? DASHES[Math.floor(i / PALETTE.length) % DASHES.length]! : "",
    kind: mode === "line" ? "line" : "dot",
  }));
  const left = 64;
  const plotW = width - left - 20;
  const legendH = legendHeight(items, plotW);
  const plotH = (spec.height ?? 360) - 40 - 48 - legendH;
  if (plotH < 40) throw new ReportError(`[${where}] height leaves ${Math.round(plotH)} px for the plot (legend has ${items.length} items)`);
  const f: Frame = { width, height: spec.height ?? 360, left, top: 40, plotW, plotH };

  const lx = (v: number) => (logX ? Math.log10(v) : v);
  const toX = (v: number) => f.left + ((lx(v) - lx(x0)) / (lx(x1) - lx(x0))) * f.plotW;
  const toY = (v: number) => f.top + f.plotH - ((v - y0) / (y1 - y0)) * f.plotH;
  const clipId = `nx-clip-${hashId(JSON.stringify([where, spec]))}`;

  const out: string[] = [open(f, spec.title)];
  out.push(
    `<defs><clipPath id="${clipId}"><rect x="${c(f.left)}" y="${c(f.top)}" width="${c(f.plotW)}" height="${c(f.plotH)}"/></clipPath></defs>`,
  );
  out.push(
    yAxis(
      f,
      yt.ticks.filter((v) => v >= y0 - 1e-12 && v <= y1 + 1e-12),
      yt,
      toY,
      spec.yLabel,
    ),
  );
  const xParts: string[] = [];
  for (const v of xt.ticks.filter((v) => lx(v) >= lx(x0) - 1e-12 && lx(v) <= lx(x1) + 1e-12)) {
    const x = toX(v);
    xParts.push(`<line x1="${c(x)}" y1="${c(f.top)}" x2="${c(x)}" y2="${c(f.top + f.plotH)}" stroke="#efefef"/>`);
    xParts.push(`<text x="${c(x)}" y="${c(f.top + f.plotH + 16)}" text-anchor="middle">${escapeXml(tickLabel(v, xt, logX))}</text>`);
  }
  xParts.push(
    `<text x="${c(f.left + f.plotW / 2)}" y="${c(f.top + f.plotH + 36)}" text-anchor="middle" font-size="13">${escapeXml(spec.xLabel)}</text>`,
  );
  out.push(`<g class="x-axis" fill="#444">${xParts.join("")}</g>`);
  out.push(`<rect x="${c(f.left)}" y="${c(f.top)}" width="${c(f.plotW)}" height="${c(f.plotH)}" fill="none" stroke="#999"/>`);

  const data: string[] = [];
  if (spec.diagonal) {
    const a = Math.max(x0, y0);
    const b = Math.min(x1, y1);
    if (a < b)
      data.push(`<line x1="${c(toX(a))}" y1="${c(toY(a))}" x2="${c(toX(b))}" y2="${c(toY(b))}" stroke="#888" stroke-dasharray="4 4"/>`);
  }
  spec.series.forEach((s, i) => {
    const it = items[i]!;
    const segments: string[][] = [[]];
    for (const p of s.points) {
      if (ok(p)) segments[segments.length - 1]!.push(`${c(toX(p[0]))},${c(toY(p[1]))}`);
      else if (segments[segments.length - 1]!.length > 0) segments.push([]);
    }
    const pts = segments.filter((g) => g.length > 0);
    const parts: string[] = [];
    if (mode === "line") {
      const d = pts.filter((g) => g.length > 1).map((g) => `M${g.join("L")}`);
      const dash = it.dash ? ` stroke-dasharray="${it.dash}"` : "";
      if (d.length > 0)
        parts.push(`<path d="${d.join("")}" fill="none" stroke="${it.color}" stroke-width="2" stroke-linejoin="round"${dash}/>`);
    }
    // Markers: every point of a scatter, and in line mode points of short series or isolated points.
    const nPts = pts.reduce((n, g) => n + g.length, 0);
    for (const g of pts) {
      if (mode === "scatter" || nPts <= 24 || g.length === 1) {
        for (const xy of g) {
          const [cx, cy] = xy.split(",");
          parts.push(
            `<circle cx="${cx}" cy="${cy}" r="${mode === "scatter" ? 3.5 : 2.5}" fill="${it.color}"${mode === "scatter" ? ' fill-opacity="0.8"' : ""}/>`,
          );
        }
      }
    }
    data.push(`<g class="series" data-name="${escapeXml(s.name)}">${parts.join("")}</g>`);
  });
  out.push(`<g clip-path="url(#${clipId})">${data.join("")}</g>`);
  if (empty) {
    out.push(
      `<text x="${c(f.left + f.plotW / 2)}" y="${c(f.top + f.plotH / 2)}" text-anchor="middle" fill="#888" font-size="14">no data</text>`,
    );
  }
  out.push(legend(items, f.left, f.top + f.plotH + 48, f.plotW).svg);
  out.push("</svg>");
  return out.join("");
}

/** A line chart: one polyline per series (broken at non-finite points), markers on short series. */
export function lineChart(spec: LineChartSpec): string {
  return xyChart(spec, "line", "lineChart");
}

/** A scatter plot: one marker per finite point, optional y = x diagonal. */
export function scatter(spec: ScatterSpec): string {
  return xyChart(spec, "scatter", "scatter");
}

/** Grouped bars: one group per label, one colour per bar name (consistent across groups), value labels, error bars. */
export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 640;
  const names: string[] = [];
  for (const g of spec.groups) for (const b of g.bars) if (!names.includes(b.name)) names.push(b.name);
  const colorOf = (name: string) => PALETTE[names.indexOf(name) % PALETTE.length]!;
  const items: LegendItem[] = names.length > 1 ? names.map((n) => ({ name: n, color: colorOf(n), dash: "", kind: "box" })) : [];

  const ends: number[] = [0];
  for (const g of spec.groups) {
    for (const b of g.bars) {
      const e = b.error !== undefined && Number.isFinite(b.error) ? Math.abs(b.error) : 0;
      if (Number.isFinite(b.value)) ends.push(b.value - e, b.value + e);
    }
  }
  if (spec.yRange && !(Number.isFinite(spec.yRange[0]) && Number.isFinite(spec.yRange[1]) && spec.yRange[0] < spec.yRange[1])) {
    throw new ReportError(`[barChart] yRange must be finite with min < max, got [${spec.yRange}]`);
  }
  const yt = spec.yRange ? niceTicks(spec.yRange[0], spec.yRange[1]) : niceTicks(Math.min(...ends), Math.max(...ends));
  const [y0, y1] = spec.yRange ?? [yt.min, yt.max];
  const left = 64;
  const plotW = width - left - 20;
  const legendH = legendHeight(items, plotW);
  const height = spec.height ?? 360;
  const plotH = height - 40 - 48 - legendH;
  if (plotH < 40) throw new ReportError(`[barChart] height leaves ${Math.round(plotH)} px for the plot`);
  const f: Frame = { width, height, left, top: 40, plotW, plotH };
  const toY = (v: number) => f.top + f.plotH - ((Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * f.plotH;

  const out: string[] = [open(f, spec.title)];
  out.push(
    yAxis(
      f,
      yt.ticks.filter((v) => v >= y0 - 1e-12 && v <= y1 + 1e-12),
      yt,
      toY,
      spec.yLabel,
    ),
  );
  const groupW = spec.groups.length > 0 ? f.plotW / spec.groups.length : f.plotW;
  const bars: string[] = [];
  const labels: string[] = [];
  spec.groups.forEach((g, gi) => {
    const gx = f.left + gi * groupW;
    const inner = groupW * 0.8;
    const bw = g.bars.length > 0 ? inner / g.bars.length : 0;
    labels.push(
      `<text x="${c(gx + groupW / 2)}" y="${c(f.top + f.plotH + 18)}" text-anchor="middle" font-size="12">${escapeXml(g.label)}</text>`,
    );
    g.bars.forEach((b, bi) => {
      const x = gx + groupW * 0.1 + bi * bw;
      const mid = x + bw / 2;
      const title = `<title>${escapeXml(`${g.label} · ${b.name}: ${formatNumber(b.value, spec.digits)}${b.error !== undefined ? ` ± ${formatNumber(b.error, spec.digits)}` : ""}`)}</title>`;
      if (!Number.isFinite(b.value)) {
        bars.push(`<text x="${c(mid)}" y="${c(toY(0) - 4)}" text-anchor="middle" font-size="11" fill="#888">n/a</text>`);
        return;
      }
      const top = toY(Math.max(b.value, 0));
      const bottom = toY(Math.min(b.value, 0));
      bars.push(
        `<rect x="${c(x + 1)}" y="${c(top)}" width="${c(Math.max(bw - 2, 1))}" height="${c(bottom - top)}" fill="${colorOf(b.name)}">${title}</rect>`,
      );
      let labelY = b.value >= 0 ? top - 4 : bottom + 12;
      if (b.error !== undefined && Number.isFinite(b.error) && b.error !== 0) {
        const e = Math.abs(b.error);
        const [ya, yb] = [toY(b.value + e), toY(b.value - e)];
        const cap = Math.min(bw * 0.25, 6);
        bars.push(
          `<path d="M${c(mid)},${c(ya)}L${c(mid)},${c(yb)}M${c(mid - cap)},${c(ya)}L${c(mid + cap)},${c(ya)}M${c(mid - cap)},${c(yb)}L${c(mid + cap)},${c(yb)}" stroke="#333" stroke-width="1.2" fill="none"/>`,
        );
        labelY = b.value >= 0 ? ya - 4 : yb + 12;
      }
      bars.push(
        `<text x="${c(mid)}" y="${c(labelY)}" text-anchor="middle" font-size="11" fill="#222">${escapeXml(formatNumber(b.value, spec.digits))}</text>`,
      );
    });
  });
  out.push(`<g class="bars">${bars.join("")}</g>`);
  if (y0 < 0 && y1 > 0) out.push(`<line x1="${c(f.left)}" y1="${c(toY(0))}" x2="${c(f.left + f.plotW)}" y2="${c(toY(0))}" stroke="#666"/>`);
  out.push(`<g class="x-axis" fill="#444">${labels.join("")}</g>`);
  out.push(`<rect x="${c(f.left)}" y="${c(f.top)}" width="${c(f.plotW)}" height="${c(f.plotH)}" fill="none" stroke="#999"/>`);
  if (spec.groups.every((g) => g.bars.length === 0)) {
    out.push(
      `<text x="${c(f.left + f.plotW / 2)}" y="${c(f.top + f.plotH / 2)}" text-anchor="middle" fill="#888" font-size="14">no data</text>`,
    );
  }
  out.push(legend(items, f.left, f.top + f.plotH + 48, f.plotW).svg);
  out.push("</svg>");
  return out.join("");
}
