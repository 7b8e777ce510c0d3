// AgentPRM (Choudhury 2502.10325) at small scale: text environments, policies and trajectories, Monte Carlo step
// targets, tabular and model PRMs trained on them, and PRM-guided best-of-N acting; and the token-level
// multi-turn Environment contract of the online trainers with its built-ins (calculator, grid).

export * from "./calculator.js";
export * from "./env.js";
export * from "./environment.js";
export * from "./grid_environment.js";
export * from "./improve.js";
export * from "./mc_targets.js";
export * from "./prm.js";
export * from "./trajectories.js";
