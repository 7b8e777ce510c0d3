// Public surface of the data layer: JSONL I/O with validation, TRL dataset formats, and the synthetic
// verifiable tasks (arithmetic chains, digit sums), collation into padded tensors and row tokenisation.

export * from "./batch.js";
export * from "./formats.js";
export * from "./jsonl.js";
export * from "./row_tokenize.js";
export * from "./tasks/arithmetic.js";
export * from "./tasks/digit_sum.js";
export * from "./tasks/rng.js";
export * from "./tasks/task.js";
