// The HF Llama / Qwen2 decoder backbone (`LlamaModel` / `Qwen2Model`): token embedding, L pre-norm blocks
// of grouped-query self-attention with RoPE and a SwiGLU MLP, and a final RMSNorm. Parameter names match
// HF's state dict below the `model.` prefix. Heads (LM, scalar, step classifier) sit on top, elsewhere.
// Not here: dropout (Nexus trains without it), sliding-window attention, the LM head (causal_lm.ts).

import type { ModelConfig } from "../io/hf_config.js";
import { Embedding, type InitOptions, Linear, linearMany, RMSNorm } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { add, attention, cast, concat, permute, reshape, rope, shapeStr, swiglu, Tensor, TensorError } from "../tensor/index.js";
import { type AttendingKVCache, cacheLength, GrowableKVCache, isAttendingCache, type KVCache } from "./kv_cache.js";
import { defaultPositionIds, ropeCosSin } from "./rope.js";

export class Attention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  private readonly h: number;
  private readonly hkv: number;
  private readonly dh: number;

  constructor(cfg: ModelConfig, init: InitOptions) {
    super();
    const { hiddenSize: d, numAttentionHeads: h, numKeyValueHeads: hkv, headDim: dh } = cfg;
    this.h = h;
    this.hkv = hkv;
    this.dh = dh;
    this.qProj = this.registerModule("q_proj", new Linear(d, h * dh, { ...init, bias: cfg.qkvBias }));
    this.kProj = this.registerModule("k_proj", new Linear(d, hkv * dh, { ...init, bias: cfg.qkvBias }));
    this.vProj = this.registerModule("v_proj", new Linear(d, hkv * dh, { ...init, bias: cfg.qkvBias }));
    this.oProj = this.registerModule("o_proj", new Linear(h * dh, d, { ...init, bias: cfg.oBias }));
  }

  /** x [B, T, D] → [B, T, D]; appends this layer's keys/values to the cache when given. */
  forward(x: Tensor, cos: Tensor, sin: Tensor, keyMask: Tensor | null, cache: KVCache | AttendingKVCache | null, layer: number): Tensor {
    const [b, t] = x.shape;
    if (isAttendingCache(cache)) {
      // packed tokens (B = 1): token-major heads need no permute; (N, n*Dh) -> (N, n, 1, Dh), cos/sin (1, N, Dh/2) -> (N, 1, Dh/2)
      const c = reshape(cos, [t, 1, this.dh / 2]);
      const s = reshape(sin, [t, 1, this.dh / 2]);
      const [xq, xk, xv] = linearMany(x, [this.qProj, this.kProj, this.vProj]); // one packed GEMM in the engine
      const q = rope(reshape(xq, [t, this.h, 1, this.dh]), c, s);
      const k = rope(reshape(xk, [t, this.hkv, 1, this.dh]), c, s);
      const v = reshape(xv, [t, this.hkv, 1, this.dh]);
      return this.oProj.forward(reshape(cache.attend(layer, q, k, v), [1, t, this.h * this.dh])); // (N, H, Dh) -> (1, N, H*Dh)
    }
    // (B, T, n*Dh) -> (B, n, T, Dh); for T = 1 both layouts are the same memory, so a reshape (a view) does
    const heads = (y: Tensor, n: number) =>
      t === 1 ? reshape(y, [b, n, 1, this.dh]) : permute(reshape(y, [b, t, n, this.dh]), [0, 2, 1, 3]);
    const q = rope(heads(this.qProj.forward(x), this.h), cos, sin);
    let k = rope(heads(this.kProj.forward(x), this.hkv), cos, sin);
    let v = heads(this.vProj.forward(x), this.hkv);
    let keyLength: number | undefined;
    if (cache instanceof GrowableKVCache) {
      ({ k, v, length: keyLength } = cache.append(layer, k, v)); // storage (B, Hkv, capacity, Dh), S_past + T valid
    } else if (cache !== null) {
      const pk = cache.k[layer];
      const pv = cache.v[layer];
      if (pk !== undefined && pv !== undefined) {
        k = concat([pk, k], 2); // (B, Hkv, S_past + T, Dh)
        v = concat([pv, v], 2);
      }
      cache.k[layer] = k;
      cache.v[layer] = v;
    }
    const a = attention(q, k, v, { causal: true, keyMask, keyLength }); // (B, H, T, Dh)
    // (B, H, T, Dh) -> (B, T, H*Dh)
    const merged = t === 1 ? reshape(a, [b, t, this.h * this.dh]) : reshape(permute(a, [0, 2, 1, 3]), [b, t, this.h * this.dh]);
    return this.oProj.forward(merged);
  }
}

export class MLP extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(cfg: ModelConfig, init: InitOptions) {
    super();
    const { hiddenSize: d, intermediateSize: f, mlpBias: bias } = cfg;
    this.gateProj = this.registerModule("gate_proj", new Linear(d, f, { ...init, bias }));
    this.upProj = this.registerModule("up_proj", new Linear(d, f, { ...init, bias }));
    this.downProj = this.registerModule("down_proj", new Linear(f, d, { ...init, bias }));
  }

  forward(x: Tensor): Tensor {
    const [gate, up] = linearMany(x, [this.gateProj, this.upProj]);
    return this.downProj.forward(swiglu(gate, up));
  }
}

export class DecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: Attention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: MLP;

  constructor(cfg: ModelConfig, init: InitOptions) {
    super();
    // registration order = HF's module order = the order init draws from the rng
    this.selfAttn = this.registerModule("self_attn", new Attention(cfg, init));
    this.mlp = this.registerModule("mlp", new MLP(cfg, init));
    this.inputLayernorm = this.registerModule("input_layernorm", new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
    this.postAttentionLayernorm = this.registerModule("post_attention_layernorm", new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
  }

  forward(h: Tensor, cos: Tensor, sin: Tensor, keyMask: Tensor | null, cache: KVCache | AttendingKVCache | null, layer: number): Tensor {
    h = add(h, this.selfAttn.forward(this.inputLayernorm.forward(h), cos, sin, keyMask, cache, layer));
    return add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

export interface DecoderInputs {
  /** Token ids [B, T] (i32). */
  inputIds: Tensor;
  /** [B, S] with 1 for real tokens, 0 for padding; S = cached + new tokens. Omitted: all real. */
  attentionMask?: Tensor | null;
  /** [B, T] (i32). Omitted: cumsum(mask) - 1 clamped at 0, or past + arange(T) without a mask. */
  positionIds?: Tensor | null;
  /** Keys/values of earlier tokens; extended in place with this call's. An AttendingKVCache needs B = 1 (packed tokens) and positionIds. */
  kvCache?: KVCache | AttendingKVCache | null;
}

/** embed_tokens → layers → norm; returns the final (normed) hidden states [B, T, D]. */
export class DecoderModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;

  constructor(
    readonly config: ModelConfig,
    init: InitOptions,
  ) {
    super();
    this.embedTokens = this.registerModule("embed_tokens", new Embedding(config.vocabSize, config.hiddenSize, init));
    this.layers = this.registerModule("layers", new ModuleList<DecoderLayer>());
    for (let l = 0; l < config.numHiddenLayers; l++) this.layers.push(new DecoderLayer(config, init));
    this.norm = this.registerModule("norm", new RMSNorm(config.hiddenSize, config.rmsNormEps));
  }

  forward(inputs: DecoderInputs): Tensor {
    const { inputIds: ids } = inputs;
    for (const [name, t] of [
      ["inputIds", ids],
      ["attentionMask", inputs.attentionMask],
    ] as const) {
      if (t !== undefined && t !== null && !(t instanceof Tensor)) {
        throw new TensorError(
          `[CausalLM] ${name} must be an i32 Tensor [B, T], e.g. tensor([tok.encode(text)], { dtype: "i32" }); got ${Array.isArray(t) ? "an array" : typeof t}`,
        );
      }
    }
    const mask = inputs.attentionMask ?? null;
    const cache = inputs.kvCache ?? null;
    if (ids.dtype !== "i32" || ids.ndim !== 2)
      throw new TensorError(`[CausalLM] inputIds must be i32 [B, T], got ${ids.dtype} ${shapeStr(ids.shape)}`);
    const [b, t] = ids.shape;
    if (isAttendingCache(cache) && (b !== 1 || !inputs.positionIds || mask !== null)) {
      throw new TensorError("[CausalLM] a paged (attending) cache takes packed tokens: inputIds [1, N], positionIds, no attentionMask");
    }
    const past = cacheLength(cache);
    let positions: Int32Array;
    if (inputs.positionIds) {
      const p = inputs.positionIds;
      if (p.dtype !== "i32" || p.shape[0] !== b || p.shape[1] !== t || p.ndim !== 2) {
        throw new TensorError(`[CausalLM] positionIds must be i32 [${b}, ${t}], got ${p.dtype} ${shapeStr(p.shape)}`);
      }
      positions = p.hostData() as Int32Array;
    } else {
      positions = defaultPositionIds(b, t, past, mask);
    }
    let keyMask: Tensor | null = null;
    if (mask !== null) {
      if (mask.ndim !== 2 || mask.shape[0] !== b || mask.shape[1] !== past + t) {
        throw new TensorError(`[CausalLM] attentionMask ${shapeStr(mask.shape)} must be [${b}, ${past + t}] (cached + new tokens)`);
      }
      keyMask = mask.dtype === "f32" ? mask : cast(mask, "f32");
    }
    const { cos, sin } = ropeCosSin(this.config, positions, b, t);
    let h = this.embedTokens.forward(ids); // (B, T, D)
    this.layers.items.forEach((layer, l) => {
      h = layer.forward(h, cos, sin, keyMask, cache, l);
    });
    return this.norm.forward(h);
  }
}
