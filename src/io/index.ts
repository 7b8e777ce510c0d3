// The io layer's public surface: safetensors files and sharded checkpoints, HF config.json, tokenizers
// and chat templates. Everything works on plain typed arrays and JSON; nothing here depends on the engine.

export * from "./char_tokenizer.js";
export * from "./chat_encoding.js";
export * from "./folder_kind.js";
export * from "./half.js";
export * from "./hf_config.js";
export * from "./safetensors.js";
export * from "./sharded.js";
export * from "./tokenizer.js";
