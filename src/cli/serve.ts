// `nexus serve`: an OpenAI-compatible HTTP server for one checkpoint (src/serve/). Prints
// "listening on <url>" on stdout once the port is bound; SIGINT / SIGTERM finish admitted requests and exit 0.
// Binds 127.0.0.1 unless --host says otherwise, and refuses a non-loopback host without --api-key.
// Not here: the server itself, multi-model serving.

import type { Command } from "commander";
import { z } from "zod";
import { startServer } from "../serve/server.js";
import { cliErr, cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

/** An optional positive limit (null: the server's default, guard.ts). */
const limit = (doc: string) => z.number().int().positive().nullable().default(null).describe(doc);

export const SERVE_SCHEMA = z
  .object({
    model: SHARED.model.describe("model folder (HF layout) to serve"),
    tokenizer: SHARED.tokenizer,
    host: z.string().default("127.0.0.1").describe("address to bind"),
    port: z.number().int().min(0).max(65535).default(8000).describe("port (0 picks a free one)"),
    servedModelName: z.string().nullable().default(null).describe("the model id clients send (default: --model as given)"),
    lora: z.record(z.string(), z.string()).default({}).describe("a PEFT LoRA adapter to load at start, NAME=DIR (repeatable)"),
    maxBatch: z.number().int().positive().default(64).describe("rows generated together at most"),
    apiKey: z.string().nullable().default(null).describe("require Authorization: Bearer <key> (needed to bind a non-loopback --host)"),
    adapterRoot: z.string().nullable().default(null).describe("allow /v1/load_lora_adapter, for adapter folders inside this one only"),
    maxLoras: limit("LoRA adapters loaded at once (default 8)"),
    maxBodyBytes: limit("largest request body in bytes (default 4 MiB)"),
    maxPromptChars: limit("characters per prompt, checked before tokenizing (default 32 x positions, at most 2^20)"),
    maxRowsPerRequest: limit("prompts x n per request (default max(256, --max-batch))"),
    maxRequestTokens: limit("rows x max_tokens per request (default 262144)"),
    maxQueuedRequests: limit("generation requests running or queued before 429 + Retry-After (default max(256, 4 x --max-batch))"),
    seed: SHARED.seed.describe("seed of the stream that requests without a seed draw from"),
    healthPort: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .nullable()
      .default(null)
      .describe("also answer GET /health on this port, from a thread of its own that no API load delays (0 picks a free one)"),
    quiet: z.boolean().default(false).describe("no per-request log on stderr"),
  })
  .strict();

export function registerServe(program: Command): void {
  registerSchemaCommand(program, {
    name: "serve",
    description:
      "serve a checkpoint over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, stream: true as SSE, LoRA hot loading)",
    schema: SERVE_SCHEMA,
    action: async (f) => {
      const handle = await startServer({
        model: f.model,
        tokenizer: f.tokenizer ?? undefined,
        host: f.host,
        port: f.port,
        servedModelName: f.servedModelName ?? undefined,
        loras: f.lora,
        maxBatch: f.maxBatch,
        apiKey: f.apiKey ?? undefined,
        adapterRoot: f.adapterRoot ?? undefined,
        limits: {
          maxLoras: f.maxLoras ?? undefined,
          maxBodyBytes: f.maxBodyBytes ?? undefined,
          maxPromptChars: f.maxPromptChars ?? undefined,
          maxRowsPerRequest: f.maxRowsPerRequest ?? undefined,
          maxRequestTokens: f.maxRequestTokens ?? undefined,
          maxQueuedRequests: f.maxQueuedRequests ?? undefined,
        },
        seed: f.seed,
        healthPort: f.healthPort ?? undefined,
        log: f.quiet ? undefined : (line) => cliErr(`[serve] ${line}\n`),
      });
      if (handle.healthUrl !== null) cliOut(`health on ${handle.healthUrl}/health\n`);
      cliOut(`listening on ${handle.url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          cliErr(`[serve] ${sig}: finishing admitted requests\n`);
          handle.close().then(resolve, resolve);
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
    },
  });
}
