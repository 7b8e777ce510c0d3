// The CLI's vocabulary in one place. GLOBAL_OPTIONS: flags every command has (add one entry here and every
// `nexus` command shows, parses, validates and applies it). SHARED: the concepts several commands use, defined
// once so that a concept has one flag name and one default everywhere (commands spread the fields they use).

import { z } from "zod";
import { type BackendChoice, type Precision, setBackend, setPrecision } from "../backend/index.js";
import { STEP_AGGREGATIONS, type StepAggregation } from "../rewards/interfaces.js";

/** A flag of every command: its field (name = the key, kebab-cased) and what it does before the command runs. */
export interface GlobalOption {
  field: z.ZodType;
  /** Called before the command's action with the resolved value; `given` is false when it is the default. */
  apply: (value: never, given: boolean) => void;
}

/** Flags every command accepts. To add one: one entry (field + apply). */
export const GLOBAL_OPTIONS = {
  backend: {
    field: z
      .enum(["auto", "cuda", "cpu", "ref"])
      .default("auto")
      .describe(
        "compute backend (auto: cuda when a GPU and the cuda addon are there, else cpu when the native addon loads, else ref; it says which)",
      ),
    apply: (v: BackendChoice, given: boolean) => {
      if (given) setBackend(v, { announce: v === "auto" });
    },
  },
  precision: {
    field: z
      .enum(["fp32", "bf16"])
      .default("fp32")
      .describe(
        "how matmul and attention multiply: fp32 (TF32 tensor cores on cuda) or bf16 (autocast: fp32 weights, bf16 products; cuda only)",
      ),
    apply: (v: Precision, given: boolean) => {
      if (given) setPrecision(v);
    },
  },
} satisfies Record<string, GlobalOption>;

export type GlobalValues = { [K in keyof typeof GLOBAL_OPTIONS]: Parameters<(typeof GLOBAL_OPTIONS)[K]["apply"]>[0] };

const AGGREGATIONS = Object.keys(STEP_AGGREGATIONS) as [StepAggregation, ...StepAggregation[]];

/** One definition per shared concept; commands use these (re-described where the wording differs). */
export const SHARED = {
  model: z.string().describe("model folder (HF layout: config.json, safetensors, tokenizer files)"),
  tokenizer: z.string().nullable().default(null).describe("tokenizer folder (default: the model folder)"),
  data: z.string().describe("input data, JSONL"),
  output: z.string().describe("output file, JSONL"),
  seed: z.number().int().default(42).describe("seed of every random choice"),
  stepSeparator: z.string().min(1).default("\n").describe("text between two steps of a solution (\\n and \\t escapes work)"),
  maxCompletionLength: z.number().int().positive().default(256).describe("tokens generated per completion at most"),
  maxStepLength: z.number().int().positive().default(64).describe("tokens generated per step at most"),
  aggregation: z
    .enum(AGGREGATIONS)
    .default("min")
    .describe(`how per-step scores make one solution score (${AGGREGATIONS.join(", ")})`),
  batchSize: z.number().int().positive().default(16).describe("rows per forward pass"),
  temperature: z.number().min(0).default(1).describe("sampling temperature (0: greedy)"),
  answerPattern: z
    .string()
    .nullable()
    .default(null)
    .describe(
      'regex whose first group (or group "answer") is a solution\'s final answer (default: \\boxed{x}, "#### x", "answer is x", else the last number)',
    ),
} satisfies Record<string, z.ZodType>;

/** String options whose flag text takes `\n`-style escapes. */
export const ESCAPED_FIELDS: ReadonlySet<string> = new Set(["stepSeparator"]);
