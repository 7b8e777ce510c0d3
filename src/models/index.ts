// The models layer's public surface: the HF-compatible decoder, the causal LM and its KV cache.
// Not here: generation loops (src/generate/) or training (src/train/).

export * from "./causal_lm.js";
export * from "./decoder.js";
export * from "./heads.js";
export * from "./kv_cache.js";
export * from "./lora.js";
export * from "./rope.js";
export * from "./titans.js";
