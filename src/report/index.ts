// The report layer: SVG charts, the self-contained HTML report and plain-text tables for the terminal.
// Pure string rendering plus one atomic file writer; it computes no metrics (see src/eval/).

export * from "./format.js";
export * from "./html.js";
export { formatClaimsTable, formatTextTable, type TextOptions } from "./results.js";
export * from "./svg.js";
