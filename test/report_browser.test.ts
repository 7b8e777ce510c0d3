// The HTML report in a real browser: headless Chromium renders a sample report to a PNG and dumps its DOM.
// Checks: the DOM has every section, table and <svg>; the PNG header says 1200×2000 and its pixels show the
// bar colour and the claims' pass colour; Chromium logged no console message (controls prove the log is read:
// an uncaught error and a CSP-blocked script/image are caught). Skips when /usr/bin/chromium is missing.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { inflateSync } from "node:zlib";
import { barChart, lineChart, PALETTE, type Report, renderReport, scatter, writeReport } from "../src/report/index.js";

const CHROMIUM = process.env.NEXUS_CHROMIUM ?? "/usr/bin/chromium";
const SKIP = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} not found: install it (apt-get install -y chromium) to run the browser test`;
const W = 1200;
const H = 2000;

function sampleReport(): Report {
  const steps = Array.from({ length: 40 }, (_, i) => i * 5);
  return {
    title: "Nexus lab <browser check>",
    subtitle: "seed 0 · synthetic arithmetic chains",
    footer: "nexus lab --seed 0",
    sections: [
      {
        heading: "Claims",
        paragraphs: ["Each seed claim with what this run measured. <script>alert(1)</script> stays text."],
        claims: [
          { id: "grpo_beats_sft", statement: "GRPO improves over SFT", measured: "41.2 % → 63.0 % pass@1", holds: true },
          { id: "mc_noisier", statement: "MC labels are noisier than exact ones", measured: "F1 0.71 vs 1.00", holds: false },
          { id: "grpo_memory", statement: "GRPO needs less memory than PPO", measured: null, holds: null },
        ],
      },
      {
        heading: "Training",
        tables: [
          {
            caption: "Runs",
            columns: ["method", "pass@1", "peak MiB"],
            rows: [
              ["SFT", 0.412, 812],
              ["GRPO", { value: 0.63, class: "pass" }, 1024],
            ],
          },
        ],
        charts: [
          lineChart({
            title: "Mean reward",
            xLabel: "step",
            yLabel: "reward",
            series: [
              { name: "GRPO", points: steps.map((s) => [s, Math.tanh(s / 60)] as [number, number]) },
              { name: "PPO", points: steps.map((s) => [s, s === 50 ? Number.NaN : Math.tanh(s / 90)] as [number, number]) },
            ],
          }),
          {
            svg: barChart({
              title: "pass@1 by method",
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
            }),
            caption: "Error bars: one standard error.",
          },
        ],
      },
      {
        heading: "Search",
        charts: [
          scatter({
            title: "ORM calibration",
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
                  [0.5, 0.45],
                  [0.9, 0.8],
                ],
              },
            ],
          }),
          lineChart({
            title: "Best-of-N",
            xLabel: "N",
            yLabel: "accuracy",
            logX: true,
            series: [
              {
                name: "ORM",
                points: [
                  [1, 0.4],
                  [4, 0.5],
                  [16, 0.56],
                  [64, 0.6],
                ],
              },
              { name: "empty", points: [] },
            ],
          }),
        ],
      },
    ],
  };
}

interface Run {
  stdout: string;
  stderr: string;
}

function chromium(dir: string, name: string, mode: string[], url: string): Promise<Run> {
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    `--user-data-dir=${path.join(dir, `profile-${name}`)}`,
    "--enable-logging=stderr",
    "--v=0",
    `--window-size=${W},${H}`,
    ...mode,
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, args, { timeout: 25_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`[chromium ${name}] ${err.message}\n${stderr.slice(-2000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Console messages and uncaught errors in Chromium's stderr log (the report has no JS, so any is a failure). */
function consoleLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /:CONSOLE|Uncaught/.test(l));
}

interface Png {
  width: number;
  height: number;
  /** RGBA, row-major. */
  rgba: Uint8Array;
}

/** Decodes an 8-bit RGB/RGBA non-interlaced PNG with node:zlib (all Chromium screenshots are). */
function decodePng(buf: Buffer): Png {
  assert.deepEqual([...buf.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  assert.equal(buf.toString("latin1", 12, 16), "IHDR", "first chunk is IHDR");
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const [depth, colorType, , , interlace] = buf.subarray(24, 29);
  assert.equal(depth, 8, "bit depth");
  assert.ok(colorType === 2 || colorType === 6, `colour type ${colorType}`);
  assert.equal(interlace, 0, "interlace");
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString("latin1", off + 4, off + 8);
    if (type === "IDAT") idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const bpp = colorType === 6 ? 4 : 3;
  const stride = width * bpp;
  assert.equal(raw.length, height * (stride + 1), "inflated size");
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[row + i - bpp]! : 0;
      const b = y > 0 ? px[row - stride + i]! : 0;
      const c = y > 0 && i >= bpp ? px[row - stride + i - bpp]! : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      assert.ok(pred !== undefined, `filter ${filter} on row ${y}`);
      px[row + i] = (src[i]! + pred) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let k = 0; k < width * height; k++) {
    rgba.set(px.subarray(k * bpp, k * bpp + 3), k * 4);
    rgba[k * 4 + 3] = bpp === 4 ? px[k * bpp + 3]! : 255;
  }
  return { width, height, rgba };
}

/** Pixels within ±tol of the colour "#rrggbb". */
function countColour(png: Png, hex: string, tol = 2): number {
  const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let k = 0; k < png.rgba.length; k += 4) {
    if (Math.abs(png.rgba[k]! - r!) <= tol && Math.abs(png.rgba[k + 1]! - g!) <= tol && Math.abs(png.rgba[k + 2]! - b!) <= tol) n++;
  }
  return n;
}

describe("report in headless Chromium", { skip: SKIP, timeout: 60_000 }, () => {
  let dir = "";
  let shot: Run;
  let dom: Run;
  let uncaught: Run;
  let blocked: Run;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-browser-"));
    const report = path.join(dir, "report.html");
    writeReport(report, sampleReport());
    // Controls: a page whose script throws, and the real report with a script and an external image injected.
    fs.writeFileSync(
      path.join(dir, "uncaught.html"),
      '<!DOCTYPE html><html><body><p>x</p><script>throw new Error("boom")</script></body></html>',
    );
    const injected = renderReport(sampleReport()).replace(
      "</main>",
      '<script>document.title = "pwned"</script><img src="http://127.0.0.1:9/x.png" alt="" /></main>',
    );
    fs.writeFileSync(path.join(dir, "injected.html"), injected);
    const url = (f: string) => `file://${path.join(dir, f)}`;
    [shot, dom, uncaught, blocked] = await Promise.all([
      chromium(dir, "shot", [`--screenshot=${path.join(dir, "shot.png")}`], url("report.html")),
      chromium(dir, "dom", ["--dump-dom"], url("report.html")),
      chromium(dir, "uncaught", ["--dump-dom"], url("uncaught.html")),
      chromium(dir, "injected", ["--dump-dom"], url("injected.html")),
    ]);
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the DOM has every section, table and chart, and no script element", () => {
    const html = dom.stdout;
    const count = (re: RegExp) => (html.match(re) ?? []).length;
    assert.equal(count(/<section /g), 3);
    assert.equal(count(/<svg /g), 4);
    assert.equal(count(/<table/g), 2);
    assert.equal(count(/<tr class="claim /g), 3);
    assert.equal(count(/<figcaption>/g), 1);
    for (const s of ["Claims", "Training", "Search", "Mean reward", "pass@1 by method", "ORM calibration", "Best-of-N", "grpo_beats_sft"]) {
      assert.ok(html.includes(s), s);
    }
    assert.ok(!html.includes("<script"), "escaped <script> stays text");
    assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  });

  test("the screenshot is a 1200×2000 PNG showing the charts and the claim colours", () => {
    const file = path.join(dir, "shot.png");
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.length > 30_000, `PNG is ${bytes.length} bytes`);
    const png = decodePng(bytes);
    assert.equal(png.width, W);
    assert.equal(png.height, H);
    const total = png.width * png.height;
    const nonWhite = total - countColour(png, "#ffffff", 3) - countColour(png, "#fafafa", 3);
    assert.ok(nonWhite / total > 0.03, `only ${((100 * nonWhite) / total).toFixed(2)} % of pixels are drawn`);
    assert.ok(countColour(png, PALETTE[0]!) > 2000, "first palette colour (bars) is on screen");
    assert.ok(countColour(png, PALETTE[1]!) > 2000, "second palette colour (bars) is on screen");
    assert.ok(countColour(png, "#dafbe1") > 500, "the .pass green of the claims table is on screen");
    assert.ok(countColour(png, "#ffebe9") > 500, "the .fail red of the claims table is on screen");
    assert.ok(shot.stderr.includes("bytes written to file") || fs.existsSync(file));
  });

  test("Chromium logged no console message or uncaught error for the report", () => {
    assert.deepEqual(consoleLines(shot.stderr), []);
    assert.deepEqual(consoleLines(dom.stderr), []);
  });

  test("controls: the log check sees an uncaught error, and the report's CSP blocks an injected script and image", () => {
    assert.ok(
      consoleLines(uncaught.stderr).some((l) => l.includes("Uncaught Error: boom")),
      uncaught.stderr.slice(-1500),
    );
    const lines = consoleLines(blocked.stderr);
    assert.ok(lines.filter((l) => l.includes("Content Security Policy")).length >= 2, lines.join("\n"));
    assert.ok(!blocked.stdout.includes("<title>pwned</title>"), "the injected script did not run");
  });
});
