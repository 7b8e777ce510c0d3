// Package root of nexus-align: the engine (tensors, autograd, backends), nn, models, io, data, rewards,
// losses, training and generation. Each layer's own index lists what it exports.

// Layers whose names would clash at the root (argmax, Policy, Candidate) are namespaces.
export * as agent from "./agent/index.js";
// the multi-turn environment contract of the online trainers, and its built-ins, also at the root
export {
  calculatorEnvironment,
  type EnvEpisode,
  type Environment,
  type EnvReply,
  type EnvRow,
  type EnvTurn,
  environmentReward,
  evaluateExpression,
  gridEnvironment,
  gridPromptRows,
} from "./agent/index.js";
export { OutOfMemoryError } from "./backend/allocator.js";
export {
  availableBackends,
  type BackendChoice,
  BackendError,
  backendName,
  getPrecision,
  kernels,
  type Precision,
  setBackend,
  setPrecision,
  withBackend,
  withPrecision,
} from "./backend/index.js";
export * from "./data/index.js";
export * as evaluation from "./eval/index.js";
export * from "./generate/index.js";
export * from "./io/index.js";
export * from "./losses/index.js";
export * from "./models/index.js";
export * from "./nn/index.js";
export * as report from "./report/index.js";
export * from "./rewards/index.js";
export * as search from "./search/index.js";
export * as serve from "./serve/index.js";
export * from "./tensor/index.js";
export * from "./train/index.js";
