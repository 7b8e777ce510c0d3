// Report rendering without a browser: nice ticks on hand cases, locale-free number formatting, XML escaping,
// SVG and HTML well-formedness (a small XML checker below), deterministic bytes, empty and NaN series,
// every section / table / chart / claim present in the HTML, the atomic writer, and the terminal tables.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import {
  barChart,
  type Claim,
  escapeXml,
  formatClaimsTable,
  formatNumber,
  formatTextTable,
  lineChart,
  logTicks,
  niceTicks,
  PALETTE,
  type Report,
  ReportError,
  renderReport,
  scatter,
  writeReport,
} from "../src/report/index.js";

/** Checks XML well-formedness (balanced tags, quoted attributes, known entities, no raw < or &); returns tag counts. */
function checkXml(xml: string): Map<string, number> {
  const counts = new Map<string, number>();
  const stack: string[] = [];
  const entity = /^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/;
  const checkText = (s: string, at: number) => {
    for (let k = s.indexOf("&"); k >= 0; k = s.indexOf("&", k + 1)) {
      assert.ok(entity.test(s.slice(k)), `bad entity at ${at + k}: ${s.slice(k, k + 12)}`);
    }
  };
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(text, i);
    if (lt < 0) break;
    if (xml.startsWith("<!--", lt)) {
      i = xml.indexOf("-->", lt) + 3;
      assert.ok(i > 2, "unterminated comment");
      continue;
    }
    const m = /^<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*"|\s+[\w:-]+='[^'<]*')*)\s*(\/?)>/.exec(xml.slice(lt));
    assert.ok(m, `malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`);
    const [whole, close, name, attrs, selfClose] = m;
    checkText(attrs!, lt);
    if (close) {
      assert.equal(stack.pop(), name, `closing </${name}> at ${lt} does not match`);
    } else {
      counts.set(name!, (counts.get(name!) ?? 0) + 1);
      if (!selfClose) stack.push(name!);
    }
    i = lt + whole.length;
  }
  assert.deepEqual(stack, [], "unclosed tags");
  return counts;
}

function htmlAsXml(html: string): string {
  assert.ok(html.startsWith("<!DOCTYPE html>\n"));
  return html.slice("<!DOCTYPE html>\n".length);
}

const CLAIMS: Claim[] = [
  {
    id: "grpo_beats_sft",
    statement: "GRPO improves over SFT",
    measured: "41.2 % → 63.0 % pass@1",
    holds: true,
    verdict: "holds",
    difference: 21.8,
    interval: [12.04, 30.1],
    unit: "pp",
  },
  { id: "mc_noisier", statement: "MC labels are noisier than exact ones", measured: "F1 0.71 vs 1.00", holds: false },
  { id: "grpo_memory", statement: "GRPO needs less memory than PPO", measured: null, holds: null },
  {
    id: "prm_search",
    statement: "PRM search beats majority",
    measured: "N=16: 30.0 % vs 31.0 %",
    holds: false,
    verdict: "not shown",
    difference: 1,
    interval: [-4.2, 6.25],
    unit: "pp",
  },
];

function sampleLine() {
  return lineChart({
    title: "Reward",
    xLabel: "step",
    yLabel: "mean reward",
    series: [
      { name: "GRPO", points: [0, 1, 2, 3, 4].map((i) => [i * 10, i / 4] as [number, number]) },
      {
        name: "PPO",
        points: [
          [0, 0.1],
          [10, Number.NaN],
          [20, 0.3],
          [30, 0.35],
        ],
      },
    ],
  });
}

function sampleBars() {
  return barChart({
    title: "pass@1",
    yLabel: "accuracy %",
    digits: 1,
    groups: [
      {
        label: "SFT",
        bars: [
          { name: "train", value: 41.2, error: 2 },
          { name: "test", value: 39 },
        ],
      },
      {
        label: "GRPO",
        bars: [
          { name: "train", value: 63 },
          { name: "test", value: 60.1, error: 1.5 },
        ],
      },
    ],
  });
}

describe("niceTicks and logTicks", () => {
  test("hand cases use steps of 1, 2, 5 × 10^k and cover the range", () => {
    assert.deepEqual(niceTicks(0, 1).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0, 10).ticks, [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(niceTicks(0.13, 0.87).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(-3, 7).ticks, [-4, -2, 0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(0, 1000).ticks, [0, 200, 400, 600, 800, 1000]);
    // 3 × 0.1 must be exactly 0.3, not 0.30000000000000004.
    assert.deepEqual(niceTicks(0, 0.3, 4).ticks, [0, 0.1, 0.2, 0.3]);
    assert.equal(niceTicks(0, 0.3, 4).decimals, 1);
  });
  test("a single value and reversed bounds", () => {
    assert.deepEqual(niceTicks(0, 0).ticks, [-1, -0.5, 0, 0.5, 1]);
    assert.deepEqual(niceTicks(5, 5).ticks, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]);
    assert.deepEqual(niceTicks(10, 0).ticks, niceTicks(0, 10).ticks);
    assert.throws(() => niceTicks(0, Number.NaN), ReportError);
  });
  test("log ticks: 2× and 5× for few decades, powers only for many", () => {
    assert.deepEqual(logTicks(1, 64).ticks, [1, 2, 5, 10, 20, 50, 100]);
    assert.deepEqual(logTicks(1, 1e6).ticks, [1, 10, 100, 1000, 1e4, 1e5, 1e6]);
    assert.deepEqual(logTicks(0.01, 0.1).ticks, [0.01, 0.02, 0.05, 0.1]);
    assert.throws(() => logTicks(0, 10), ReportError);
  });
});

describe("formatting and escaping", () => {
  test("numbers are locale-free with fixed rules", () => {
    const cases: [number, number | undefined, string][] = [
      [3, undefined, "3"],
      [-12, undefined, "-12"],
      [0.41234, undefined, "0.4123"],
      [1234.5678, undefined, "1235"],
      [0.5, undefined, "0.5"],
      [1e-6, undefined, "1e-6"],
      [-0.000012346, undefined, "-1.235e-5"],
      [25000000.5, undefined, "2.5e+7"],
      [Number.NaN, undefined, "NaN"],
      [Number.POSITIVE_INFINITY, undefined, "∞"],
      [0.4126, 2, "0.41"],
      [-0.001, 1, "0.0"],
      [63, 1, "63.0"],
    ];
    for (const [v, d, want] of cases) assert.equal(formatNumber(v, d), want, `formatNumber(${v}, ${d})`);
  });
  test("XML escaping covers the five special characters", () => {
    assert.equal(escapeXml(`<script>alert("x" & 'y')</script>`), "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
  });
});

describe("svg charts", () => {
  test("line chart is well-formed with a path per series, legend and axis labels", () => {
    const svg = sampleLine();
    const tags = checkXml(svg);
    assert.equal(tags.get("svg"), 1);
    assert.equal(tags.get("path"), 2);
    assert.ok(svg.includes(`stroke="${PALETTE[0]}"`) && svg.includes(`stroke="${PALETTE[1]}"`), "two palette colours");
    // PPO's NaN breaks its line: the finite run [20, 30] is a path, the isolated first point only a marker.
    const ppo = svg.slice(svg.indexOf('data-name="PPO"'));
    assert.equal((ppo.match(/<path d="M/g) ?? []).length, 1);
    assert.equal((ppo.slice(0, ppo.indexOf("</g>")).match(/<circle/g) ?? []).length, 3);
    for (const label of ["Reward", "step", "mean reward", "GRPO", "PPO", "0.4", "40"]) assert.ok(svg.includes(`>${label}<`), label);
    assert.ok(!svg.includes("NaN"), "no NaN reaches the markup");
  });
  test("a <script> title is escaped, never live markup", () => {
    const svg = lineChart({ title: "<script>alert(1)</script>", xLabel: "a&b", yLabel: "y", series: [{ name: '"q"', points: [[0, 1]] }] });
    checkXml(svg);
    assert.ok(!svg.includes("<script"));
    assert.ok(svg.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(svg.includes("a&amp;b") && svg.includes("&quot;q&quot;"));
  });
  test("output is deterministic and clip ids differ between charts", () => {
    assert.equal(sampleLine(), sampleLine());
    assert.equal(sampleBars(), sampleBars());
    const id = (s: string) => /clipPath id="([^"]+)"/.exec(s)![1];
    const other = lineChart({ title: "Other", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [[0, 0]] }] });
    assert.notEqual(id(sampleLine()), id(other));
  });
  test("empty and all-NaN series render axes, 'no data' and a legend without NaN", () => {
    for (const series of [[], [{ name: "none", points: [] }], [{ name: "nan", points: [[Number.NaN, 1] as [number, number]] }]]) {
      const svg = lineChart({ title: "Empty", xLabel: "x", yLabel: "y", series });
      const tags = checkXml(svg);
      assert.ok(svg.includes(">no data<"));
      assert.equal(tags.get("path") ?? 0, 0);
      assert.ok(!svg.includes("NaN"));
      if (series.length > 0) assert.ok(svg.includes("(no data)"));
    }
  });
  test("yRange fixes the axis and logX spaces decades evenly", () => {
    const fixed = lineChart({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      yRange: [0, 1],
      series: [
        {
          name: "a",
          points: [
            [0, 0.5],
            [1, 2],
          ],
        },
      ],
    });
    checkXml(fixed);
    assert.ok(fixed.includes(">1.0<") && !fixed.includes(">2.0<"), "ticks stop at the fixed max");
    const log = lineChart({
      title: "t",
      xLabel: "N",
      yLabel: "y",
      logX: true,
      series: [
        {
          name: "a",
          points: [
            [1, 0],
            [10, 1],
            [100, 2],
            [0, 5],
          ],
        },
      ],
    });
    const xs = [...log.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.equal(xs.length, 3, "x = 0 is dropped on a log axis");
    assert.ok(Math.abs(xs[1]! - xs[0]! - (xs[2]! - xs[1]!)) < 0.02, `equal decades: ${xs}`);
  });
  test("bar chart: one rect per bar, shared colour per name, value labels, error bars, n/a for NaN", () => {
    const svg = sampleBars();
    const tags = checkXml(svg);
    assert.equal((svg.match(/<rect [^>]*fill="#[0-9a-f]{6}"><title>/g) ?? []).length, 4);
    assert.equal((svg.match(new RegExp(`fill="${PALETTE[0]}">`, "g")) ?? []).length, 2, "train bars share a colour");
    for (const v of ["41.2", "39.0", "63.0", "60.1"]) assert.ok(svg.includes(`>${v}<`), v);
    assert.equal(tags.get("path"), 2, "two error bars");
    const neg = barChart({
      title: "Δ",
      yLabel: "d",
      groups: [
        {
          label: "g",
          bars: [
            { name: "a", value: -2 },
            { name: "b", value: Number.NaN },
          ],
        },
      ],
    });
    checkXml(neg);
    assert.ok(neg.includes(">-2<") && neg.includes(">n/a<") && neg.includes(">0<"));
    const empty = barChart({ title: "none", yLabel: "y", groups: [] });
    checkXml(empty);
    assert.ok(empty.includes(">no data<"));
  });
  test("scatter draws markers and the diagonal", () => {
    const svg = scatter({
      title: "Calibration",
      xLabel: "predicted",
      yLabel: "observed",
      diagonal: true,
      xRange: [0, 1],
      yRange: [0, 1],
      series: [
        {
          name: "ORM",
          points: [
            [0.1, 0.2],
            [0.5, 0.4],
            [0.9, 0.8],
          ],
        },
      ],
    });
    const tags = checkXml(svg);
    assert.equal(tags.get("circle"), 4, "three points + one legend dot");
    assert.ok(svg.includes('stroke-dasharray="4 4"'));
    assert.throws(() => scatter({ title: "t", xLabel: "x", yLabel: "y", series: [], xRange: [1, 0] }), ReportError);
  });
});

function sampleReport(): Report {
  return {
    title: "Nexus lab <seed 0>",
    subtitle: "arithmetic chains & friends",
    footer: "nexus lab --seed 0",
    sections: [
      { heading: "Claims", paragraphs: ["Seed claims & what was measured.", "<script>alert(1)</script>"], claims: CLAIMS },
      {
        heading: "Training",
        tables: [
          {
            caption: "Runs",
            columns: ["method", "pass@1", "loss"],
            digits: [undefined, 3, undefined],
            rows: [
              ["SFT", 0.41234, { value: 1.2345678, class: "fail", title: "high" }],
              ["GRPO", { value: 0.63, class: "pass" }, null],
            ],
          },
        ],
        charts: [sampleLine(), { svg: sampleBars(), caption: "Accuracy by method" }],
      },
      { heading: "Empty section" },
    ],
  };
}

describe("html report", () => {
  test("well-formed, self-contained, with every section, table, chart and claim", () => {
    const html = renderReport(sampleReport());
    const tags = checkXml(htmlAsXml(html));
    assert.equal(tags.get("section"), 3);
    assert.equal(tags.get("h2"), 3);
    assert.equal(tags.get("svg"), 2);
    assert.equal(tags.get("table"), 2, "runs table + claims table");
    assert.equal(tags.get("figcaption"), 1);
    assert.ok(html.includes(sampleLine()) && html.includes(sampleBars()), "charts inserted verbatim");
    for (const h of ["Claims", "Training", "Empty section", "Runs", "Accuracy by method", "nexus lab --seed 0"])
      assert.ok(html.includes(h), h);
    assert.ok(html.includes("<title>Nexus lab &lt;seed 0&gt;</title>"));
    assert.ok(!html.includes("<script"), "no script, escaped or not, as a tag");
    assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(!/\b(src|href)="(?!#)/.test(html), "no external resources");
    assert.ok(html.includes("Content-Security-Policy"));
    assert.ok(html.includes('<td class="num">0.412</td>'), "digits per column");
    assert.ok(html.includes('<td class="num fail" title="high">1.235</td>'));
    assert.ok(html.includes('<td class="num pass">0.630</td>') && html.includes("<td>—</td>"));
  });
  test("claims render verdict words, marks, the difference with its interval, and a summary", () => {
    const html = renderReport(sampleReport());
    const rows = html.match(/<tr class="claim [a-z]+">.*?<\/tr>/g)!;
    assert.equal(rows.length, 4);
    assert.ok(rows[0]!.includes("✓") && rows[0]!.includes("grpo_beats_sft") && rows[0]!.includes("41.2 % → 63.0 % pass@1"));
    assert.ok(rows[0]!.includes("Δ +21.8 pp, 95% CI [+12.0, +30.1]") && rows[0]!.includes('class="pass">holds'));
    assert.ok(rows[1]!.includes("✗") && rows[1]!.includes('class="fail">contradicted'), "an old holds: false reads as contradicted");
    assert.ok(rows[2]!.includes("not measured") && !rows[2]!.includes("✓") && !rows[2]!.includes("✗"));
    assert.ok(rows[3]!.includes("~") && rows[3]!.includes('class="warn">not shown') && rows[3]!.includes("95% CI [−4.20, +6.25]"));
    assert.ok(html.includes("1 of 4 claims hold, 1 contradicted, 1 not shown, 1 not measured"));
  });
  test("deterministic, and bad input is rejected with a tagged error", () => {
    assert.equal(renderReport(sampleReport()), renderReport(sampleReport()));
    assert.throws(
      () => renderReport({ title: "t", sections: [{ heading: "h", charts: ["<div>not svg</div>"] }] }),
      (e: Error) => e instanceof ReportError && /\[renderReport\] section "h" chart 0/.test(e.message),
    );
    assert.throws(
      () => renderReport({ title: "t", sections: [{ heading: "h", tables: [{ columns: ["a", "b"], rows: [[1]] }] }] }),
      /row 0 has 1 cells, expected 2/,
    );
  });
  test("writeReport writes atomically and leaves no temp file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-report-"));
    try {
      const file = path.join(dir, "sub", "report.html");
      writeReport(file, sampleReport());
      assert.equal(fs.readFileSync(file, "utf8"), renderReport(sampleReport()));
      assert.deepEqual(fs.readdirSync(path.dirname(file)), ["report.html"]);
      fs.writeFileSync(path.join(dir, "blocker"), "");
      assert.throws(() => writeReport(path.join(dir, "blocker", "x.html"), sampleReport()), ReportError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("terminal tables", () => {
  test("claims table: aligned ids, marks, no colour codes when off", () => {
    const text = formatClaimsTable(CLAIMS, { color: false });
    assert.deepEqual(text.split("\n"), [
      "✓ grpo_beats_sft  GRPO improves over SFT: 41.2 % → 63.0 % pass@1 [holds; Δ +21.8 pp, 95% CI [+12.0, +30.1]]",
      "✗ mc_noisier      MC labels are noisier than exact ones: F1 0.71 vs 1.00 [contradicted]",
      "– grpo_memory     GRPO needs less memory than PPO: [not measured]",
      "~ prm_search      PRM search beats majority: N=16: 30.0 % vs 31.0 % [not shown; Δ +1.00 pp, 95% CI [−4.20, +6.25]]",
    ]);
    const coloured = formatClaimsTable(CLAIMS, { color: true });
    assert.ok(coloured.includes("\x1b[32m✓\x1b[0m") && coloured.includes("\x1b[31m✗\x1b[0m"));
    assert.equal(coloured.replace(new RegExp(`${"\x1b"}\\[[0-9;]*m`, "g"), ""), text);
  });
  test("text table right-aligns numeric columns", () => {
    const t = sampleReport().sections[1]!.tables![0]!;
    assert.deepEqual(formatTextTable(t, { color: false }).split("\n"), [
      "Runs",
      "method  pass@1   loss",
      "------  ------  -----",
      "SFT      0.412  1.235",
      "GRPO     0.630      —",
    ]);
  });
});
