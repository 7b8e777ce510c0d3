// The generation layer's public surface: token choice (sampling.ts), the rollout engine (engine.ts: paged KV cache,
// continuous batching, prefix sharing) and generate() on it, and remote generation through an OpenAI-compatible
// endpoint with the local/remote `makeGenerator` (remote.ts).

export * from "./block_allocator.js";
export * from "./engine.js";
export * from "./generate.js";
export * from "./paged_cache.js";
export * from "./remote.js";
export * from "./sampling.js";
export * from "./scheduler.js";
export * from "./stop.js";
export * from "./types.js";
