// `nexus init`'s char tokenizer: a character outside the vocabulary becomes <unk> (the last id, so the characters'
// ids are those of the tokenizer without it) with one warning, in memory and once saved and loaded (HF
// tokenizers path); its chat template renders conversations that SFT can train on with assistant-only loss;
// a tokenizer without a template says which file to add.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CHAR_TOKENIZER_CHARS, defaultCharTokenizer, initModel } from "../src/cli/init.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { loadTokenizer, saveTokenizer } from "../src/io/tokenizer.js";
import { trainSft } from "../src/train/sft.js";

/** Run fn, returning what it wrote on stderr. */
function stderrOf(fn: () => void): string {
  let err = "";
  const w = process.stderr.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = w;
  }
  return err;
}

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "nexus-tok-"));
  initModel({ preset: "tiny", output: join(dir, "tiny"), seed: 1 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("char tokenizer: unknown characters", () => {
  test("map to <unk> (the last id) with one warning; known characters keep their ids", () => {
    const tok = defaultCharTokenizer();
    const plain = new CharTokenizer(CHAR_TOKENIZER_CHARS);
    assert.equal(tok.unkTokenId, plain.vocabSize);
    assert.deepEqual(tok.encode("abc 12"), plain.encode("abc 12"));
    let ids: number[] = [];
    const err = stderrOf(() => {
      ids = tok.encode("café ok");
      tok.encode("naïve");
    });
    assert.deepEqual(ids, [...plain.encode("caf"), tok.unkTokenId, ...plain.encode(" ok")]);
    assert.equal(err.match(/not in the character vocabulary/g)?.length, 1, err);
    assert.match(err, /"é" \(U\+00E9\) at index 3 .*encoded as <unk>/);
    assert.throws(() => plain.encode("é"), /"é" \(U\+00E9\) at index 0 is not in the vocabulary \(and there is no unknown token\)/);
  });

  test("the saved folder (loaded through HF tokenizers) encodes the same and warns instead of dropping", () => {
    const tok = loadTokenizer(join(dir, "tiny"));
    const mem = defaultCharTokenizer();
    let ids: number[] = [];
    const err = stderrOf(() => {
      ids = tok.encode("x→y", { addSpecialTokens: false });
    });
    assert.deepEqual(ids, [mem.encode("x")[0], mem.unkTokenId, mem.encode("y")[0]]);
    assert.match(err, /character "→" \(U\+2192\) is not in the vocabulary: encoded as <unk>/);
    // a legacy char folder without <unk>: the character is dropped, and it says so
    const legacy = join(dir, "legacy");
    saveTokenizer(new CharTokenizer(CHAR_TOKENIZER_CHARS), legacy);
    const old = loadTokenizer(legacy);
    const err2 = stderrOf(() => old.encode("a→b", { addSpecialTokens: false }));
    assert.match(err2, /"→" \(U\+2192\) is not in the vocabulary: DROPPED \(this tokenizer has no unknown token\)/);
  });
});

describe("char tokenizer: chat template", () => {
  const chat = [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
  ];

  test("renders role lines, ends assistant turns with EOS, and is prefix-stable", () => {
    const tok = loadTokenizer(join(dir, "tiny"));
    assert.equal(tok.applyChatTemplate(chat), "user: 2+2?\nassistant: 4<eos>");
    const prompt = tok.applyChatTemplate(chat.slice(0, 1), { addGenerationPrompt: true });
    assert.equal(prompt, "user: 2+2?\nassistant: ");
    assert.ok(tok.applyChatTemplate(chat).startsWith(prompt));
  });

  test("conversational SFT trains on the init folder with assistant-only loss (loss on '4<eos>' only)", async () => {
    const res = await trainSft({
      model: join(dir, "tiny"),
      data: [{ messages: chat }],
      config: { maxSteps: 1, assistantOnlyLoss: true, learningRate: 1e-3 },
      outputDir: null,
      quiet: true,
    });
    const ex = res.examples[0]!;
    const tok = defaultCharTokenizer();
    const trained = ex.ids.filter((_, i) => ex.lossMask[i] === 1);
    assert.deepEqual(trained, [...tok.encode("4"), tok.eosTokenId]);
    assert.ok(Number.isFinite(res.run.history.at(-1)!.loss as number));
  });

  test("a tokenizer without a template names the file to add", () => {
    const bare = join(dir, "bare");
    saveTokenizer(new CharTokenizer(CHAR_TOKENIZER_CHARS), bare);
    assert.throws(
      () => loadTokenizer(bare).applyChatTemplate(chat),
      (e: Error) => e.message.includes(`has no chat template`) && e.message.includes(join(bare, "chat_template.jinja")),
    );
  });
});
