// The parameter shapes a config implies, computed without allocating, and the two checks every loader runs
// before it builds a model: the shapes fit this machine (no tensor above the typed-array limit, the whole
// model within memory), and they equal the checkpoint's header shapes (a config.json claiming 100000 layers
// is an error naming the file, never a 2 GB allocation). Names follow HF's state dict; test/io_limits.test.ts
// checks them against the real modules. Not here: reading tensor data (io/sharded.ts), building modules.

import { constants as bufferConstants } from "node:buffer";
import * as os from "node:os";
import type { ModelConfig } from "../io/hf_config.js";

export class ModelSizeError extends Error {
  override name = "ModelSizeError";
}

export type ShapeMap = Map<string, number[]>;

/** DecoderModel's parameters (keys below HF's `model.` prefix), in registration order. */
export function decoderParameterShapes(cfg: ModelConfig): ShapeMap {
  const { vocabSize: v, hiddenSize: d, intermediateSize: f, numAttentionHeads: h, numKeyValueHeads: hkv, headDim: dh } = cfg;
  const m: ShapeMap = new Map([["embed_tokens.weight", [v, d]]]);
  const linear = (name: string, out: number, inF: number, bias: boolean) => {
    m.set(`${name}.weight`, [out, inF]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const p = `layers.${l}`;
    linear(`${p}.self_attn.q_proj`, h * dh, d, cfg.qkvBias);
    linear(`${p}.self_attn.k_proj`, hkv * dh, d, cfg.qkvBias);
    linear(`${p}.self_attn.v_proj`, hkv * dh, d, cfg.qkvBias);
    linear(`${p}.self_attn.o_proj`, d, h * dh, cfg.oBias);
    linear(`${p}.mlp.gate_proj`, f, d, cfg.mlpBias);
    linear(`${p}.mlp.up_proj`, f, d, cfg.mlpBias);
    linear(`${p}.mlp.down_proj`, d, f, cfg.mlpBias);
    m.set(`${p}.input_layernorm.weight`, [d]);
    m.set(`${p}.post_attention_layernorm.weight`, [d]);
  }
  m.set("norm.weight", [d]);
  return m;
}

/** The same shapes under a prefix (`model.`), plus `extra` entries (a head). */
export function withPrefix(shapes: ShapeMap, prefix: string, extra: [string, number[]][] = []): ShapeMap {
  return new Map([...[...shapes].map(([k, s]): [string, number[]] => [prefix + k, s]), ...extra]);
}

/** CausalLM: `model.*` plus `lm_head.weight` unless the embeddings are tied. */
export function causalLMParameterShapes(cfg: ModelConfig): ShapeMap {
  return withPrefix(
    decoderParameterShapes(cfg),
    "model.",
    cfg.tieWordEmbeddings ? [] : [["lm_head.weight", [cfg.vocabSize, cfg.hiddenSize]]],
  );
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/**
 * Throw unless a model with these float32 parameters can be built here: each tensor within one typed array
 * (4 GiB), all of them within `maxBytes` (default: this machine's total memory). `where` names the config.
 */
export function checkParametersFit(shapes: ShapeMap, where: string, maxBytes = os.totalmem()): void {
  let total = 0;
  for (const [name, s] of shapes) {
    const bytes = numel(s) * 4;
    if (bytes > bufferConstants.MAX_LENGTH) {
      throw new ModelSizeError(
        `[load] ${where}: parameter "${name}" ${JSON.stringify(s)} needs ${gib(bytes)}, above the 4 GiB a tensor can hold`,
      );
    }
    total += bytes;
  }
  if (total > maxBytes) {
    throw new ModelSizeError(
      `[load] ${where}: the model needs ${gib(total)} of float32 parameters, more than this machine's ${gib(maxBytes)} of memory`,
    );
  }
}

/**
 * Throw unless the checkpoint (header shapes by name) holds exactly the parameters the config implies, with
 * the same shapes; `ignore(name)` skips checkpoint entries that are not parameters (rotary buffers, a tied head).
 */
export function checkCheckpointShapes(
  expected: ShapeMap,
  found: ReadonlyMap<string, { shape: readonly number[]; dtype?: string }>,
  where: string,
  ignore: (name: string) => boolean = () => false,
): void {
  const missing = [...expected.keys()].filter((k) => !found.has(k));
  const unexpected = [...found.keys()].filter((k) => !expected.has(k) && !ignore(k));
  if (missing.length > 0 || unexpected.length > 0) {
    const list = (ks: string[]) =>
      `${ks
        .slice(0, 3)
        .map((k) => `"${k.slice(0, 120)}"`)
        .join(", ")}${ks.length > 3 ? ` and ${ks.length - 3} more` : ""}`;
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`config.json implies ${missing.length} parameter(s) the checkpoint lacks: ${list(missing)}`);
    if (unexpected.length > 0) parts.push(`the checkpoint has ${unexpected.length} tensor(s) config.json does not: ${list(unexpected)}`);
    throw new ModelSizeError(`[load] ${where}: ${parts.join("; ")}`);
  }
  for (const [name, s] of expected) {
    const { shape: got, dtype } = found.get(name) as { shape: readonly number[]; dtype?: string };
    if (got.length !== s.length || got.some((x, i) => x !== s[i])) {
      throw new ModelSizeError(
        `[load] ${where}: "${name}" is ${JSON.stringify(got)} in the checkpoint, config.json implies ${JSON.stringify(s)}`,
      );
    }
    if (dtype !== undefined && !FLOAT_DTYPES.has(dtype)) {
      throw new ModelSizeError(`[load] ${where}: "${name}" is stored as ${dtype}; a parameter needs a float dtype (F32, F16, BF16, F64)`);
    }
  }
}
