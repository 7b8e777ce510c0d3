// Heads on the decoder's final hidden states, in HF layouts: `ScalarHead` (`score.weight` [L, D], no bias, as
// `*ForSequenceClassification`: ORM rewards at the last real token, PPO values at every token) and
// `TokenClassificationHead` (`score.weight` + `score.bias`, as `*ForTokenClassification`: PRM step labels read
// at step-end tokens). `SequenceClassifier` / `TokenClassifier` put a head on a backbone (`model.*`) and save
// and load folders transformers opens. Not here: losses (src/losses/), pooling other than the last real token.

import * as fs from "node:fs";
import * as path from "node:path";
import { expectFolderKind } from "../io/folder_kind.js";
import { formatHfConfigJson, type ModelConfig, parseHfConfig, toHfConfig } from "../io/hf_config.js";
import type { WritableTensor } from "../io/safetensors.js";
import { readShardedHeaders, readShardedSafetensors, writeShardedSafetensors } from "../io/sharded.js";
import { Linear } from "../nn/layers.js";
import { Module, type TensorLike } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import { fromArray, indexSelect, reshape, shapeStr, squeeze, type Tensor, TensorError, tensor } from "../tensor/index.js";
import { CausalLM } from "./causal_lm.js";
import { type DecoderInputs, DecoderModel } from "./decoder.js";
import { checkCheckpointShapes, checkParametersFit, decoderParameterShapes, withPrefix } from "./param_shapes.js";

export class HeadError extends Error {
  override name = "HeadError";
}

/**
 * Index of the last real token of each row: the rightmost mask column that is 1 (left or right padding alike;
 * HF finds the rightmost non-pad id, which is the same position). Without a mask, T - 1.
 */
export function lastRealIndex(mask: Tensor | null | undefined, b: number, t: number): Int32Array {
  const out = new Int32Array(b).fill(t - 1);
  if (mask === null || mask === undefined) return out;
  if (mask.ndim !== 2 || mask.shape[0] !== b || mask.shape[1] !== t) {
    throw new HeadError(`[heads] attention mask ${shapeStr(mask.shape)} must be [${b}, ${t}]`);
  }
  const md = mask.hostData();
  for (let r = 0; r < b; r++) {
    let j = t - 1;
    while (j >= 0 && md[r * t + j] === 0) j--;
    if (j < 0) throw new HeadError(`[heads] row ${r} of the attention mask has no real token`);
    out[r] = j;
  }
  return out;
}

/** x [B, T, ...rest] at one position per row → [B, ...rest] (differentiable: an indexSelect on [B*T, ...]). */
export function pickPositions(x: Tensor, positions: ArrayLike<number>): Tensor {
  const [b, t, ...rest] = x.shape;
  if (positions.length !== b) throw new TensorError(`[pickPositions] ${positions.length} positions for ${b} rows`);
  const inner = rest.reduce((p, d) => p * d, 1);
  const flat = reshape(x, [b * t, inner]); // (B, T, ...) -> (B*T, inner)
  const ids = new Int32Array(b);
  for (let r = 0; r < b; r++) {
    const p = positions[r];
    if (!(p >= 0 && p < t)) throw new TensorError(`[pickPositions] position ${p} of row ${r} is outside [0, ${t})`);
    ids[r] = r * t + p;
  }
  return reshape(indexSelect(flat, fromArray(ids, [b])), [b, ...rest]);
}

/** HF's sequence-classification score layer: a bias-free Linear D → numLabels. */
export class ScalarHead extends Linear {
  constructor(hidden: number, numLabels = 1, opts: { rng?: Rng; std?: number } = {}) {
    super(hidden, numLabels, { ...opts, bias: false });
  }

  /** Per-token scores: hidden [B, T, D] → [B, T] for one label, [B, T, L] otherwise. */
  values(hidden: Tensor): Tensor {
    const s = this.forward(hidden); // (B, T, L)
    return this.outFeatures === 1 ? squeeze(s, -1) : s;
  }

  /** Scores at each row's last real token: [B] for one label, [B, L] otherwise. */
  atLastToken(hidden: Tensor, mask: Tensor | null | undefined): Tensor {
    const [b, t] = hidden.shape;
    const picked = pickPositions(hidden, lastRealIndex(mask, b, t)); // (B, D)
    const s = this.forward(picked); // (B, L)
    return this.outFeatures === 1 ? reshape(s, [b]) : s;
  }
}

/** HF's token-classification score layer: a Linear D → numLabels with bias (PRMs: 2 labels, read at step ends). */
export class TokenClassificationHead extends Linear {
  constructor(hidden: number, numLabels = 2, opts: { rng?: Rng; std?: number } = {}) {
    super(hidden, numLabels, { ...opts, bias: true });
  }

  /**
   * Logits at chosen positions: hidden [B, T, D], positions[r] = the token indices to read in row r
   * (e.g. step-end tokens) → [N, L] with N = total positions, rows in order.
   */
  logitsAt(hidden: Tensor, positions: readonly (readonly number[])[]): Tensor {
    const [b, t, d] = hidden.shape;
    if (positions.length !== b) throw new HeadError(`[TokenClassificationHead] ${positions.length} position lists for ${b} rows`);
    const ids: number[] = [];
    positions.forEach((ps, r) => {
      for (const p of ps) {
        if (!Number.isInteger(p) || p < 0 || p >= t)
          throw new HeadError(`[TokenClassificationHead] position ${p} of row ${r} is outside [0, ${t})`);
        ids.push(r * t + p);
      }
    });
    const picked = indexSelect(reshape(hidden, [b * t, d]), tensor(ids, { dtype: "i32" })); // (N, D)
    return this.forward(picked); // (N, L)
  }
}

export type ClassifierKind = "sequence" | "token";

const ARCHITECTURES = Object.freeze({
  llama: { sequence: "LlamaForSequenceClassification", token: "LlamaForTokenClassification" },
  qwen2: { sequence: "Qwen2ForSequenceClassification", token: "Qwen2ForTokenClassification" },
} satisfies Record<ModelConfig["modelType"], Record<ClassifierKind, string>>);

export interface ClassifierOptions {
  /** Labels of the score layer. Default 1 (sequence) or 2 (token). */
  numLabels?: number;
  /** Initialise the weights (backbone and score) from this generator; omitted: zeros, to be loaded. */
  rng?: Rng;
}

/** A decoder backbone (`model.*`) with a `score` head: the shared part of both HF classifier layouts. */
abstract class DecoderClassifier<H extends Linear> extends Module {
  abstract readonly kind: ClassifierKind;
  readonly model: DecoderModel;
  readonly score: H;

  constructor(
    readonly config: ModelConfig,
    readonly numLabels: number,
    makeHead: (d: number, l: number, init: { rng?: Rng; std: number }) => H,
    rng?: Rng,
  ) {
    super();
    if (!Number.isInteger(numLabels) || numLabels < 1) throw new HeadError(`[heads] numLabels must be an integer >= 1, got ${numLabels}`);
    const init = { rng, std: config.initializerRange };
    this.model = this.registerModule("model", new DecoderModel(config, init));
    this.score = this.registerModule("score", makeHead(config.hiddenSize, numLabels, init));
  }

  /** Final hidden states [B, T, D]. */
  hidden(inputs: DecoderInputs): Tensor {
    return this.model.forward(inputs);
  }

  /** Per-token logits of the score layer [B, T, L] (every position, padding included). */
  tokenLogits(inputs: DecoderInputs): Tensor {
    return this.score.forward(this.model.forward(inputs));
  }
}

/** HF `*ForSequenceClassification`: ORM / reward model (num_labels 1) and PPO value model. */
export class SequenceClassifier extends DecoderClassifier<ScalarHead> {
  readonly kind = "sequence" as const;

  constructor(config: ModelConfig, opts: ClassifierOptions = {}) {
    super(config, opts.numLabels ?? 1, (d, l, init) => new ScalarHead(d, l, init), opts.rng);
  }

  /** Logits at each row's last real token [B, L] (HF's pooled logits). */
  forward(inputs: DecoderInputs): Tensor {
    const h = this.model.forward(inputs);
    const [b, t] = h.shape;
    return this.score.forward(pickPositions(h, lastRealIndex(inputs.attentionMask, b, t))); // (B, D) -> (B, L)
  }

  /** One scalar per row at its last real token [B] (needs num_labels 1). */
  rewards(inputs: DecoderInputs): Tensor {
    this.needScalar("rewards");
    return this.score.atLastToken(this.model.forward(inputs), inputs.attentionMask);
  }

  /** One scalar per token [B, T] (a PPO value model; needs num_labels 1). */
  values(inputs: DecoderInputs): Tensor {
    this.needScalar("values");
    return this.score.values(this.model.forward(inputs));
  }

  private needScalar(op: string): void {
    if (this.numLabels !== 1) throw new HeadError(`[SequenceClassifier.${op}] needs num_labels 1, this model has ${this.numLabels}`);
  }
}

/** HF `*ForTokenClassification`: a PRM read at step-end tokens. */
export class TokenClassifier extends DecoderClassifier<TokenClassificationHead> {
  readonly kind = "token" as const;

  constructor(config: ModelConfig, opts: ClassifierOptions = {}) {
    super(config, opts.numLabels ?? 2, (d, l, init) => new TokenClassificationHead(d, l, init), opts.rng);
  }

  /** Logits at every token [B, T, L]. */
  forward(inputs: DecoderInputs): Tensor {
    return this.tokenLogits(inputs);
  }

  /** Logits at the given positions of each row → [N, L] (see TokenClassificationHead.logitsAt). */
  logitsAt(inputs: DecoderInputs, positions: readonly (readonly number[])[]): Tensor {
    return this.score.logitsAt(this.model.forward(inputs), positions);
  }
}

export type Classifier = SequenceClassifier | TokenClassifier;

/** A classifier whose backbone is a copy of a causal LM's (the LM head is dropped, the score layer drawn from rng). */
export function classifierFromCausalLM(lm: CausalLM, kind: ClassifierKind, opts: ClassifierOptions & { seed?: number } = {}): Classifier {
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const m = kind === "sequence" ? new SequenceClassifier(lm.config, { ...opts, rng }) : new TokenClassifier(lm.config, { ...opts, rng });
  m.model.loadStateDict(lm.model.stateDict());
  return m;
}

/** config.json for the classifier: the backbone's keys plus architectures, id2label / label2id and pad_token_id. */
export function classifierConfigJson(m: Classifier): Record<string, unknown> {
  const cfg = m.config;
  if (cfg.padTokenId === null && m.kind === "sequence") {
    throw new HeadError("[heads] a sequence classifier needs config.padTokenId (HF refuses batches above 1 without it)");
  }
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  for (let i = 0; i < m.numLabels; i++) {
    id2label[String(i)] = `LABEL_${i}`;
    label2id[`LABEL_${i}`] = i;
  }
  return { ...toHfConfig({ ...cfg, torchDtype: "float32" }), architectures: [ARCHITECTURES[cfg.modelType][m.kind]], id2label, label2id };
}

/** Write config.json and model.safetensors (`model.*`, `score.*`, f32) so transformers' AutoModelFor* loads it. */
export function saveClassifier(m: Classifier, dir: string, opts: { maxShardBytes?: number } = {}): void {
  const text = formatHfConfigJson(classifierConfigJson(m));
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, WritableTensor>();
  for (const [name, t] of m.namedParameters()) tensors.set(name, { dtype: "F32", shape: t.shape, data: Float32Array.from(t.hostData()) });
  writeShardedSafetensors(dir, tensors, { maxShardBytes: opts.maxShardBytes });
  fs.writeFileSync(path.join(dir, "config.json"), text);
}

function kindOfArchitecture(arch: string): ClassifierKind | "lm" | null {
  if (arch.endsWith("ForSequenceClassification")) return "sequence";
  if (arch.endsWith("ForTokenClassification")) return "token";
  if (arch.endsWith("ForCausalLM") || arch.endsWith("Model")) return "lm";
  return null;
}

/**
 * Load a classifier folder. A causal-LM checkpoint also loads (as HF does): its backbone is kept, `lm_head`
 * dropped and the score layer drawn from `rng` / `seed` (default 0). `kind` defaults to the folder's architecture.
 */
export function loadClassifier(
  dir: string,
  opts: { kind?: ClassifierKind; numLabels?: number; rng?: Rng; seed?: number } = {},
): Classifier {
  const file = path.join(dir, "config.json");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf-8")) as Record<string, unknown>;
  } catch (e) {
    throw new HeadError(`[heads] ${file}: cannot read (${(e as Error).message})`);
  }
  const config = parseHfConfig(raw, file);
  const arch = Array.isArray(raw.architectures) && typeof raw.architectures[0] === "string" ? raw.architectures[0] : "";
  const found = kindOfArchitecture(arch);
  const kind = opts.kind ?? (found === "sequence" || found === "token" ? found : null);
  if (kind === null) throw new HeadError(`[heads] ${file}: architecture ${JSON.stringify(arch)} is not a classifier; pass kind`);
  // a causal LM may start a classifier (as in HF); a classifier of the other kind may not
  expectFolderKind(
    dir,
    [kind === "sequence" ? "sequence-classifier" : "token-classifier", "causal-lm"],
    "heads",
    `starting a ${kind} classifier`,
  );
  const fromLm = found === "lm" || found === null;
  const labels = raw.id2label && typeof raw.id2label === "object" ? Object.keys(raw.id2label).length : undefined;
  const numLabels = opts.numLabels ?? (fromLm ? undefined : labels);
  const rng = fromLm ? (opts.rng ?? new Rng(opts.seed ?? 0)) : undefined;
  // shapes against the checkpoint's headers and the machine before any allocation (the score head: fresh when fromLm)
  const labelsN = numLabels ?? (kind === "sequence" ? 1 : 2);
  const d = config.hiddenSize;
  const head: [string, number[]][] = [
    ["score.weight", [labelsN, d]],
    ...(kind === "token" ? [["score.bias", [labelsN]] as [string, number[]]] : []),
  ];
  const backbone = withPrefix(decoderParameterShapes(config), "model.");
  checkParametersFit(new Map([...backbone, ...head]), dir);
  checkCheckpointShapes(
    fromLm ? backbone : new Map([...backbone, ...head]),
    readShardedHeaders(dir),
    dir,
    (name) => name.endsWith(".rotary_emb.inv_freq") || name === "lm_head.weight" || (fromLm && !name.startsWith("model.")),
  );
  const m = kind === "sequence" ? new SequenceClassifier(config, { numLabels, rng }) : new TokenClassifier(config, { numLabels, rng });
  const { tensors } = readShardedSafetensors(dir);
  const state = new Map<string, TensorLike>();
  for (const [name, t] of tensors) {
    if (name.endsWith(".rotary_emb.inv_freq") || name === "lm_head.weight") continue;
    state.set(name, t);
  }
  if (fromLm) m.model.loadStateDict(new Map([...state].filter(([k]) => k.startsWith("model.")).map(([k, t]) => [k.slice(6), t])));
  else m.loadStateDict(state);
  return m;
}

/**
 * What a reward-model trainer is given, as a classifier of `kind` with `numLabels` labels: a folder (loaded; a
 * causal-LM folder gets a fresh head), a causal LM (its backbone copied under a fresh head), or a classifier.
 * `tag` and `role` name the caller in errors ("[prm] the PRM needs num_labels 2, got 1").
 */
export function resolveClassifier(
  model: Classifier | CausalLM | string,
  kind: ClassifierKind,
  opts: { numLabels: number; seed: number; tag: string; role: string },
): Classifier {
  const { numLabels, seed, tag, role } = opts;
  const cls = kind === "token" ? TokenClassifier : SequenceClassifier;
  let m: Classifier;
  if (typeof model === "string") {
    m = loadClassifier(model, { kind, numLabels, seed });
    if (!(m instanceof cls)) throw new Error(`[${tag}] ${model} did not load as a ${kind} classifier`);
  } else if (model instanceof CausalLM) m = classifierFromCausalLM(model, kind, { numLabels, seed });
  else m = model;
  if (m.numLabels !== numLabels) throw new Error(`[${tag}] the ${role} needs num_labels ${numLabels}, got ${m.numLabels}`);
  return m;
}
