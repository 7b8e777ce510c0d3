// Did-you-mean for unknown flags and config keys: the same name in kebab-case (TRL's snake_case and camelCase
// spellings: `--per_device_train_batch_size` → `--per-device-train-batch-size`), other names of our concepts
// (TRL's `--output_dir` → `--output`, older Nexus `--policy` → `--model`), a command's own hints, what to do instead
// of a TRL argument Nexus does not have (`--bf16` → `--precision bf16`), then the closest known name.

import { camelCase, kebabCase } from "./fields.js";

/** Other names (camelCase) of Nexus options: TRL / transformers / vLLM arguments, and earlier Nexus flags. */
export const OTHER_NAMES: Readonly<Record<string, string>> = Object.freeze({
  modelNameOrPath: "model",
  outputDir: "output",
  datasetName: "data",
  datasetPath: "data",
  trainFile: "data",
  evalDataset: "evalData",
  validationFile: "evalData",
  resumeFromCheckpoint: "resume",
  responseLength: "maxCompletionLength",
  maxNewTokens: "maxCompletionLength",
  maxTokens: "maxCompletionLength",
  maxCompletionTokens: "maxCompletionLength",
  maxStepTokens: "maxStepLength",
  separator: "stepSeparator",
  policy: "model",
  policyModel: "model",
  prm: "prmModel",
  prmPath: "prmModel",
  orm: "rewardModel",
  rewardModelPath: "rewardModel",
  rewardModelNameOrPath: "rewardModel",
  teacherModelNameOrPath: "teacher",
  teacherModel: "teacher",
  lr: "learningRate",
  batchSize: "perDeviceTrainBatchSize",
  trainBatchSize: "perDeviceTrainBatchSize",
  perDeviceBatchSize: "perDeviceTrainBatchSize",
  epochs: "numTrainEpochs",
  numEpochs: "numTrainEpochs",
  gradAccum: "gradientAccumulationSteps",
  numSamples: "numGenerations",
  numReturnSequences: "numGenerations",
  evalFile: "evalData",
  testFile: "evalData",
});

/**
 * TRL / transformers arguments that Nexus spells another way or does not have, with what to do instead; said when
 * the command has no option of that name (a command's own hints come first).
 */
export const TRL_NOTES: Readonly<Record<string, string>> = Object.freeze({
  bf16: "Nexus spells it --precision bf16",
  fp16: "Nexus has no fp16; use --precision bf16 (on cuda)",
  tf32: "on cuda, --precision fp32 multiplies in TF32 unless NEXUS_STRICT_FP32=1",
  gradientCheckpointing: "Nexus has no gradient checkpointing; lower --per-device-train-batch-size and raise --gradient-accumulation-steps",
  reportTo: "Nexus logs to <output>/metrics.jsonl, one JSON object per logged step",
  pushToHub: "Nexus writes the model to --output in Hugging Face layout; upload that folder yourself",
  useVllm: "point --generator-url at a vLLM server, or any OpenAI-compatible one",
  evalStrategy: "Nexus evaluates every --eval-steps N steps and at the end; 0: only at the end",
  saveStrategy: "Nexus checkpoints every --save-steps N steps and at the end; 0: only at the end",
  loggingStrategy: "Nexus logs every --logging-steps N steps",
  deepspeed: "Nexus trains on one device; see the data-parallel hook (setGradientSync) in the README",
  fsdp: "Nexus trains on one device; see the data-parallel hook (setGradientSync) in the README",
});

export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** The known name closest to `name` (case-insensitive), if close enough to be a typo. */
export function closest(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

/**
 * The known field (camelCase) that an unknown name (any spelling, without dashes) most likely means, or a
 * sentence from `hints` when the command has something to say about it; null when nothing is close.
 */
export function suggestField(
  name: string,
  known: ReadonlySet<string>,
  hints: Readonly<Record<string, string>> = {},
): { field: string } | { hint: string } | null {
  const camel = camelCase(name);
  const hint = hints[camel];
  if (hint !== undefined) return known.has(hint) ? { field: hint } : { hint };
  if (known.has(camel)) return { field: camel };
  const other = OTHER_NAMES[camel];
  if (other !== undefined && known.has(other)) return { field: other };
  const note = TRL_NOTES[camel];
  if (note !== undefined) return { hint: note };
  const near = closest(camel, known);
  return near === null ? null : { field: near };
}

/** ` (did you mean --x?)` for an unknown flag, or "". */
export function flagSuggestion(flag: string, known: ReadonlySet<string>, hints: Readonly<Record<string, string>> = {}): string {
  const bare = flag.replace(/^-+/, "").replace(/^no-/, "");
  const s = suggestField(bare, known, hints);
  if (s === null) return "";
  if ("hint" in s) return ` (${s.hint})`;
  return ` (did you mean --${kebabCase(s.field)}?)`;
}

/** ` (did you mean 'x'?)` for an unknown config-file key, spelled in the key's own style (snake or camel). */
export function keySuggestion(key: string, known: ReadonlySet<string>, hints: Readonly<Record<string, string>> = {}): string {
  const s = suggestField(key, known, hints);
  if (s === null) return "";
  if ("hint" in s) return ` (${s.hint})`;
  const spelled = key.includes("_") ? kebabCase(s.field).replace(/-/g, "_") : key.includes("-") ? kebabCase(s.field) : s.field;
  return ` (did you mean '${spelled}'?)`;
}
