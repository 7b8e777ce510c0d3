// Test-time search over solution steps: best-of-N and votes, PRM-guided beam and lookahead search, MCTS.
// The model-backed StepGenerator is src/rewards/labels/model_generator.ts. Not here: the scorers (src/rewards/scoring.ts), evaluation metrics (src/eval/).

export * from "./beam.js";
export * from "./best_of_n.js";
export * from "./common.js";
export * from "./lookahead.js";
export * from "./mcts.js";
