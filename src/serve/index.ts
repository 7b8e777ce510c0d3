// `nexus serve` as a library: startServer (HTTP, server.ts), the batching / LoRA engine (engine.ts) and
// request parsing (protocol.ts). Not here: the OpenAI-compatible client (src/generate/remote.ts).

export * from "./engine.js";
export * from "./protocol.js";
export * from "./server.js";
