// The generation layer's public surface: token choice (sampling.ts) and batched KV-cache generation (generate.ts).
// Remote generation through an OpenAI-compatible endpoint and the local/remote `makeGenerator` are in remote.ts.

export * from "./generate.js";
export * from "./remote.js";
export * from "./sampling.js";
