// What `nexus serve` checks before doing any work for a request: who may connect (loopback only unless an
// API key is set; Bearer keys compared in constant time), how big a request may be (body bytes, prompt
// characters before tokenizing, rows and generated tokens per request), and how much may wait (a bounded
// queue, then 429 with Retry-After). Limits are a table with defaults derived from the model.
// Not here: the routes (server.ts), the engine's queue itself (engine.ts).

import { createHash, timingSafeEqual } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { ApiError } from "./protocol.js";

export interface ServeLimits {
  /** Largest request body, in bytes (checked against Content-Length before reading, then while reading). */
  maxBodyBytes: number;
  /** Characters in one prompt (a text prompt, or a chat's messages and rendered template), before tokenizing. */
  maxPromptChars: number;
  /** Rows one request may generate: prompts x n. */
  maxRowsPerRequest: number;
  /** Generated tokens one request may ask for: rows x max_tokens. */
  maxRequestTokens: number;
  /** Generation requests admitted at once (running or queued); more get 429 with Retry-After. */
  maxQueuedRequests: number;
  /** LoRA adapters loaded at once (at start and through /v1/load_lora_adapter). */
  maxLoras: number;
}

/** Defaults for a model with `positions` positions and batches of `maxBatch` rows. */
export function defaultLimits(positions: number, maxBatch: number): ServeLimits {
  return {
    maxBodyBytes: 4 * 2 ** 20,
    maxPromptChars: Math.min(2 ** 20, 32 * positions),
    maxRowsPerRequest: Math.max(256, maxBatch),
    maxRequestTokens: 2 ** 18,
    maxQueuedRequests: Math.max(256, 4 * maxBatch),
    maxLoras: 8,
  };
}

/** Merge overrides onto the defaults; each must be a positive integer. */
export function resolveLimits(base: ServeLimits, over: Partial<ServeLimits> = {}): ServeLimits {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    if (!(k in base)) throw new ApiError(500, `[serve] unknown limit ${k} (known: ${Object.keys(base).join(", ")})`);
    if (!Number.isSafeInteger(v) || v < 1) throw new ApiError(500, `[serve] limit ${k} must be an integer >= 1, got ${v}`);
    out[k as keyof ServeLimits] = v;
  }
  return out;
}

const LOOPBACK_NAMES = new Set(["localhost", "localhost.", "ip6-localhost", "ip6-loopback"]);

/** True when every address `host` names is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
export async function isLoopbackHost(host: string): Promise<boolean> {
  const loop = (a: string) => /^127\.\d+\.\d+\.\d+$/.test(a) || a === "::1" || /^::ffff:127\.\d+\.\d+\.\d+$/i.test(a);
  if (isIP(host)) return loop(host);
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  try {
    const addrs = await lookup(host, { all: true });
    return addrs.length > 0 && addrs.every((a) => loop(a.address));
  } catch {
    return false;
  }
}

/** Throw unless binding `host` is safe: a loopback address, or any address when an API key protects it. */
export async function checkBindAddress(host: string, apiKey: string | undefined): Promise<void> {
  if (apiKey !== undefined && apiKey.length === 0) throw new ApiError(500, "[serve] --api-key is empty");
  if (apiKey !== undefined || (await isLoopbackHost(host))) return;
  throw new ApiError(
    500,
    `[serve] --host ${host} is not a loopback address: anyone who can reach it could use the server; give --api-key KEY (clients send Authorization: Bearer KEY), or bind 127.0.0.1`,
  );
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** A checker of `Authorization: Bearer <key>` headers: compares SHA-256 digests in constant time. */
export function bearerCheck(apiKey: string): (header: string | undefined) => boolean {
  const want = digest(apiKey);
  return (header) => {
    const m = /^Bearer (.+)$/.exec(header ?? "");
    // digest even when the header is malformed, so timing does not tell a bad format from a bad key
    const got = digest(m ? m[1] : "\u0000no key");
    return timingSafeEqual(got, want) && m !== null;
  };
}

/**
 * Admission of generation requests: at most `limit` admitted at once (the engine queues what it cannot run
 * yet); past that a request is refused at once with 429 and a Retry-After estimated from recent latency.
 */
export class Admission {
  private inflight = 0;
  /** Exponential average of an admitted request's time in the server, in seconds. */
  private latencyS = 1;

  constructor(private readonly limit: number) {}

  get current(): number {
    return this.inflight;
  }

  /** Admit one request or throw a 429 ApiError; call the returned function when it ends. */
  admit(): () => void {
    if (this.inflight >= this.limit) {
      // the queue ahead drains at about `limit` requests per latency: wait one latency, at least a second
      const retry = Math.max(1, Math.ceil(this.latencyS));
      throw new ApiError(
        429,
        `[serve] server busy: ${this.inflight} requests are queued or running (limit ${this.limit}); retry in ${retry} s`,
        null,
        {
          "retry-after": String(retry),
        },
      );
    }
    this.inflight++;
    const t0 = performance.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inflight--;
      this.latencyS = 0.8 * this.latencyS + 0.2 * ((performance.now() - t0) / 1000);
    };
  }
}
