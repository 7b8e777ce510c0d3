// Fuzz targets for what a model folder holds: safetensors files (header JSON, header length, raw bytes), the
// sharded index, config.json, tokenizer.json, tokenizer_config.json and chat templates. Each case mutates the
// HF fixtures (../shared/fixtures/hf) and loads them the way Nexus does (readSafetensors, loadCausalLM,
// loadTokenizer + encode/decode/applyChatTemplate); an accepted input must then work (a forward pass of the
// right shape, ids inside the vocabulary). Not here: the harness (harness.ts) or the mutations (mutate.ts).

import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors } from "../../src/io/safetensors.js";
import { writeShardedSafetensors } from "../../src/io/sharded.js";
import { loadTokenizer, renderChatTemplate } from "../../src/io/tokenizer.js";
import { loadCausalLM } from "../../src/models/causal_lm.js";
import type { Rng } from "../../src/nn/rng.js";
import { noGrad, Tensor } from "../../src/tensor/index.js";
import { FIXTURES } from "../fixtures.js";
import { type FuzzTarget, judge, type Outcome } from "./harness.js";
import { BYTE_MUTATIONS, EXTREME_NUMBERS, maybeMutateBytes, mutateJsonText, pick } from "./mutate.js";

const LLAMA = path.join(FIXTURES, "llama-tiny");
const TOKENIZER = path.join(FIXTURES, "tokenizer");

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A fresh case folder holding copies of `files` (name → bytes). */
function caseDir(work: string, files: Record<string, Buffer | string>): string {
  const dir = path.join(work, "case");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), data);
  return dir;
}

/** A loaded model is valid when a 4-token forward gives logits [1, 4, vocab]. */
async function loadAndRun(dir: string): Promise<string | null> {
  const m = await loadCausalLM(dir);
  const ids = new Tensor(Int32Array.from([1, 5, 9, 3].map((x) => x % m.config.vocabSize)), [1, 4]);
  const logits = noGrad(() => m.forward({ inputIds: ids }).logits);
  const want = [1, 4, m.config.vocabSize];
  return logits.shape.every((d, i) => d === want[i]) ? null : `logits ${JSON.stringify(logits.shape)}, expected ${JSON.stringify(want)}`;
}

// ---- safetensors --------------------------------------------------------------------------------------

/** Split a safetensors file into its header JSON and data bytes. */
function splitSafetensors(buf: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString("utf8")), data: buf.subarray(8 + n) };
}

function joinSafetensors(headerText: string, data: Buffer, lengthField?: bigint): Buffer {
  const h = Buffer.from(headerText, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthField ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

/** A mutated model.safetensors: header JSON (mostly sizes and offsets), the length field, or raw bytes. */
function mutateSafetensors(orig: Buffer, rng: Rng): { bytes: Buffer; what: string[] } {
  const { header, data } = splitSafetensors(orig);
  const r = rng.next();
  if (r < 0.55) {
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    const focus = Array.from({ length: 4 }, () => {
      const n = pick(rng, names);
      return [n, pick(rng, ["shape", "data_offsets", "dtype"])];
    });
    const { text, what } = mutateJsonText(header, rng, focus);
    return { bytes: joinSafetensors(text, data), what };
  }
  if (r < 0.65) {
    const n = BigInt(orig.readBigUInt64LE(0));
    const v = pick(rng, [0n, 1n, 7n, n - 1n, n + 1n, BigInt(orig.length), 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n]);
    const { bytes } = { bytes: Buffer.from(orig) };
    bytes.writeBigUInt64LE(v);
    return { bytes, what: [`header length field = ${v}`] };
  }
  const name = pick(rng, Object.keys(BYTE_MUTATIONS));
  const [bytes, d] = BYTE_MUTATIONS[name](orig, rng);
  return { bytes, what: [d] };
}

let stOrig: Buffer;
let llamaConfig: string;

export const safetensorsTarget: FuzzTarget = {
  name: "safetensors",
  cases: { full: 1500, quick: 30 },
  setup() {
    stOrig = fs.readFileSync(path.join(LLAMA, "model.safetensors"));
    llamaConfig = fs.readFileSync(path.join(LLAMA, "config.json"), "utf8");
  },
  run(rng, work): Promise<Outcome> {
    const { bytes, what } = mutateSafetensors(stOrig, rng);
    const dir = caseDir(work, { "model.safetensors": bytes, "config.json": llamaConfig });
    const file = path.join(dir, "model.safetensors");
    if (rng.next() < 0.5) {
      return judge(what, () => readSafetensors(file), {
        mustName: [file],
        valid: (c) => {
          for (const [n, t] of c.tensors)
            if (t.data.length !== numel(t.shape)) return `tensor ${n}: ${t.data.length} values for shape ${t.shape}`;
          return null;
        },
      });
    }
    return judge(what, () => loadAndRun(dir), { mustName: [dir], valid: (x) => x });
  },
};

// ---- sharded index ------------------------------------------------------------------------------------

let shardFiles: Record<string, Buffer>;
let indexJson: Record<string, unknown>;

export const indexTarget: FuzzTarget = {
  name: "safetensors_index",
  cases: { full: 600, quick: 15 },
  setup(work) {
    const src = readSafetensors(path.join(LLAMA, "model.safetensors"));
    const dir = path.join(work, "sharded-src");
    writeShardedSafetensors(dir, src.tensors, { maxShardBytes: 150_000 });
    shardFiles = {};
    for (const f of fs.readdirSync(dir)) if (f.endsWith(".safetensors")) shardFiles[f] = fs.readFileSync(path.join(dir, f));
    indexJson = JSON.parse(fs.readFileSync(path.join(dir, "model.safetensors.index.json"), "utf8"));
    llamaConfig = fs.readFileSync(path.join(LLAMA, "config.json"), "utf8");
  },
  run(rng, work) {
    const wm = indexJson.weight_map as Record<string, string>;
    const focus = Object.keys(wm)
      .filter(() => rng.next() < 0.05)
      .map((k) => ["weight_map", k]);
    // names that try to leave the folder (traversal) or point at devices
    if (rng.next() < 0.2) {
      const evil = pick(rng, ["../model.safetensors", "/etc/passwd", "..", ".", "/dev/zero", "sub/x.safetensors", "a\u0000b", ""]);
      const k = pick(rng, Object.keys(wm));
      const j = structuredClone(indexJson) as { weight_map: Record<string, string> };
      j.weight_map[k] = evil;
      return loadIndexCase(JSON.stringify(j), [`weight_map[${k}] = ${JSON.stringify(evil)}`], work);
    }
    const { text, what } = mutateJsonText(indexJson, rng, focus);
    const b = maybeMutateBytes(text, rng, 0.2);
    return loadIndexCase(b.bytes, [...what, ...b.what], work);
  },
};

function loadIndexCase(index: string | Buffer, what: string[], work: string): Promise<Outcome> {
  const dir = caseDir(work, { ...shardFiles, "model.safetensors.index.json": index, "config.json": llamaConfig });
  return judge(what, () => loadAndRun(dir), { mustName: [dir], valid: (x) => x });
}

// ---- config.json --------------------------------------------------------------------------------------

const CONFIG_FOCUS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "max_position_embeddings",
  "rms_norm_eps",
  "eos_token_id",
  "bos_token_id",
  "tie_word_embeddings",
  "model_type",
].map((k) => [k]);

export const configTarget: FuzzTarget = {
  name: "config_json",
  cases: { full: 1500, quick: 30 },
  setup() {
    llamaConfig = fs.readFileSync(path.join(LLAMA, "config.json"), "utf8");
    stOrig = fs.readFileSync(path.join(LLAMA, "model.safetensors"));
  },
  run(rng, work) {
    const base = JSON.parse(llamaConfig);
    if (rng.next() < 0.3)
      base.rope_parameters = { rope_theta: pick(rng, EXTREME_NUMBERS), rope_type: pick(rng, ["default", "llama3", "yarn"]) };
    const { text, what } = mutateJsonText(base, rng, [...CONFIG_FOCUS, ["rope_parameters", "rope_theta"]]);
    const b = maybeMutateBytes(text, rng, 0.15);
    const dir = caseDir(work, { "config.json": b.bytes, "model.safetensors": stOrig });
    return judge([...what, ...b.what], () => loadAndRun(dir), { mustName: [dir], valid: (x) => x });
  },
};

// ---- tokenizer.json, tokenizer_config.json, chat templates --------------------------------------------

let tokJson: Record<string, unknown>;
let tokConfig: Record<string, unknown>;

const SAMPLE = "Hello world, 12 + 30 = 42.\n<|im_start|>héllo 😀";
const CHAT = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "What is 2+2?" },
];

/** A loaded tokenizer is valid when encode gives integer ids inside its vocabulary and decode a string. */
function useTokenizer(dir: string, chat: boolean): string | null {
  const tok = loadTokenizer(dir);
  const ids = tok.encode(SAMPLE);
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) return `encode gave id ${id}, vocab ${tok.vocabSize}`;
  if (typeof tok.decode(ids) !== "string") return "decode did not give a string";
  if (chat && tok.chatTemplate !== null) {
    const text = tok.applyChatTemplate(CHAT, { addGenerationPrompt: true });
    if (typeof text !== "string") return "the chat template did not render a string";
    tok.encode(text, { addSpecialTokens: false });
  }
  return null;
}

function setupTokenizer(): void {
  tokJson = JSON.parse(fs.readFileSync(path.join(TOKENIZER, "tokenizer.json"), "utf8"));
  tokConfig = JSON.parse(fs.readFileSync(path.join(TOKENIZER, "tokenizer_config.json"), "utf8"));
}

export const tokenizerTarget: FuzzTarget = {
  name: "tokenizer_json",
  cases: { full: 1000, quick: 20 },
  setup: setupTokenizer,
  run(rng, work) {
    const model = tokJson.model as { vocab: Record<string, number>; merges: unknown[] };
    const vocabKeys = Object.keys(model.vocab);
    const focus = [
      ...Array.from({ length: 6 }, () => ["model", "vocab", pick(rng, vocabKeys)]),
      ["model", "merges", rng.int(Math.max(1, model.merges.length))],
      ["model", "type"],
      ["added_tokens", rng.int(3), "id"],
      ["added_tokens", rng.int(3), "content"],
      ["pre_tokenizer"],
      ["decoder"],
      ["normalizer"],
      ["post_processor"],
    ];
    const { text, what } = mutateJsonText(tokJson, rng, focus);
    const b = maybeMutateBytes(text, rng, 0.15);
    const dir = caseDir(work, { "tokenizer.json": b.bytes, "tokenizer_config.json": JSON.stringify(tokConfig) });
    return judge([...what, ...b.what], () => useTokenizer(dir, false), { mustName: [dir], valid: (x) => x });
  },
};

export const tokenizerConfigTarget: FuzzTarget = {
  name: "tokenizer_config",
  cases: { full: 600, quick: 15 },
  setup: setupTokenizer,
  run(rng, work) {
    const focus = ["bos_token", "eos_token", "pad_token", "chat_template", "clean_up_tokenization_spaces", "model_max_length"].map((k) => [
      k,
    ]);
    const { text, what } = mutateJsonText(tokConfig, rng, focus);
    const b = maybeMutateBytes(text, rng, 0.15);
    const dir = caseDir(work, { "tokenizer.json": JSON.stringify(tokJson), "tokenizer_config.json": b.bytes });
    return judge([...what, ...b.what], () => useTokenizer(dir, true), { mustName: [dir], valid: (x) => x });
  },
};

/** Jinja that a hostile model folder might ship: unbounded loops, recursion, huge output, Python escapes. */
const HOSTILE_JINJA = [
  "{% for i in range(1000000000) %}x{% endfor %}",
  "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
  "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
  "{{ messages[0].content | indent(100000000) }}",
  "{{ ''.__class__.__mro__[1].__subclasses__() }}",
  "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
  "{{ raise_exception('stop') }}",
  "{% set ns = namespace(x=[]) %}{% for i in range(300000) %}{% set ns.x = ns.x + [i] %}{% endfor %}",
  "{{ range(10) | join(',') * 3 }}",
  "{% for m in messages %}{% for m2 in messages %}{{ m2.content * 1000 }}{% endfor %}{% endfor %}",
  "{{ ((((((((((((((((((((1)))))))))))))))))))) }}",
  "{%",
  "{{ strftime_now('%Y-%m-%d') }}",
  "{{ messages | tojson(indent=100000000) }}",
];

export const chatTemplateTarget: FuzzTarget = {
  name: "chat_template",
  cases: { full: 800, quick: 15 },
  setup: setupTokenizer,
  run(rng) {
    const base = tokConfig.chat_template as string;
    let tmpl = base;
    const what: string[] = [];
    const r = rng.next();
    if (r < 0.4) {
      const at = rng.int(tmpl.length + 1);
      const snippet = pick(rng, HOSTILE_JINJA);
      tmpl = tmpl.slice(0, at) + snippet + tmpl.slice(at);
      what.push(`insert ${JSON.stringify(snippet)} at ${at}`);
    } else if (r < 0.8) {
      const name = pick(rng, Object.keys(BYTE_MUTATIONS));
      const [b, d] = BYTE_MUTATIONS[name](Buffer.from(tmpl, "utf8"), rng);
      tmpl = b.toString("utf8");
      what.push(d);
    } else {
      tmpl = pick(rng, HOSTILE_JINJA);
      what.push(`template = ${JSON.stringify(tmpl)}`);
    }
    const messages = rng.next() < 0.2 ? [{ role: "user", content: "x".repeat(pick(rng, [0, 1, 100_000])) }] : CHAT;
    return judge(what, () => renderChatTemplate(tmpl, messages, { addGenerationPrompt: true }), {
      mustName: ["chat template"],
      valid: (s) => (typeof s === "string" ? null : `rendered ${typeof s}`),
    });
  },
};
