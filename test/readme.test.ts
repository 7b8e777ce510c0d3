// Every code block of the README runs as written, top to bottom in one fresh folder, as a reader following it
// would: ```bash blocks with `nexus` on the PATH (what `npm link` gives; here a shim running src/cli/main.ts),
// ```ts blocks as ES modules with "nexus-align" resolved to this checkout's src/index.ts. The blocks create
// their own tiny data. A block preceded by `<!-- readme-test: skip (reason) -->` is not run (installing, the
// full suite, the lab). Each block must exit 0; a ts block's console output is kept for the assertions below.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import * as root from "../src/index.js";

const ROOT = join(import.meta.dirname, "..");
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const INDEX = pathToFileURL(join(ROOT, "src/index.ts")).href;

interface Block {
  lang: string;
  code: string;
  line: number;
  skip: string | null;
}

/** The fenced code blocks of a Markdown text, with the skip reason of a `readme-test: skip` comment above one. */
function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let j = start - 1;
    while (j >= 0 && lines[j]!.trim() === "") j--;
    const skip = j >= 0 ? (/<!-- readme-test: skip \((.*)\) -->/.exec(lines[j]!)?.[1] ?? null) : null;
    out.push({ lang: open[1]!, code: body.join("\n"), line: start + 1, skip });
  }
  return out;
}

let dir = "";
let bin = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-readme-"));
  bin = join(dir, ".bin");
  mkdirSync(bin);
  const shim = join(bin, "nexus");
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" --import "${TSX}" "${join(ROOT, "src/cli/main.ts")}" "$@"\n`);
  chmodSync(shim, 0o755);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function runBlock(b: Block, k: number): { stdout: string; stderr: string } {
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, NEXUS_QUIET: "1" };
  let r: ReturnType<typeof spawnSync>;
  if (b.lang === "bash") {
    r = spawnSync("bash", ["-euo", "pipefail", "-c", b.code], { cwd: dir, env, encoding: "utf8" });
  } else {
    const file = join(dir, `readme_block_${k}.mts`);
    writeFileSync(file, b.code.replaceAll(/from "nexus-align"/g, `from "${INDEX}"`));
    r = spawnSync(process.execPath, ["--import", TSX, file], { cwd: dir, env, encoding: "utf8" });
  }
  const out = { stdout: String(r.stdout), stderr: String(r.stderr) };
  assert.equal(r.status, 0, `README.md:${b.line} (${b.lang}) failed:\n${b.code}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`);
  return out;
}

describe("README.md", () => {
  const blocks = codeBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));

  test("has runnable blocks of both kinds, and every skipped block says why", () => {
    const run = blocks.filter((b) => b.skip === null && (b.lang === "bash" || b.lang === "ts"));
    assert.ok(run.filter((b) => b.lang === "ts").length >= 4, "ts blocks");
    assert.ok(run.filter((b) => b.lang === "bash").length >= 3, "bash blocks");
    for (const b of blocks) assert.ok(b.lang === "bash" || b.lang === "ts", `README.md:${b.line}: a block without a known language`);
    for (const b of blocks) if (b.skip !== null) assert.ok(b.skip.length > 5, `README.md:${b.line}: say why it is skipped`);
  });

  test("every name a ts block imports from nexus-align is exported by the package root, types included", () => {
    const names = new Set<string>();
    const types = new Set<string>();
    for (const b of blocks.filter((x) => x.lang === "ts")) {
      for (const m of b.code.matchAll(/import\s*(type\s*)?\{([^}]*)\}\s*from\s*"nexus-align"/g)) {
        for (const part of m[2]!.split(",")) {
          const name = part.trim().split(/\s+as\s+/)[0]!;
          if (m[1] !== undefined) types.add(name);
          else if (name.startsWith("type ")) types.add(name.slice(5).trim());
          else if (name !== "") names.add(name);
        }
      }
    }
    assert.ok(names.size >= 10 && types.size >= 1, `found ${names.size} imported names and ${types.size} types`);
    assert.deepEqual(
      [...names].filter((n) => !(n in root)),
      [],
    );
    // types vanish at run time: each must be declared by a module and named in the root's exports
    const sources = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(d, e.name)) : [join(d, e.name)]));
    const rootText = readFileSync(join(ROOT, "src/index.ts"), "utf8");
    const starred = [...rootText.matchAll(/export \* from "\.\/(\w+)\/index\.js"/g)].map((m) => m[1]);
    for (const t of types) {
      const decl = sources(join(ROOT, "src")).filter((f) => new RegExp(`export (interface|type) ${t}\\b`).test(readFileSync(f, "utf8")));
      assert.ok(decl.length > 0, `type ${t} is declared`);
      const folder = decl[0]!.slice(join(ROOT, "src").length + 1).split("/")[0];
      assert.ok(rootText.includes(`type ${t},`) || starred.includes(folder), `type ${t} is exported from the root`);
    }
  });

  test("links point inside the repository and exist (the design doc is docs/DESIGN.md)", () => {
    const text = readFileSync(join(ROOT, "README.md"), "utf8");
    const links = [...text.matchAll(/\]\(([^)#]+)\)/g)].map((m) => m[1]!).filter((l) => !/^https?:/.test(l));
    assert.ok(links.includes("docs/DESIGN.md"));
    for (const l of links) {
      assert.ok(!l.startsWith(".."), `README links outside the repository: ${l}`);
      assert.ok(existsSync(join(ROOT, l)), `README links to a missing file: ${l}`);
    }
    assert.ok(!text.includes("../shared/"), "README refers to ../shared/, which a clone does not have");
  });

  test("the nexus bin is the built CLI with a shebang; npm run build compiles the addon only when needed", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    assert.equal(pkg.bin.nexus, "dist/src/cli/main.js");
    assert.match(readFileSync(join(ROOT, "src/cli/main.ts"), "utf8"), /^#!\/usr\/bin\/env node\n/);
    assert.match(pkg.scripts.install, /node-gyp rebuild/);
    assert.equal(pkg.scripts.build, "npm run build:native && npm run build:ts");
    assert.match(pkg.scripts["build:native"], /^test -f build\/Makefile && node-gyp build \|\| node-gyp rebuild$/);
    assert.ok(pkg.dependencies.tsx, "tsx loads TypeScript reward modules at run time: a dependency, not a devDependency");
  });

  test("every block runs as written, in order, in one fresh folder", () => {
    const outputs: string[] = [];
    blocks.forEach((b, k) => {
      if (b.skip !== null) return;
      outputs.push(runBlock(b, k).stdout);
    });
    const all = outputs.join("\n");
    // what the blocks left behind: the models and the search/eval results a reader would look at
    for (const f of [
      "runs/tiny/config.json",
      "runs/sft/model.safetensors",
      "runs/dpo/metrics.jsonl",
      "runs/grpo/metrics.jsonl",
      "runs/prm/config.json",
    ]) {
      assert.ok(existsSync(join(dir, f)), `${f} was not written`);
    }
    const dpo = readFileSync(join(dir, "runs/dpo/metrics.jsonl"), "utf8");
    assert.match(dpo, /"eval_rewards\/accuracies"/);
    const grpo = readFileSync(join(dir, "runs/grpo/metrics.jsonl"), "utf8");
    assert.match(grpo, /endsWithAnswer/);
    assert.match(all, /"bestOfN":/); // nexus eval bon read what nexus search bon wrote
    assert.match(all, /\[ ?1, \d+, \d+ ?\]/); // the model block printed the logits' shape [B, T, V]
  });
});
