// Messages between `nexus serve`'s HTTP thread (engine.ts) and its generation worker (engine_worker.ts). The worker
// owns a copy of the weights and the rollout engine and only deals in token ids; the HTTP thread owns tokenization,
// text, stop strings, seeds and the request bookkeeping. Plain data only (structured clone).

import type { BackendName } from "../backend/types.js";
import type { PromptTokenLogprob } from "../generate/engine.js";
import type { TopEntry } from "../generate/sampling.js";
import type { ModelConfig } from "../io/hf_config.js";
import type { LoraConfig } from "../models/lora.js";
import type { RngState } from "../nn/rng.js";

export interface WorkerInit {
  config: ModelConfig;
  /** Parameter name → values (transferred). */
  weights: [string, Float32Array][];
  backend: BackendName;
  maxRunning: number;
  kvCacheMemory?: number;
  maxBatchTokens: number;
}

/** One row to generate (the worker's request id is the HTTP thread's row id). */
export interface AddRow {
  t: "add";
  id: number;
  prompt: number[];
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  rng: RngState;
  eos: number[];
  /** Adapter namespace ("" = base). */
  ns: string;
  topLogprobs: number;
  promptLogprobs: number | null;
}

export type ToWorker =
  | AddRow
  | { t: "cancel"; ids: number[] }
  | { t: "adapter"; ns: string; config: LoraConfig; weights: [string, Float32Array][] }
  | { t: "dropAdapter"; ns: string };

/** A sampled token of row `id`; the first one of a row carries its prompt log-probs when asked. */
export interface TokenMsg {
  id: number;
  token: number;
  logprob: number;
  top: TopEntry[];
  promptLogprobs?: (PromptTokenLogprob | null)[] | null;
  /** The row ended with this token (eos or length). */
  finish?: "eos" | "length";
}

export type FromWorker =
  | { t: "ready" }
  | { t: "step"; tokens: TokenMsg[]; steps: number; kvBlocksFree: number; kvBlocks: number }
  | { t: "rowError"; ids: number[]; message: string }
  | { t: "fatal"; message: string };
