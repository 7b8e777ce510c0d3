// Public surface of the rewards layer: the reward-function interface and the rule-based rewards.
// Model-based rewards: PRM/ORM scoring and their RewardFn adapters (reward model, PRM, judge), the generative
// verifier (ThinkPRM), Titans surprise; step labellers.

export * from "./answer.js";
export * from "./interfaces.js";
export * from "./labels/index.js";
export * from "./model_rewards.js";
export * from "./rule.js";
export * from "./scoring.js";
export * from "./surprise.js";
export * from "./types.js";
export * from "./verifier.js";
