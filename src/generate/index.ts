// The generation layer's public surface: token choice (sampling.ts) and batched KV-cache generation (generate.ts).
// Not here: remote generation through an OpenAI-compatible endpoint (not written yet).

export * from "./generate.js";
export * from "./sampling.js";
