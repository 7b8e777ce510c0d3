// PRM step labelling: Monte Carlo (Math-Shepherd), OmegaPRM binary search, LLM judge, MC/judge consensus, and the
// TRL stepwise output format. Generators: a model-backed one and a synthetic one with a known error rate.

export * from "./consensus.js";
export * from "./format.js";
export * from "./judge.js";
export * from "./mc.js";
export * from "./model_generator.js";
export * from "./omega.js";
export * from "./steps.js";
export * from "./synthetic.js";
