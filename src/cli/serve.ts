// `nexus serve`: an OpenAI-compatible HTTP server for one checkpoint (src/serve/). Prints
// "listening on <url>" on stdout once the port is bound; SIGINT / SIGTERM finish queued requests and exit 0.
// Not here: the server itself, multi-model serving.

import { type Command, InvalidArgumentError } from "commander";
import { type BackendChoice, setBackend } from "../backend/index.js";
import { startServer } from "../serve/server.js";

function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got '${v}'`);
    return n;
  };
}

function loraArg(v: string, prev: Record<string, string>): Record<string, string> {
  const at = v.indexOf("=");
  if (at <= 0 || at === v.length - 1) throw new InvalidArgumentError(`expected NAME=DIR, got '${v}'`);
  return { ...prev, [v.slice(0, at)]: v.slice(at + 1) };
}

interface ServeFlags {
  model: string;
  tokenizer?: string;
  host: string;
  port: number;
  servedModelName?: string;
  lora: Record<string, string>;
  maxBatch: number;
  apiKey?: string;
  seed?: number;
  backend?: BackendChoice;
  quiet: boolean;
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("serve a checkpoint over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, LoRA hot loading)")
    .requiredOption("--model <dir>", "model folder (HF layout)")
    .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <n>", "port (0 picks a free one)", intArg(0), 8000)
    .option("--served-model-name <name>", "the model id clients send (default: --model as given)")
    .option("--lora <name=dir>", "a PEFT LoRA adapter to load at start (repeatable)", loraArg, {})
    .option("--max-batch <n>", "rows generated together at most", intArg(1), 64)
    .option("--api-key <key>", "require Authorization: Bearer <key>")
    .option("--seed <n>", "seed of the stream unseeded requests draw from", intArg(0))
    .option("--backend <name>", "auto, cpu or ref")
    .option("--quiet", "no per-request log on stderr", false)
    .action(async (f: ServeFlags) => {
      if (f.backend !== undefined) setBackend(f.backend);
      const handle = await startServer({
        model: f.model,
        tokenizer: f.tokenizer,
        host: f.host,
        port: f.port,
        servedModelName: f.servedModelName,
        loras: f.lora,
        maxBatch: f.maxBatch,
        apiKey: f.apiKey,
        seed: f.seed,
        log: f.quiet ? undefined : (line) => process.stderr.write(`[serve] ${line}\n`),
      });
      process.stdout.write(`listening on ${handle.url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          process.stderr.write(`[serve] ${sig}: finishing queued requests\n`);
          handle.close().then(resolve, resolve);
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
    });
}
