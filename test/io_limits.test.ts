// Loaders bound every size before allocating (issue 13's probe: config.json `num_hidden_layers: 100000`
// segfaulted after 2 GB, a tokenizer.json vocab id of 1e9 took 32 s, hostile chat templates hung). Each case
// must end fast with an error naming the file, never a hang, a raw RangeError or an allocation. Also: the
// parameter shapes a config implies match the real modules, and strict UTF-8 / size checks on data and configs.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readJsonl, streamJsonl } from "../src/data/jsonl.js";
import { renderBounded, TEMPLATE_LIMITS } from "../src/io/chat_template.js";
import { parseHfConfig, readHfConfig } from "../src/io/hf_config.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { CausalLM, createCausalLM, loadCausalLM } from "../src/models/causal_lm.js";
import { SequenceClassifier, TokenClassifier } from "../src/models/heads.js";
import { applyLora, loadLoraAdapter, saveLoraAdapter } from "../src/models/lora.js";
import { causalLMParameterShapes, decoderParameterShapes, withPrefix } from "../src/models/param_shapes.js";
import { readConfigFile } from "../src/train/config.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const LLAMA = path.join(FIXTURES, "llama-tiny");

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "nexus-limits-"));
}

/** A copy of the llama-tiny checkpoint whose config.json has `patch` applied. */
function llamaWith(patch: Record<string, unknown>): string {
  const dir = tmp();
  fs.copyFileSync(path.join(LLAMA, "model.safetensors"), path.join(dir, "model.safetensors"));
  const cfg = JSON.parse(fs.readFileSync(path.join(LLAMA, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, ...patch }));
  return dir;
}

/** Runs fn, asserting it throws a non-raw error matching `re` within `ms`. */
async function rejectsFast(fn: () => unknown, re: RegExp, ms: number): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(
    async () => fn(),
    (e: Error) => {
      assert.ok(!["Error", "TypeError", "RangeError"].includes(e.name), `raw ${e.name}: ${e.message}`);
      assert.match(e.message, re);
      return true;
    },
  );
  const took = performance.now() - t0;
  assert.ok(took < ms, `took ${took.toFixed(0)} ms (limit ${ms})`);
}

describe("config.json sizes are bounded before allocating", () => {
  test("num_hidden_layers: 100000 is refused at once, naming the file", async () => {
    const dir = llamaWith({ num_hidden_layers: 100000 });
    await rejectsFast(
      () => loadCausalLM(dir),
      new RegExp(`${path.join(dir, "config.json")}: num_hidden_layers is 100000, above the limit of 1024`),
      1000,
    );
  });

  test("sizes within the limits but not the checkpoint's are refused before the model is built", async () => {
    for (const [patch, re] of [
      [{ num_hidden_layers: 1000 }, /implies \d+ parameter\(s\) the checkpoint lacks: "model\.layers\.2\./],
      [{ hidden_size: 65536 }, /"model\.embed_tokens\.weight" is \[384,64\] in the checkpoint, config\.json implies \[384,65536\]/],
      [{ intermediate_size: 1 << 20 }, /mlp\.gate_proj\.weight" is \[160,64\] in the checkpoint, config\.json implies \[1048576,64\]/],
      [{ vocab_size: 1 << 24 }, /embed_tokens\.weight" is \[384,64\] in the checkpoint, config\.json implies \[16777216,64\]/],
    ] as const) {
      const dir = llamaWith(patch);
      const heap = process.memoryUsage().arrayBuffers;
      await rejectsFast(() => loadCausalLM(dir), re, 2000);
      assert.ok(process.memoryUsage().arrayBuffers - heap < 64 * 2 ** 20, `${JSON.stringify(patch)} allocated before failing`);
    }
  });

  test("other hostile values: odd head_dim, a RoPE theta that gives non-finite frequencies, eos outside the vocabulary", () => {
    const base = JSON.parse(fs.readFileSync(path.join(LLAMA, "config.json"), "utf8"));
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ head_dim: 15 }, /head_dim 15 is odd/],
      [{ rope_parameters: { rope_theta: 1e-320, rope_type: "default" } }, /non-finite RoPE frequencies/],
      [{ eos_token_id: 999 }, /eos_token_id 999 is outside the vocabulary/],
      [{ vocab_size: 2 ** 24 + 1 }, /vocab_size is 16777217, above the limit/],
      [{ hidden_size: "64" }, /hidden_size is "64", expected a number/],
    ];
    for (const [patch, re] of bad) assert.throws(() => parseHfConfig({ ...base, ...patch }, "x/config.json"), re);
    // a value nested 100000 deep is described, not printed (JSON.stringify would overflow the stack)
    const deep = JSON.parse(`${"[".repeat(100000)}1${"]".repeat(100000)}`);
    assert.throws(
      () => parseHfConfig({ ...base, num_hidden_layers: deep }, "x/config.json"),
      /num_hidden_layers is \[\.\.\.\] \(nested too deep/,
    );
  });

  test("a model from scratch that cannot fit this machine is refused before allocating", () => {
    const cfg = { ...readHfConfig(LLAMA), vocabSize: 2 ** 24, hiddenSize: 2 ** 17 };
    assert.throws(() => createCausalLM(cfg), /needs 8192\.0 GiB, above the 4 GiB a tensor can hold/);
    const wide = { ...readHfConfig(LLAMA), numHiddenLayers: 1000, hiddenSize: 8192, intermediateSize: 28672, headDim: 2048 };
    assert.throws(() => createCausalLM(wide), /more than this machine's/);
  });

  test("the shapes a config implies are the real modules' (llama and qwen2, biases, tied head, classifiers)", () => {
    const llama = readHfConfig(LLAMA);
    const qwen = readHfConfig(path.join(FIXTURES, "qwen2-tiny"));
    const shapesOf = (m: { namedParameters(): Iterable<[string, { shape: readonly number[] }]> }) =>
      new Map([...m.namedParameters()].map(([k, t]) => [k, [...t.shape]]));
    for (const cfg of [llama, qwen, { ...llama, qkvBias: true, oBias: true, mlpBias: true }, { ...llama, tieWordEmbeddings: true }]) {
      assert.deepEqual(causalLMParameterShapes(cfg), shapesOf(new CausalLM(cfg)));
    }
    const seq = new SequenceClassifier(llama, { numLabels: 3 });
    assert.deepEqual(withPrefix(decoderParameterShapes(llama), "model.", [["score.weight", [3, 64]]]), shapesOf(seq));
    const tok = new TokenClassifier(qwen, { numLabels: 2 });
    assert.deepEqual(
      withPrefix(decoderParameterShapes(qwen), "model.", [
        ["score.weight", [2, 64]],
        ["score.bias", [2]],
      ]),
      shapesOf(tok),
    );
  });
});

describe("tokenizer.json is checked before the tokenizer library sees it", () => {
  const TOK = path.join(FIXTURES, "tokenizer");
  function tokWith(edit: (tj: Record<string, unknown>) => void): string {
    const dir = tmp();
    const tj = JSON.parse(fs.readFileSync(path.join(TOK, "tokenizer.json"), "utf8"));
    edit(tj);
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tj));
    fs.copyFileSync(path.join(TOK, "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
    return dir;
  }

  test("a vocab id of 1e9 is refused in milliseconds (it took 32 s), naming the file", async () => {
    const dir = tokWith((tj) => {
      (tj.model as { vocab: Record<string, number> }).vocab.a = 1e9;
    });
    await rejectsFast(
      () => loadTokenizer(dir),
      /tokenizer\.json model\.vocab\["a"\] is 1000000000, expected a token id in \[0, 4194304\)/,
      500,
    );
  });

  test("ids that are not integers, and malformed added tokens and merges, are refused", () => {
    const cases: [(tj: Record<string, unknown>) => void, RegExp][] = [
      [(tj) => ((tj.model as { vocab: Record<string, unknown> }).vocab.a = 1.5), /model\.vocab\["a"\] is 1\.5/],
      [(tj) => ((tj.model as { vocab: Record<string, unknown> }).vocab.a = "-0"), /model\.vocab\["a"\] is "-0"/],
      [(tj) => ((tj.added_tokens as { id: unknown }[])[1].id = 1e308), /added_tokens\[1\] is .*expected \{id: a token id/],
      [(tj) => ((tj.added_tokens as { id: unknown }[])[1].id = true), /added_tokens\[1\]/],
      [(tj) => ((tj.model as { merges: unknown[] }).merges[3] = 7), /model\.merges\[3\] is 7/],
      [(tj) => ((tj.model as { type: unknown }).type = "Nope"), /model\.type "Nope" is not supported/],
    ];
    for (const [edit, re] of cases) {
      const dir = tokWith(edit);
      assert.throws(
        () => loadTokenizer(dir),
        (e: Error) => e.name === "TokenizerError" && re.test(e.message) && e.message.includes(dir),
      );
    }
  });
});

describe("chat templates render in a bounded interpreter", () => {
  const msgs = [{ role: "user", content: "hi\nthere" }];
  test("unbounded loops, recursion and huge output end with an error, not a hang or an abort", () => {
    const t0 = performance.now();
    for (const [tmpl, re] of [
      ["{% for i in range(1000000000) %}x{% endfor %}", /range\(\) of 1000000000 items \(limit 100000\)/],
      ["{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", /render failed/],
      ["{{ raise_exception('no system role') }}", /the template raised: no system role/],
      ["{% for m in messages %}", /cannot parse/],
      [`${"{% if true %}".repeat(3)}x`, /cannot parse/],
      ["{{ messages[0].content | indent(40000000) }}", /rendering built a string of \d+ characters/],
    ] as const) {
      assert.throws(() => renderBounded(tmpl, { messages: msgs }), re);
    }
    assert.ok(performance.now() - t0 < 2000);
    assert.throws(() => renderBounded("x".repeat(TEMPLATE_LIMITS.MAX_TEMPLATE_CHARS + 1), {}), /characters \(limit/);
  });

  test("nested loops stop at the time budget", () => {
    const t0 = performance.now();
    assert.throws(
      () => renderBounded("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", {}),
      /rendering took more than (3 s|\d+ steps)/,
    );
    assert.ok(performance.now() - t0 < TEMPLATE_LIMITS.MAX_RENDER_MS + 2000);
  });

  test("real templates still render exactly (globals as transformers passes them)", () => {
    const out = renderBounded(
      "{% for m in messages %}{{ m.role | upper }}:{{ m.content }}{% if not loop.last %}|{% endif %}{% endfor %}{{ range(3) | join(',') }}{{ none is none }}",
      { messages: [...msgs, { role: "assistant", content: "yo" }] },
    );
    assert.equal(out, "USER:hi\nthere|ASSISTANT:yo0,1,2true");
  });
});

describe("other inputs", () => {
  test("safetensors: a header value nested 100000 deep is a SafetensorsError naming the file", () => {
    const dir = tmp();
    const file = path.join(dir, "model.safetensors");
    const header = Buffer.from(`{"w":{"dtype":"F32","shape":[1],"data_offsets":${"[".repeat(100000)}0${"]".repeat(100000)}}}`);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(file, Buffer.concat([len, header, Buffer.alloc(4)]));
    assert.throws(
      () => readSafetensors(file),
      (e: Error) => e.name === "SafetensorsError" && e.message.includes(file) && /data_offsets \[\.\.\.\]/.test(e.message),
    );
  });

  test("a LoRA adapter whose config says r = 1e9 is refused before any adapter matrix is allocated", async () => {
    const dir = tmp();
    const base = await loadCausalLM(LLAMA);
    saveLoraAdapter(applyLora(await loadCausalLM(LLAMA), { r: 2 }), dir);
    const cfgFile = path.join(dir, "adapter_config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, r: 1e9 }));
    assert.throws(() => loadLoraAdapter(base, dir), /does not have rank r = 1000000000/);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, target_modules: "(" }));
    assert.throws(
      () => loadLoraAdapter(base, dir),
      (e: Error) => e.name === "LoraError" && e.message.includes(cfgFile) && /not a valid regex/.test(e.message),
    );
  });

  test("JSONL: invalid UTF-8 is an error naming the line (never a silent U+FFFD), read whole or streamed", async () => {
    const file = path.join(tmp(), "d.jsonl");
    fs.writeFileSync(
      file,
      Buffer.concat([Buffer.from('{"text":"a"}\n{"text":"b"}\n{"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
    );
    const named = (e: Error) => e.name === "DatasetError" && e.message === `${file}:3: invalid UTF-8`;
    assert.throws(() => readJsonl(file), named);
    await assert.rejects(async () => {
      for await (const _ of streamJsonl(file));
    }, named);
  });

  test("trainer config files: oversized or not UTF-8 are ConfigErrors naming the file", () => {
    const dir = tmp();
    const big = path.join(dir, "big.yaml");
    fs.writeFileSync(big, `reward_weights: [${"1,".repeat(200_000)}1]\n`);
    assert.throws(() => readConfigFile(big), new RegExp(`\\[config\\] ${big}: \\d+ bytes is more than a config file may hold`));
    const bad = path.join(dir, "bad.json");
    fs.writeFileSync(bad, Buffer.from([0x7b, 0xff, 0x7d]));
    assert.throws(() => readConfigFile(bad), new RegExp(`\\[config\\] ${bad}: not valid UTF-8`));
  });
});
