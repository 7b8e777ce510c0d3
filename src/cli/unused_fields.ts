// Online config fields (ONLINE_FIELDS) that a family of trainer commands does not use, with the reason the CLI
// gives when one is named (TrainCommandSpec.unused): the reward fields of trainers without a reward (SPIN, GKD),
// the rollout-correction fields of trainers whose loss takes no importance weights (SPIN, GKD, online DPO).
// Not here: which command uses which (each command's file), how they are left out (train_command.ts).

/** The reward fields, for a trainer that scores nothing. */
export function unscoredFields(trainer: string): Record<string, string> {
  const why = `${trainer} has no reward`;
  return {
    rewardWeights: why,
    missingEosPenalty: why,
    dynamicSampling: `dynamic sampling compares rewards; ${why}`,
    dynamicSamplingMaxRounds: `dynamic sampling compares rewards; ${why}`,
  };
}

/** The rollout/training importance-sampling fields, for a trainer whose loss takes no correction weights. */
export function uncorrectedFields(trainer: string): Record<string, string> {
  const why = `${trainer}'s loss takes no rollout-correction weights`;
  return { importanceSamplingCorrection: why, importanceSamplingCap: why, importanceSamplingFloor: why };
}
