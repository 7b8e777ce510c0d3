// Package root of nexus-align: the engine (tensors, autograd, backends) and, as they land, nn, models,
// io, losses, trainers and search.

export { availableBackends, type BackendChoice, BackendError, backendName, kernels, setBackend, withBackend } from "./backend/index.js";
export * from "./tensor/index.js";
