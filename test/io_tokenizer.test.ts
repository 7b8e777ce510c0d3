// Tests of src/io/tokenizer.ts, char_tokenizer.ts and chat_encoding.ts: every case of the HF reference
// tokenizer fixture (ids, decoded text, chat template text and ids), prompt/completion and chat masks,
// and the CharTokenizer's saved tokenizer.json loaded back through @huggingface/tokenizers.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CharTokenizer,
  type ChatMessage,
  checkTokenizerFitsModel,
  encodeChat,
  encodePromptCompletion,
  loadTokenizer,
  saveTokenizer,
  TokenizerError,
} from "../src/io/index.js";

const TOK_DIR = fileURLToPath(new URL("../../shared/fixtures/hf/tokenizer/", import.meta.url));

interface Cases {
  encode: { text: string; ids: number[]; decoded: string }[];
  chat: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }[];
}
const CASES = JSON.parse(fs.readFileSync(path.join(TOK_DIR, "cases.json"), "utf-8")) as Cases;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "nexus-tok-"));
}

describe("HF tokenizer fixture", () => {
  const tok = loadTokenizer(TOK_DIR);

  it("knows its vocabulary and special tokens", () => {
    assert.equal(tok.vocabSize, 384);
    assert.equal(tok.eosToken, "<|im_end|>");
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.padToken, "<|endoftext|>");
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.bosTokenId, null);
    assert.deepEqual([...tok.specialTokenIds].sort(), [0, 1, 2]);
    assert.equal(tok.tokenToId("<|im_start|>"), 1);
    assert.equal(tok.idToToken(2), "<|im_end|>");
  });

  for (const [i, c] of CASES.encode.entries()) {
    it(`encode case ${i}: ${JSON.stringify(c.text)}`, () => {
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids);
      assert.deepEqual(tok.encode(c.text), c.ids, "this tokenizer has no post-processor tokens to add");
      assert.equal(tok.decode(c.ids), c.decoded);
    });
  }

  it("decode drops special tokens on request", () => {
    const c = CASES.encode[3];
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), "user\nhi");
    // ids past the vocabulary (padded embedding rows) decode to nothing, as in HF tokenizers
    assert.equal(tok.decode([...c.ids, 384]), tok.decode(c.ids));
  });

  for (const [i, c] of CASES.chat.entries()) {
    it(`chat case ${i} (add_generation_prompt=${c.add_generation_prompt})`, () => {
      const text = tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt });
      assert.equal(text, c.text);
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), c.ids);
    });
  }

  it("saveTokenizer writes files that load to the same tokenizer", () => {
    const dir = tmpDir();
    saveTokenizer(tok, dir);
    const back = loadTokenizer(dir);
    for (const c of CASES.encode) assert.deepEqual(back.encode(c.text, { addSpecialTokens: false }), c.ids);
    assert.equal(back.applyChatTemplate(CASES.chat[0].messages, { addGenerationPrompt: true }), CASES.chat[0].text);
  });

  it("prefers chat_template.jinja over the config's template", () => {
    const dir = tmpDir();
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(TOK_DIR, f), path.join(dir, f));
    fs.writeFileSync(
      path.join(dir, "chat_template.jinja"),
      "{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}",
    );
    assert.equal(loadTokenizer(dir).applyChatTemplate([{ role: "user", content: "hi" }]), "[user]hi<|im_end|>");
  });

  it("reports a missing tokenizer.json and a template error", () => {
    assert.throws(() => loadTokenizer(tmpDir()), /no tokenizer\.json/);
    const dir = tmpDir();
    fs.copyFileSync(path.join(TOK_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
    fs.writeFileSync(
      path.join(dir, "tokenizer_config.json"),
      JSON.stringify({ eos_token: "<|im_end|>", chat_template: "{{ raise_exception('no system role') }}" }),
    );
    // the error names the folder the template came from
    assert.throws(
      () => loadTokenizer(dir).applyChatTemplate([]),
      (e: Error) => e.message === `[tokenizer] ${dir}: chat template: the template raised: no system role`,
    );
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<nope>" }));
    assert.throws(() => loadTokenizer(dir), /eos_token "<nope>" is not in the vocabulary/);
  });
});

describe("prompt/completion and chat encoding", () => {
  const tok = loadTokenizer(TOK_DIR);
  const [sys, user] = CASES.chat[0].messages;

  it("text rows: prompt ids, then the completion with EOS appended", () => {
    const r = encodePromptCompletion(tok, "Step 1: 48 / 2 = 24.", " The answer is 72.");
    const promptIds = CASES.encode[0].ids;
    assert.deepEqual(r.ids.slice(0, promptIds.length), promptIds);
    assert.equal(r.promptLength, promptIds.length);
    assert.equal(r.prefixMatches, true);
    assert.equal(r.ids.at(-1), 2);
    assert.equal(tok.decode(r.ids.slice(r.promptLength)), " The answer is 72.<|im_end|>");
    assert.deepEqual(
      r.completionMask,
      r.ids.map((_, i) => (i < promptIds.length ? 0 : 1)),
    );
    const noEos = encodePromptCompletion(tok, "a", "b<|im_end|>");
    assert.equal(noEos.ids.filter((x) => x === 2).length, 1, "an EOS already present is not doubled");
  });

  it("reports a prompt whose last token merges with the completion", () => {
    // "Step 1: 4" ends in " 4" (223, 22), but "Step 1: 48 / 2" tokenizes " 48" as one token (277).
    const r = encodePromptCompletion(tok, "Step 1: 4", "8 / 2", { addEos: false });
    assert.deepEqual(tok.encode("Step 1: 4"), [309, 296, 28, 223, 22]);
    assert.deepEqual(r.ids, [309, 296, 28, 277, 375, 267]);
    assert.equal(r.prefixMatches, false);
    assert.equal(r.promptLength, 5); // TRL keeps len(prompt_ids) as the boundary
    assert.deepEqual(r.completionMask, [0, 0, 0, 0, 0, 1]);
    assert.equal(encodePromptCompletion(tok, "The answer i", "s 72.", { addEos: false }).prefixMatches, true);
  });

  it("conversational rows: the prompt renders with the generation prompt (fixture ids)", () => {
    const r = encodePromptCompletion(tok, [sys, user], [{ role: "assistant", content: "42" }]);
    assert.deepEqual(r.ids.slice(0, r.promptLength), CASES.chat[0].ids);
    assert.equal(r.prefixMatches, true);
    assert.equal(tok.decode(r.ids.slice(r.promptLength)), "42<|im_end|>\n");
    assert.equal(
      r.completionMask.reduce((a, b) => a + b, 0),
      r.ids.length - CASES.chat[0].ids.length,
    );
    assert.throws(() => encodePromptCompletion(tok, "x", [user]), /both be text or both be message lists/);
  });

  it("chat: the mask covers each assistant turn's content and closing tokens", () => {
    const msgs: ChatMessage[] = [
      sys,
      user,
      { role: "assistant", content: "42" },
      { role: "user", content: "And 6*8?" },
      { role: "assistant", content: "48" },
    ];
    const { ids, assistantMask } = encodeChat(tok, msgs);
    assert.deepEqual(ids, tok.encode(tok.applyChatTemplate(msgs), { addSpecialTokens: false }));
    assert.deepEqual(ids.slice(0, CASES.chat[0].ids.length), CASES.chat[0].ids);
    // Gather the masked spans and decode them.
    const spans: string[] = [];
    let cur: number[] = [];
    assistantMask.forEach((m, i) => {
      if (m) cur.push(ids[i]);
      else if (cur.length) {
        spans.push(tok.decode(cur));
        cur = [];
      }
    });
    if (cur.length) spans.push(tok.decode(cur));
    assert.deepEqual(spans, ["42<|im_end|>\n", "48<|im_end|>\n"]);
    assert.deepEqual(encodeChat(tok, msgs, { assistantOnly: false }).assistantMask, new Array(ids.length).fill(1));
  });

  it("chat: a template that rewrites earlier turns is an error", () => {
    const dir = tmpDir();
    fs.copyFileSync(path.join(TOK_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
    // Shows only the last message: renders of shorter prefixes are not prefixes of the full render.
    const tmpl = "{{ messages[-1].content if messages else '' }}{% if add_generation_prompt %}>{% endif %}";
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: tmpl }));
    const t = loadTokenizer(dir);
    assert.throws(() => encodeChat(t, [user, { role: "assistant", content: "ok" }, user]), /rendering up to message 1 is not a prefix/);
  });
});

describe("CharTokenizer", () => {
  const chars = "0123456789+-*/=. \nabcdefghijklmnopqrstuvwxyzé🙂<>";
  const tok = new CharTokenizer(chars, { extraSpecialTokens: ["<step>"] });

  it("gives specials the first ids and one id per character", () => {
    assert.deepEqual(tok.vocab.slice(0, 4), ["<pad>", "<eos>", "<bos>", "<step>"]);
    assert.equal(tok.vocabSize, 4 + Array.from(chars).length);
    assert.deepEqual([tok.padTokenId, tok.eosTokenId, tok.bosTokenId], [0, 1, 2]);
    assert.deepEqual(tok.encode("12+3"), [5, 6, 14, 7]);
    assert.deepEqual(tok.encode("1<step>2<eos>"), [5, 3, 6, 1]);
    assert.equal(tok.decode(tok.encode("a 🙂\né<step>")), "a 🙂\né<step>");
    assert.equal(tok.decode(tok.encode("1<step>2<eos>"), { skipSpecialTokens: true }), "12");
    assert.throws(() => tok.encode("1?"), /character "\?" \(U\+003F\) at index 1 is not in the vocabulary/);
    assert.equal(tok.decode([5, 999, 3]), tok.decode([5, 3]));
  });

  const texts = ["", "12+3=15", "a b\nc", "x<step>y<eos><pad>", "🙂é 🙂", "<<step>>", "   ", "9".repeat(600)];

  it("saves a tokenizer.json that @huggingface/tokenizers encodes and decodes identically", () => {
    const dir = tmpDir();
    saveTokenizer(tok, dir);
    const hf = loadTokenizer(dir);
    assert.equal(hf.vocabSize, tok.vocabSize);
    assert.deepEqual([hf.padTokenId, hf.eosTokenId, hf.bosTokenId], [0, 1, 2]);
    assert.deepEqual([...hf.specialTokenIds].sort(), [0, 1, 2, 3]);
    for (const t of texts) {
      const ids = tok.encode(t);
      assert.deepEqual(hf.encode(t), ids, JSON.stringify(t));
      assert.deepEqual(hf.encode(t, { addSpecialTokens: false }), ids);
      assert.equal(hf.decode(ids), tok.decode(ids));
      assert.equal(hf.decode(ids, { skipSpecialTokens: true }), tok.decode(ids, { skipSpecialTokens: true }));
    }
    assert.deepEqual(tok.encode("<<step>>"), [tok.tokenToId("<"), 3, tok.tokenToId(">")]);
  });

  it("with addBos, both prepend BOS when asked for special tokens", () => {
    const withBos = new CharTokenizer("ab<>", { addBos: true });
    assert.deepEqual(withBos.encode("ab"), [2, 3, 4]);
    assert.deepEqual(withBos.encode("ab", { addSpecialTokens: false }), [3, 4]);
    const dir = tmpDir();
    saveTokenizer(withBos, dir);
    const hf = loadTokenizer(dir);
    for (const t of ["ab", "<<bos>>", "", "b<eos>a"]) {
      assert.deepEqual(hf.encode(t), withBos.encode(t), JSON.stringify(t));
      assert.deepEqual(hf.encode(t, { addSpecialTokens: false }), withBos.encode(t, { addSpecialTokens: false }));
    }
  });

  it("renders a given chat template and masks assistant turns", () => {
    const t = new CharTokenizer("abcdefghijklmnopqrstuvwxyz:\n ", {
      chatTemplate:
        "{% for m in messages %}{{ m.role[0] }}:{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}a:{% endif %}",
    });
    const msgs: ChatMessage[] = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "yo" },
    ];
    assert.equal(t.applyChatTemplate(msgs), "u:hi<eos>a:yo<eos>");
    const { ids, assistantMask } = encodeChat(t, msgs);
    assert.equal(t.decode(ids.filter((_, i) => assistantMask[i])), "yo<eos>");
    assert.throws(() => tok.applyChatTemplate(msgs), /no chat template/);
  });

  it("rejects malformed vocabularies", () => {
    assert.throws(() => new CharTokenizer(["ab"]), /"ab" is not a single character/);
    assert.throws(() => new CharTokenizer("a", { padToken: "<x>", eosToken: "<x>" }), /special token "<x>" appears twice/);
    assert.throws(() => new CharTokenizer("a", { bosToken: null, addBos: true }), /addBos needs a bosToken/);
  });
});

describe("checkTokenizerFitsModel", () => {
  it("passes when every id has an embedding row, names the first missing one otherwise", () => {
    const tok = loadTokenizer(TOK_DIR);
    checkTokenizerFitsModel(tok, 384);
    checkTokenizerFitsModel(tok, 512);
    assert.throws(
      () => checkTokenizerFitsModel(tok, 300, "runs/x"),
      (e: unknown) =>
        e instanceof TokenizerError &&
        /\[tokenizer\] runs\/x: tokenizer has 384 ids but the model's vocab_size is 300/.test(e.message) &&
        /every id from 300/.test(e.message),
    );
    const ct = new CharTokenizer("abc");
    checkTokenizerFitsModel(ct, 6);
    assert.throws(() => checkTokenizerFitsModel(ct, 5), /token "c" \(id 5\)/);
  });
});
