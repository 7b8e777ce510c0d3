// Untrusted code stays out: nothing in src/ evaluates strings as code or starts processes, a dynamic import
// happens only for a reward module the user names, and a hostile model folder (auto_map pointing at Python,
// pickled weights, a chat template that tries to reach Python's os) loads without running any of it.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { importRewardModule } from "../src/cli/reward_loading.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { loadCausalLM } from "../src/models/causal_lm.js";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

test("src/ has no eval, no Function constructor, no vm, no child processes; dynamic code loading only where allowed", () => {
  const rules: [RegExp, string, string[]][] = [
    [/(?<![.\w])eval\s*\((?!\)\s*:)/, "eval(", []], // (not the Module.eval(): this method)
    [/new\s+Function\s*\(|\bFunction\s*\(\s*["'`]/, "the Function constructor", []],
    [/["']node:vm["']|["']vm["']/, "node:vm", ["tensor/memory.ts"]], // (only for the literal "gc", checked below)
    [/["'](node:)?child_process["']/, "child processes", []],
    [/(?<![.\w])import\s*\(/, "a dynamic import", ["cli/reward_loading.ts"]],
    [/createRequire\s*\(/, "require()", ["backend/cpu.ts", "backend/cuda.ts"]],
  ];
  const memory = fs.readFileSync(path.join(SRC, "tensor/memory.ts"), "utf8");
  assert.deepEqual(memory.match(/runInNewContext\([^)]*\)/g), ['runInNewContext("gc")'], "tensor/memory.ts evaluates only the literal gc");
  assert.ok(!/\bvm\.|runInContext|runInThisContext|Script\(/.test(memory), "tensor/memory.ts uses vm beyond gc");
  const files = sources(SRC);
  assert.ok(files.length > 100, `found only ${files.length} source files`);
  for (const f of files) {
    const rel = path.relative(SRC, f);
    // comments may mention these words; only code counts
    const code = fs
      .readFileSync(f, "utf8")
      .split("\n")
      .filter((l) => !/^\s*(\/\/|\/\*|\*)/.test(l))
      .join("\n");
    for (const [re, what, allowed] of rules) {
      if (allowed.includes(rel)) continue;
      assert.ok(!re.test(code), `${rel} uses ${what}`);
    }
  }
});

test("a hostile model folder loads without running anything in it", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-hostile-"));
  const mark = path.join(dir, "PWNED");
  const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURES, "llama-tiny", "config.json"), "utf8"));
  fs.writeFileSync(
    path.join(dir, "config.json"),
    JSON.stringify({ ...cfg, auto_map: { AutoModelForCausalLM: "modeling_evil.EvilModel" }, trust_remote_code: true }),
  );
  fs.copyFileSync(path.join(FIXTURES, "llama-tiny", "model.safetensors"), path.join(dir, "model.safetensors"));
  fs.writeFileSync(path.join(dir, "modeling_evil.py"), `open(${JSON.stringify(mark)}, "w").write("x")\n`);
  fs.writeFileSync(path.join(dir, "pytorch_model.bin"), "not a pickle you want to open");
  fs.copyFileSync(path.join(FIXTURES, "tokenizer", "tokenizer.json"), path.join(dir, "tokenizer.json"));
  const tc = JSON.parse(fs.readFileSync(path.join(FIXTURES, "tokenizer", "tokenizer_config.json"), "utf8"));
  const pyEscape = `{{ cycler.__init__.__globals__.os.popen('touch ${mark}').read() }}{{ ''.__class__.__mro__[1].__subclasses__() }}`;
  fs.writeFileSync(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ ...tc, auto_map: { AutoTokenizer: ["tokenization_evil.EvilTokenizer", null] }, chat_template: pyEscape }),
  );
  const model = await loadCausalLM(dir); // the safetensors weights, never the .bin or the Python
  assert.equal(model.config.numHiddenLayers, 2);
  const tok = loadTokenizer(dir);
  let rendered: string | null = null;
  try {
    rendered = tok.applyChatTemplate([{ role: "user", content: "hi" }]);
  } catch (e) {
    assert.equal((e as Error).name, "TokenizerError"); // the interpreter has no Python objects to reach
  }
  if (rendered !== null) assert.ok(!rendered.includes("popen"));
  assert.equal(fs.existsSync(mark), false, "something in the model folder was executed");
  // weights only as pickle: refused without being read
  fs.rmSync(path.join(dir, "model.safetensors"));
  await assert.rejects(loadCausalLM(dir), /neither model\.safetensors\.index\.json nor model\.safetensors exists/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("reward modules load only from a file path the user gave: URLs and package names are file paths, not code", async () => {
  const marker = "__nexus_untrusted_marker__";
  for (const spec of [`data:text/javascript,globalThis.${marker}=1;export default()=>1`, "node:fs", "lodash"]) {
    // resolved as a file under the working folder, which does not exist: never fetched, never evaluated
    await assert.rejects(importRewardModule(spec, os.tmpdir()), (e: Error) =>
      e.message.startsWith(`[reward-module] ${os.tmpdir()}/${spec}`),
    );
  }
  assert.equal((globalThis as Record<string, unknown>)[marker], undefined);
});
