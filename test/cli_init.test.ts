// `nexus init` end to end: spawn the CLI into a temp folder, load the model and tokenizer it wrote, generate a
// few tokens; same seed → same bytes; an HF tokenizer folder is copied; the preset table's SmolLM2-135M shape.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHAR_TOKENIZER_CHARS, defaultCharTokenizer, presetConfig } from "../src/cli/init.js";
import { generate } from "../src/generate/generate.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { loadCausalLM } from "../src/models/causal_lm.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));

function nexus(...args: string[]): string {
  return execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/main.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NEXUS_QUIET: "1" },
  });
}

describe("nexus init", () => {
  test("tiny preset with the char tokenizer: loads, encodes, generates; seeded", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-init-"));
    const out = nexus("init", "--preset", "tiny", "--output", path.join(tmp, "a"), "--seed", "7");
    assert.match(out, /preset tiny, vocab 128/);
    nexus("init", "--preset", "tiny", "--output", path.join(tmp, "b"), "--seed", "7");
    nexus("init", "--preset", "tiny", "--output", path.join(tmp, "c"), "--seed", "8");
    const bytes = (d: string) => fs.readFileSync(path.join(tmp, d, "model.safetensors"));
    assert.ok(bytes("a").equals(bytes("b")));
    assert.ok(!bytes("a").equals(bytes("c")));

    const model = await loadCausalLM(path.join(tmp, "a"));
    const tok = loadTokenizer(path.join(tmp, "a"));
    assert.equal(model.config.vocabSize, 128);
    assert.equal(model.config.numHiddenLayers, 2);
    assert.equal(model.config.eosTokenId, tok.eosTokenId);
    assert.equal(tok.vocabSize, 3 + CHAR_TOKENIZER_CHARS.length + 1); // pad, eos, bos, the characters, <unk>
    const text = "Hello, world!\n1 + 2 = 3";
    const ids = tok.encode(text, { addSpecialTokens: false });
    assert.deepEqual(ids, defaultCharTokenizer().encode(text));
    assert.equal(tok.decode(ids), text);
    const [g] = generate(model, [ids], { maxNewTokens: 5, temperature: 1, seed: 1, eosTokenId: null });
    assert.equal(g.completionIds.length, 5);
    fs.rmSync(tmp, { recursive: true });
  });

  test("qwen2 model type and an HF tokenizer folder", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-init-"));
    const dir = path.join(tmp, "q");
    nexus("init", "--preset", "tiny", "--output", dir, "--model-type", "qwen2", "--tokenizer", path.join(FIXTURES, "tokenizer"));
    const model = await loadCausalLM(dir);
    assert.equal(model.config.modelType, "qwen2");
    assert.equal(model.config.qkvBias, true);
    assert.equal(model.config.vocabSize, 384);
    const tok = loadTokenizer(dir);
    const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, "tokenizer", "cases.json"), "utf-8")) as {
      encode: { text: string; ids: number[] }[];
    };
    assert.deepEqual(tok.encode(cases.encode[0].text, { addSpecialTokens: false }), cases.encode[0].ids);
    fs.rmSync(tmp, { recursive: true });
  });

  test("bad arguments fail with a tagged message", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-init-"));
    assert.throws(
      () =>
        execFileSync(
          process.execPath,
          ["--import", "tsx", path.join(ROOT, "src/cli/main.ts"), "init", "--preset", "huge", "--output", tmp],
          {
            cwd: ROOT,
            encoding: "utf8",
            stdio: "pipe",
          },
        ),
      (e: { stderr: string; status: number }) => e.status === 1 && /--preset.*'huge' is not one of tiny, small, smollm-135m/.test(e.stderr),
    );
    fs.rmSync(tmp, { recursive: true });
  });

  test("the smollm-135m preset has the SmolLM2-135M shape", () => {
    const cfg = presetConfig("smollm-135m", defaultCharTokenizer());
    assert.deepEqual(
      [cfg.vocabSize, cfg.hiddenSize, cfg.numHiddenLayers, cfg.numAttentionHeads, cfg.numKeyValueHeads, cfg.headDim, cfg.intermediateSize],
      [49152, 576, 30, 9, 3, 64, 1536],
    );
    assert.equal(cfg.tieWordEmbeddings, true);
  });
});
