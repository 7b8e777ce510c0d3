// Tests of src/io/hf_config.ts: the two transformers 5.17 fixture configs parse to the documented
// architecture and are re-emitted byte for byte; v4-style keys, defaults, RoPE variants and errors.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  formatHfConfigJson,
  HfConfigError,
  type ModelConfig,
  parseHfConfig,
  pythonFloatRepr,
  readHfConfig,
  ropeInverseFrequencies,
  toHfConfig,
  writeHfConfig,
} from "../src/io/index.js";

const HF = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(HF, name, "config.json"), "utf-8"));
}

describe("hf_config: fixtures", () => {
  it("parses llama-tiny", () => {
    const c = readHfConfig(path.join(HF, "llama-tiny"));
    const want: ModelConfig = {
      modelType: "llama",
      vocabSize: 384,
      hiddenSize: 64,
      intermediateSize: 160,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      rope: { ropeType: "default" },
      maxPositionEmbeddings: 256,
      tieWordEmbeddings: false,
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      hiddenAct: "silu",
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: null,
      torchDtype: "float32",
      initializerRange: 0.02,
      attentionDropout: 0,
    };
    assert.deepEqual(c, want);
  });

  it("parses qwen2-tiny (tied, q/k/v bias, no head_dim key)", () => {
    const c = readHfConfig(path.join(HF, "qwen2-tiny", "config.json"));
    assert.equal(c.modelType, "qwen2");
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.qkvBias, true);
    assert.equal(c.oBias, false);
    assert.equal(c.mlpBias, false);
    assert.equal(c.headDim, 16);
    assert.equal(c.numKeyValueHeads, 2);
    assert.equal(c.bosTokenId, null);
    assert.equal(c.eosTokenId, null);
    assert.equal(c.ropeTheta, 10000);
  });

  for (const name of ["llama-tiny", "qwen2-tiny"]) {
    it(`toHfConfig + formatHfConfigJson reproduce ${name}/config.json byte for byte`, () => {
      const text = fs.readFileSync(path.join(HF, name, "config.json"), "utf-8");
      const cfg = parseHfConfig(JSON.parse(text));
      assert.equal(formatHfConfigJson(toHfConfig(cfg)), text);
      assert.deepEqual(toHfConfig(cfg), JSON.parse(text));
      assert.deepEqual(parseHfConfig(toHfConfig(cfg)), cfg);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-cfg-"));
      writeHfConfig(dir, cfg);
      assert.equal(fs.readFileSync(path.join(dir, "config.json"), "utf-8"), text);
      assert.deepEqual(fs.readdirSync(dir), ["config.json"]);
    });
  }
});

describe("hf_config: older layouts and defaults", () => {
  it("reads v4 keys: top-level rope_theta, torch_dtype, eos list, missing head_dim and kv heads", () => {
    const raw = fixture("llama-tiny");
    delete raw.rope_parameters;
    delete raw.head_dim;
    delete raw.num_key_value_heads;
    delete raw.dtype;
    Object.assign(raw, { rope_theta: 500000.0, torch_dtype: "bfloat16", eos_token_id: [2, 7], hidden_size: 96, rope_scaling: null });
    const c = parseHfConfig(raw);
    assert.equal(c.ropeTheta, 500000);
    assert.equal(c.torchDtype, "bfloat16");
    assert.deepEqual(c.eosTokenId, [2, 7]);
    assert.equal(c.numKeyValueHeads, 4);
    assert.equal(c.headDim, 24);
    assert.deepEqual(c.rope, { ropeType: "default" });
  });

  it("takes transformers' defaults for absent keys", () => {
    const l = parseHfConfig({ model_type: "llama" });
    assert.equal(l.vocabSize, 32000);
    assert.equal(l.intermediateSize, 11008);
    assert.equal(l.maxPositionEmbeddings, 2048);
    assert.equal(l.bosTokenId, 1);
    assert.equal(l.eosTokenId, 2);
    assert.equal(l.headDim, 128);
    const q = parseHfConfig({ model_type: "qwen2" });
    assert.equal(q.vocabSize, 151936);
    assert.equal(q.intermediateSize, 22016);
    assert.equal(q.maxPositionEmbeddings, 32768);
    assert.equal(q.tieWordEmbeddings, false);
    assert.equal(q.bosTokenId, null);
  });

  it("llama attention_bias and mlp_bias set every projection's bias", () => {
    const c = parseHfConfig({ ...fixture("llama-tiny"), attention_bias: true, mlp_bias: true });
    assert.deepEqual([c.qkvBias, c.oBias, c.mlpBias], [true, true, true]);
    assert.equal(toHfConfig(c).attention_bias, true);
  });

  it("writes head_dim for qwen2 only when it is not hidden/heads", () => {
    const c = parseHfConfig({ ...fixture("qwen2-tiny"), head_dim: 32 });
    assert.equal(c.headDim, 32);
    assert.equal(toHfConfig(c).head_dim, 32);
    assert.equal(Object.hasOwn(toHfConfig(parseHfConfig(fixture("qwen2-tiny"))), "head_dim"), false);
  });
});

describe("hf_config: RoPE", () => {
  const llama31 = {
    ...fixture("llama-tiny"),
    hidden_size: 4096,
    num_attention_heads: 32,
    head_dim: 128,
    rope_parameters: {
      rope_type: "llama3",
      rope_theta: 500000.0,
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
  };

  it("parses llama3 scaling (v5 rope_parameters and v4 rope_scaling) and round-trips it", () => {
    const c = parseHfConfig(llama31);
    assert.deepEqual(c.rope, { ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    assert.equal(c.ropeTheta, 500000);
    const v4 = {
      ...llama31,
      rope_parameters: undefined,
      rope_theta: 500000.0,
      rope_scaling: { ...llama31.rope_parameters, rope_theta: undefined },
    };
    assert.deepEqual(parseHfConfig(v4), c);
    assert.deepEqual(parseHfConfig(toHfConfig(c)), c);
    assert.match(
      formatHfConfigJson(toHfConfig(c)),
      /"factor": 8\.0,\n {4}"high_freq_factor": 4\.0,\n {4}"low_freq_factor": 1\.0,\n {4}"original_max_position_embeddings": 8192,/,
    );
  });

  it("computes llama3 inverse frequencies (values from an independent float64 Python computation)", () => {
    const inv = ropeInverseFrequencies(parseHfConfig(llama31));
    assert.equal(inv.length, 64);
    const want: [number, number][] = [
      [0, 1.0],
      [10, 0.12868737343265052], // high frequency: unchanged
      [28, 0.0032114459947525913],
      [30, 0.0013718935677611381], // medium: smoothed
      [32, 0.0005248461609929547],
      [40, 3.428102195952591e-5], // low: divided by 8
      [63, 3.068925988914511e-7],
    ];
    for (const [i, v] of want) assert.ok(Math.abs(inv[i] - v) <= 2e-7 * v, `inv_freq[${i}] = ${inv[i]}, want ${v}`);
    const plain = ropeInverseFrequencies({ headDim: 16, ropeTheta: 10000, rope: { ropeType: "default" } });
    assert.deepEqual(
      Array.from(plain),
      Array.from({ length: 8 }, (_, i) => Math.fround(1 / Math.fround(10000 ** (i / 8)))),
    );
  });

  for (const type of ["yarn", "linear", "dynamic", "longrope"]) {
    it(`rejects rope type "${type}", naming it`, () => {
      const raw = { ...fixture("llama-tiny"), rope_parameters: { rope_theta: 10000.0, rope_type: type, factor: 2.0 } };
      assert.throws(
        () => parseHfConfig(raw, "x/config.json"),
        new RegExp(`\\[hf_config\\] x/config.json: rope type "${type}" is not supported`),
      );
      const v4 = { ...fixture("llama-tiny"), rope_parameters: undefined, rope_scaling: { type, factor: 2.0 } };
      assert.throws(() => parseHfConfig(v4), new RegExp(`rope type "${type}"`));
    });
  }
});

describe("hf_config: errors", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["unknown model_type", { model_type: "mistral" }, /model_type "mistral" is not supported \(expected "llama" or "qwen2"\)/],
    ["missing model_type", {}, /model_type undefined is not supported/],
    ["other activation", { ...fixture("llama-tiny"), hidden_act: "gelu" }, /hidden_act "gelu" is not supported/],
    [
      "heads not a multiple of kv heads",
      { ...fixture("llama-tiny"), num_key_value_heads: 3 },
      /num_attention_heads 4 is not a multiple of num_key_value_heads 3/,
    ],
    ["non-integer size", { ...fixture("llama-tiny"), hidden_size: 64.5 }, /hidden_size is 64.5, expected an integer/],
    ["string size", { ...fixture("llama-tiny"), vocab_size: "384" }, /vocab_size is "384", expected a number/],
    ["sliding window", { ...fixture("qwen2-tiny"), use_sliding_window: true }, /use_sliding_window: true is not supported/],
    ["sliding layers", { ...fixture("qwen2-tiny"), layer_types: ["full_attention", "sliding_attention"] }, /only "full_attention" layers/],
    ["quantized", { ...fixture("llama-tiny"), quantization_config: { quant_method: "gptq" } }, /quantized checkpoints/],
    ["partial rotary", { ...fixture("llama-tiny"), partial_rotary_factor: 0.5 }, /partial_rotary_factor 0.5 is not supported/],
    [
      "llama3 missing factor",
      { ...fixture("llama-tiny"), rope_parameters: { rope_type: "llama3", rope_theta: 1e4 } },
      /rope type "llama3" needs factor/,
    ],
    ["bad eos", { ...fixture("llama-tiny"), eos_token_id: "2" }, /eos_token_id is "2", expected a token id/],
  ];
  for (const [what, raw, re] of cases) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => parseHfConfig(raw, "m/config.json"),
        (e: unknown) => e instanceof HfConfigError && e.message.startsWith("[hf_config] m/config.json: ") && re.test(e.message),
      );
    });
  }
  it("names an unreadable file", () => {
    assert.throws(() => readHfConfig("/nonexistent/dir"), /\/nonexistent\/dir\/config.json: cannot read \(ENOENT\)/);
  });
});

describe("pythonFloatRepr", () => {
  it("matches Python's repr", () => {
    const cases: [number, string][] = [
      [1e-6, "1e-06"],
      [1e-5, "1e-05"],
      [1e-4, "0.0001"],
      [10000, "10000.0"],
      [0, "0.0"],
      [-0, "-0.0"],
      [0.02, "0.02"],
      [0.1, "0.1"],
      [2.5e-7, "2.5e-07"],
      [1e16, "1e+16"],
      [1e15, "1000000000000000.0"],
      [123456789012345680, "1.2345678901234568e+17"],
      [5e-324, "5e-324"],
      [-1.5, "-1.5"],
      [500000, "500000.0"],
      [1234.5678, "1234.5678"],
    ];
    for (const [x, s] of cases) assert.equal(pythonFloatRepr(x), s, String(x));
  });
});
