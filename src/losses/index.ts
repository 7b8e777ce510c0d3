// The alignment losses: preference (DPO family, KTO, ORPO, CPO/SimPO), reward models (Bradley-Terry, PRM),
// RL (GRPO/GSPO/CISPO/SAPO, PPO, advantage estimators, KL estimators, rollout correction) and distillation
// (GKD, reverse KL). Pure functions of log-probs, logits and scores; trainers compute those and call these.

export * from "./advantages.js";
export { LossError } from "./common.js";
export * from "./cpo.js";
export * from "./distill.js";
export * from "./dpo.js";
export * from "./grpo.js";
export * from "./kl.js";
export * from "./kto.js";
export * from "./orpo.js";
export * from "./ppo.js";
export * from "./prm.js";
export * from "./reward.js";
export * from "./rollout_correction.js";
