// Public surface of the rewards layer: the reward-function interface and the rule-based rewards.
// Model-based rewards (ORM, PRM, judges) export from their own files as they land.

export * from "./interfaces.js";
export * from "./rule.js";
export * from "./types.js";
