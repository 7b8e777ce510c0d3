// The engine's public surface: Tensor, creation, every op, autograd entry points.
import "./methods.js";

export { backward, grad } from "./autograd.js";
export * from "./composite.js";
export { GRADIENTS, type OpName } from "./gradients.js";
export * from "./memory.js";
export * from "./ops/decode.js";
export * from "./ops/elementwise.js";
export * from "./ops/fused.js";
export * from "./ops/indexing.js";
export * from "./ops/linalg.js";
export * from "./ops/reduce.js";
export * from "./ops/shape.js";
export * from "./tensor.js";
