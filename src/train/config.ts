// Config resolution shared by every trainer: a zod schema with defaults (strict: unknown keys are errors,
// with a suggestion), merged from defaults, a YAML/JSON file and CLI overrides, then cross-field rules.

import { readFileSync, statSync } from "node:fs";
import YAML from "yaml";
import type { z } from "zod";

export class ConfigError extends Error {
  override name = "ConfigError";
}

function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/**
 * Validate `input` against a strict object schema. `where` names the source (trainer, file) in errors;
 * `rules` checks relations between fields and returns an error message or null.
 */
export function resolveConfig<S extends z.ZodObject>(
  where: string,
  schema: S,
  input: Record<string, unknown>,
  rules: ((c: z.output<S>) => string | null)[] = [],
): z.output<S> {
  const known = Object.keys(schema.shape);
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      const hint = closest(key, known);
      throw new ConfigError(`[${where}] unknown config key '${key}'${hint ? ` (did you mean '${hint}'?)` : ""}`);
    }
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`[${where}] config '${issue.path.join(".")}': ${issue.message}`);
  }
  for (const rule of rules) {
    const msg = rule(parsed.data);
    // a rule relates several fields: the message names them; "config:" says the settings (not the data) are at fault
    if (msg !== null) throw new ConfigError(`[${where}] config: ${msg}`);
  }
  return parsed.data;
}

/** A config file larger than this is refused unread (real ones are a few KB; a YAML parse of MBs takes seconds). */
export const CONFIG_MAX_BYTES = 256 * 1024;

/** Read a YAML or JSON config file into a plain object (keys in camelCase or snake_case). */
export function readConfigFile(path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    const size = statSync(path).size;
    if (size > CONFIG_MAX_BYTES) throw new Error(`${size} bytes is more than a config file may hold (${CONFIG_MAX_BYTES})`);
    const text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path));
    // JSON is YAML, but the JSON parser is much faster; a .json file must be JSON
    raw = path.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    const msg = e instanceof TypeError && /encoded data/.test(e.message) ? "not valid UTF-8" : (e as Error).message;
    throw new ConfigError(`[config] ${path}: ${msg}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`[config] ${path}: expected a mapping of options`);
  return camelCaseKeys(raw as Record<string, unknown>);
}

/** snake_case keys (TRL's spelling) become camelCase; camelCase keys pass unchanged. */
export function camelCaseKeys(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())] = v;
  return out;
}
