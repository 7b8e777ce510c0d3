// Training: the shared loop, checkpoints, and one trainer per method (config schema + train function).
export * from "./checkpoint.js";
export * from "./config.js";
export * from "./cpo.js";
export * from "./dpo.js";
export * from "./grad_sync.js";
export * from "./kto.js";
export * from "./loop.js";
export * from "./metrics.js";
export * from "./online_dpo.js";
export * from "./online_policy.js";
export * from "./orpo.js";
export * from "./ppo.js";
export * from "./prm_trainer.js";
export * from "./reward_trainer.js";
export * from "./sft.js";
export * from "./spin.js";
