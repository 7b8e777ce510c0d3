// Hugging Face `config.json` for the `llama` and `qwen2` model types, as a typed camelCase ModelConfig,
// and back (`toHfConfig`, `formatHfConfigJson`) in the exact key set and JSON formatting transformers 5.17
// writes. Missing keys take transformers' defaults. RoPE: `rope_parameters` (v5) or `rope_theta` +
// `rope_scaling` (v4); types "default" and "llama3" are supported (`ropeInverseFrequencies`), any other is
// an error. Not here: sliding-window attention, quantized checkpoints, other model types.

import * as fs from "node:fs";
import * as path from "node:path";
import { describeValue } from "./describe.js";
import { writeFileAtomic } from "./safetensors.js";

export class HfConfigError extends Error {
  override name = "HfConfigError";
}

export type ModelType = "llama" | "qwen2";

/** RoPE frequency scheme. "llama3" rescales low frequencies (Llama 3.1+). */
export type RopeScaling =
  | { ropeType: "default" }
  | {
      ropeType: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  /** HF `model_type`. */
  modelType: ModelType;
  /** Rows of the embedding (may exceed the tokenizer's size). */
  vocabSize: number;
  /** Model dim D. */
  hiddenSize: number;
  /** MLP inner dim. */
  intermediateSize: number;
  /** Decoder layers L. */
  numHiddenLayers: number;
  /** Query heads H. */
  numAttentionHeads: number;
  /** Key/value heads Hkv (GQA); H must be a multiple. */
  numKeyValueHeads: number;
  /** Per-head dim Dh (default D / H). */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base. */
  ropeTheta: number;
  /** RoPE scaling scheme. */
  rope: RopeScaling;
  /** Longest position the model was configured for. */
  maxPositionEmbeddings: number;
  /** LM head shares the embedding matrix (no `lm_head.weight` stored). */
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (llama: `attention_bias`; qwen2: always). */
  qkvBias: boolean;
  /** Bias on the output projection (llama: `attention_bias`; qwen2: never). */
  oBias: boolean;
  /** Bias on gate/up/down projections (llama `mlp_bias`; qwen2: never). */
  mlpBias: boolean;
  /** MLP activation; only "silu" is supported. */
  hiddenAct: "silu";
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** Storage dtype named by `dtype` (v5) or `torch_dtype` (v4), e.g. "float32", "bfloat16". */
  torchDtype: string | null;
  /** Std of the normal init, used when training from scratch. */
  initializerRange: number;
  /** Attention dropout (kept for round trips; Nexus trains without dropout). */
  attentionDropout: number;
}

/** transformers' defaults when a key is absent (LlamaConfig / Qwen2Config constructors). */
const DEFAULTS = Object.freeze({
  llama: {
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    initializer_range: 0.02,
    bos_token_id: 1 as number | null,
    eos_token_id: 2 as number | null,
  },
  qwen2: {
    vocab_size: 151936,
    hidden_size: 4096,
    intermediate_size: 22016,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    initializer_range: 0.02,
    bos_token_id: null as number | null,
    eos_token_id: null as number | null,
  },
});

/** Keys transformers writes as Python floats (so `10000.0`, `1e-06`). */
const FLOAT_KEYS = new Set([
  "rms_norm_eps",
  "rope_theta",
  "attention_dropout",
  "initializer_range",
  "factor",
  "low_freq_factor",
  "high_freq_factor",
]);

function fail(where: string, msg: string): never {
  throw new HfConfigError(`[hf_config] ${where}: ${msg}`);
}

/**
 * Upper bounds on the sizes config.json may declare, far above any released model (vocab 262k, hidden 16k,
 * 126 layers), checked before anything is allocated from them. What the whole model needs in memory is
 * checked separately, against the checkpoint and the machine (models/param_shapes.ts).
 */
export const CONFIG_LIMITS = Object.freeze({
  vocab_size: 2 ** 24,
  hidden_size: 2 ** 17,
  intermediate_size: 2 ** 20,
  num_hidden_layers: 1024,
  num_attention_heads: 4096,
  num_key_value_heads: 4096,
  head_dim: 8192,
  max_position_embeddings: 2 ** 27,
});

type Raw = Record<string, unknown>;

function num(raw: Raw, key: string, where: string, dflt: number, opts: { int?: boolean; positive?: boolean; max?: number } = {}): number {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) fail(where, `${key} is ${show(v)}, expected a number`);
  if (opts.int && !Number.isInteger(v)) fail(where, `${key} is ${v}, expected an integer`);
  if (opts.positive && !(v > 0)) fail(where, `${key} is ${v}, expected > 0`);
  if (opts.max !== undefined && v > opts.max) fail(where, `${key} is ${v}, above the limit of ${opts.max}`);
  return v;
}

/** A size key: a positive integer up to its CONFIG_LIMITS bound. */
function size(raw: Raw, key: keyof typeof CONFIG_LIMITS, where: string, dflt: number): number {
  return num(raw, key, where, dflt, { int: true, positive: true, max: CONFIG_LIMITS[key] });
}

const show = (v: unknown) => describeValue(v);

function bool(raw: Raw, key: string, where: string, dflt: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") fail(where, `${key} is ${show(v)}, expected true or false`);
  return v;
}

function tokenId(raw: Raw, key: string, where: string, dflt: number | null): number | null {
  if (!Object.hasOwn(raw, key)) return dflt;
  const v = raw[key];
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) fail(where, `${key} is ${show(v)}, expected a token id`);
  return v;
}

function parseRope(raw: Raw, where: string, dfltTheta: number): { ropeTheta: number; rope: RopeScaling } {
  // v5: rope_parameters {rope_theta, rope_type, ...}; v4: rope_theta plus optional rope_scaling {type|rope_type, ...}.
  const params = raw.rope_parameters ?? raw.rope_scaling ?? null;
  if (params !== null && (typeof params !== "object" || Array.isArray(params))) {
    fail(where, `rope_parameters/rope_scaling is ${show(params)}, expected an object`);
  }
  const p = (params ?? {}) as Raw;
  let ropeTheta = num(raw, "rope_theta", where, dfltTheta, { positive: true });
  if (p.rope_theta !== undefined) ropeTheta = num(p, "rope_theta", where, dfltTheta, { positive: true });
  const type = p.rope_type ?? p.type ?? "default";
  if (p.partial_rotary_factor !== undefined && p.partial_rotary_factor !== 1) {
    fail(where, `partial_rotary_factor ${show(p.partial_rotary_factor)} is not supported (only 1)`);
  }
  if (raw.partial_rotary_factor !== undefined && raw.partial_rotary_factor !== 1) {
    fail(where, `partial_rotary_factor ${show(raw.partial_rotary_factor)} is not supported (only 1)`);
  }
  if (type === "default") return { ropeTheta, rope: { ropeType: "default" } };
  if (type === "llama3") {
    const factor = num(p, "factor", where, Number.NaN, { positive: true });
    const lowFreqFactor = num(p, "low_freq_factor", where, Number.NaN, { positive: true });
    const highFreqFactor = num(p, "high_freq_factor", where, Number.NaN, { positive: true });
    const originalMaxPositionEmbeddings = num(p, "original_max_position_embeddings", where, Number.NaN, {
      int: true,
      positive: true,
    });
    for (const [k, v] of Object.entries({ factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings })) {
      if (Number.isNaN(v)) fail(where, `rope type "llama3" needs ${k}`);
    }
    if (!(highFreqFactor > lowFreqFactor)) {
      fail(where, `rope llama3 high_freq_factor (${highFreqFactor}) must exceed low_freq_factor (${lowFreqFactor})`);
    }
    return { ropeTheta, rope: { ropeType: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings } };
  }
  return fail(where, `rope type ${show(type)} is not supported (only "default" and "llama3")`);
}

/** Parse a config.json object. `where` names the file in errors. */
export function parseHfConfig(raw: unknown, where = "config.json"): ModelConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(where, "not a JSON object");
  const r = raw as Raw;
  const modelType = r.model_type;
  if (modelType !== "llama" && modelType !== "qwen2") {
    fail(where, `model_type ${show(modelType)} is not supported (expected "llama" or "qwen2")`);
  }
  if (r.quantization_config !== undefined && r.quantization_config !== null) {
    fail(where, "quantized checkpoints (quantization_config) are not supported");
  }
  const d = DEFAULTS[modelType];
  const hiddenSize = size(r, "hidden_size", where, d.hidden_size);
  const numAttentionHeads = size(r, "num_attention_heads", where, d.num_attention_heads);
  const numKeyValueHeads = size(r, "num_key_value_heads", where, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(where, `num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  }
  const headDimDefault = Math.floor(hiddenSize / numAttentionHeads);
  const headDim = size(r, "head_dim", where, headDimDefault);
  if (headDim % 2 !== 0) fail(where, `head_dim ${headDim} is odd; RoPE rotates pairs of dimensions`);
  const hiddenAct = r.hidden_act ?? "silu";
  if (hiddenAct !== "silu") fail(where, `hidden_act ${show(hiddenAct)} is not supported (only "silu")`);
  if (modelType === "qwen2") {
    if (r.use_sliding_window === true) fail(where, "use_sliding_window: true is not supported");
    const lt = r.layer_types;
    if (Array.isArray(lt) && lt.some((t) => t !== "full_attention")) {
      fail(where, `layer_types ${show(lt)}: only "full_attention" layers are supported`);
    }
  }
  let eosTokenId: number | number[] | null;
  if (Array.isArray(r.eos_token_id)) {
    if (!r.eos_token_id.every((x) => Number.isInteger(x) && x >= 0)) {
      fail(where, `eos_token_id ${show(r.eos_token_id)} is not a list of token ids`);
    }
    eosTokenId = [...(r.eos_token_id as number[])];
  } else {
    eosTokenId = tokenId(r, "eos_token_id", where, d.eos_token_id);
  }
  const dtype = r.dtype ?? r.torch_dtype ?? null;
  if (dtype !== null && typeof dtype !== "string") fail(where, `dtype is ${show(dtype)}, expected a string`);
  const isLlama = modelType === "llama";
  const attentionBias = isLlama ? bool(r, "attention_bias", where, false) : true;
  const vocabSize = size(r, "vocab_size", where, d.vocab_size);
  const cfg: ModelConfig = {
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize: size(r, "intermediate_size", where, d.intermediate_size),
    numHiddenLayers: size(r, "num_hidden_layers", where, d.num_hidden_layers),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: num(r, "rms_norm_eps", where, d.rms_norm_eps, { positive: true }),
    ...parseRope(r, where, d.rope_theta),
    maxPositionEmbeddings: size(r, "max_position_embeddings", where, d.max_position_embeddings),
    tieWordEmbeddings: bool(r, "tie_word_embeddings", where, false),
    qkvBias: attentionBias,
    oBias: isLlama ? attentionBias : false,
    mlpBias: isLlama ? bool(r, "mlp_bias", where, false) : false,
    hiddenAct: "silu",
    bosTokenId: tokenId(r, "bos_token_id", where, d.bos_token_id),
    eosTokenId,
    padTokenId: tokenId(r, "pad_token_id", where, null),
    torchDtype: dtype as string | null,
    initializerRange: num(r, "initializer_range", where, d.initializer_range),
    attentionDropout: num(r, "attention_dropout", where, 0),
  };
  if (!(cfg.initializerRange >= 0)) fail(where, `initializer_range is ${cfg.initializerRange}, expected >= 0`);
  for (const [key, id] of [
    ["bos_token_id", cfg.bosTokenId],
    ["pad_token_id", cfg.padTokenId],
    ...(Array.isArray(cfg.eosTokenId) ? cfg.eosTokenId : [cfg.eosTokenId]).map((e) => ["eos_token_id", e] as const),
  ] as const) {
    if (id !== null && id >= vocabSize) fail(where, `${key} ${id} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  // a theta that underflows or overflows gives infinite or zero frequencies: NaN logits at every position
  const inv = ropeInverseFrequencies(cfg);
  if (!inv.every((x) => Number.isFinite(x))) {
    fail(where, `rope_theta ${cfg.ropeTheta} with head_dim ${headDim} gives non-finite RoPE frequencies`);
  }
  return cfg;
}

/** Read `<dir>/config.json` (or a path to a JSON file). */
export function readHfConfig(dirOrFile: string): ModelConfig {
  const file = dirOrFile.endsWith(".json") ? dirOrFile : path.join(dirOrFile, "config.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf-8");
  } catch (e) {
    return fail(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(file, `not valid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(raw, file);
}

/** The transformers version whose config layout toHfConfig mirrors. */
export const TRANSFORMERS_VERSION = "5.17.0";

/**
 * A config.json object that transformers 5 loads into the same model, with the key set
 * `save_pretrained` writes for LlamaForCausalLM / Qwen2ForCausalLM.
 */
export function toHfConfig(cfg: ModelConfig): Record<string, unknown> {
  if (cfg.modelType === "qwen2" && (!cfg.qkvBias || cfg.oBias || cfg.mlpBias)) {
    fail("toHfConfig", "qwen2 always has q/k/v biases and no o/MLP biases");
  }
  if (cfg.modelType === "llama" && cfg.qkvBias !== cfg.oBias) {
    fail("toHfConfig", "llama's attention_bias sets q/k/v and o biases together");
  }
  const rope: Record<string, unknown> = { rope_theta: cfg.ropeTheta, rope_type: cfg.rope.ropeType };
  if (cfg.rope.ropeType === "llama3") {
    rope.factor = cfg.rope.factor;
    rope.low_freq_factor = cfg.rope.lowFreqFactor;
    rope.high_freq_factor = cfg.rope.highFreqFactor;
    rope.original_max_position_embeddings = cfg.rope.originalMaxPositionEmbeddings;
  }
  const common: Record<string, unknown> = {
    attention_dropout: cfg.attentionDropout,
    bos_token_id: cfg.bosTokenId,
    dtype: cfg.torchDtype,
    eos_token_id: cfg.eosTokenId,
    hidden_act: cfg.hiddenAct,
    hidden_size: cfg.hiddenSize,
    initializer_range: cfg.initializerRange,
    intermediate_size: cfg.intermediateSize,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    model_type: cfg.modelType,
    num_attention_heads: cfg.numAttentionHeads,
    num_hidden_layers: cfg.numHiddenLayers,
    num_key_value_heads: cfg.numKeyValueHeads,
    pad_token_id: cfg.padTokenId,
    rms_norm_eps: cfg.rmsNormEps,
    rope_parameters: rope,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: cfg.vocabSize,
  };
  const out: Record<string, unknown> =
    cfg.modelType === "llama"
      ? {
          ...common,
          architectures: ["LlamaForCausalLM"],
          attention_bias: cfg.qkvBias,
          head_dim: cfg.headDim,
          mlp_bias: cfg.mlpBias,
          pretraining_tp: 1,
        }
      : {
          ...common,
          architectures: ["Qwen2ForCausalLM"],
          layer_types: Array.from({ length: cfg.numHiddenLayers }, () => "full_attention"),
          max_window_layers: 28,
          sliding_window: null,
          use_sliding_window: false,
          // Qwen2Config has no head_dim key; the model reads it when present, so write it only if it differs.
          ...(cfg.headDim !== Math.floor(cfg.hiddenSize / cfg.numAttentionHeads) ? { head_dim: cfg.headDim } : {}),
        };
  return out;
}

/** Python's repr() of a float: shortest round-trip digits, `.0` on integers, exponent form below 1e-4 or from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let s: string;
  if (exp < 0) s = `0.${"0".repeat(-exp - 1)}${digits}`;
  else if (digits.length <= exp + 1) s = `${digits}${"0".repeat(exp + 1 - digits.length)}.0`;
  else s = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  return neg ? `-${s}` : s;
}

/** config.json text exactly as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n". */
export function formatHfConfigJson(obj: Record<string, unknown>): string {
  const emit = (v: unknown, ind: string, key: string | null): string => {
    if (v === null || v === undefined) return "null";
    if (typeof v === "number") return key !== null && FLOAT_KEYS.has(key) ? pythonFloatRepr(v) : JSON.stringify(v);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      const inner = `${ind}  `;
      return `[\n${v.map((x) => inner + emit(x, inner, key)).join(",\n")}\n${ind}]`;
    }
    if (typeof v === "object") {
      const keys = Object.keys(v).sort();
      if (keys.length === 0) return "{}";
      const inner = `${ind}  `;
      const items = keys.map((k) => `${inner}${JSON.stringify(k)}: ${emit((v as Raw)[k], inner, k)}`);
      return `{\n${items.join(",\n")}\n${ind}}`;
    }
    return JSON.stringify(v);
  };
  const text = emit(obj, "", null).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return `${text}\n`;
}

/** Write `<dir>/config.json` atomically. */
export function writeHfConfig(dir: string, cfg: ModelConfig): void {
  fs.mkdirSync(dir, { recursive: true });
  const text = formatHfConfigJson(toHfConfig(cfg));
  writeFileAtomic(path.join(dir, "config.json"), (fd) => fs.writeSync(fd, text));
}

/**
 * RoPE inverse frequencies, Dh/2 of them, as transformers computes them in float32:
 * inv_freq[i] = 1 / theta^(2i/Dh), then the llama3 rescaling when configured.
 */
export function ropeInverseFrequencies(cfg: Pick<ModelConfig, "headDim" | "ropeTheta" | "rope">): Float32Array {
  const half = Math.floor(cfg.headDim / 2);
  const f = Math.fround;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(cfg.ropeTheta ** f((2 * i) / cfg.headDim)));
  if (cfg.rope.ropeType === "default") return inv;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldCtx } = cfg.rope;
  const lowFreqWavelen = oldCtx / lowFreqFactor;
  const highFreqWavelen = oldCtx / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highFreqWavelen) continue; // high frequency: unchanged
    if (wavelen > lowFreqWavelen) {
      inv[i] = f(inv[i] / factor); // low frequency: divided by factor
      continue;
    }
    const smooth = (oldCtx / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    inv[i] = f((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
  }
  return inv;
}
