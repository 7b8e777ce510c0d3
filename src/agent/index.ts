// AgentPRM (Choudhury 2502.10325) at small scale: text environments, policies and trajectories, Monte Carlo step
// targets, tabular and model PRMs trained on them, and PRM-guided best-of-N acting.

export * from "./env.js";
export * from "./improve.js";
export * from "./mc_targets.js";
export * from "./prm.js";
export * from "./trajectories.js";
