// `--config FILE`: a YAML or JSON mapping of a command's options, keys in camelCase, snake_case (TRL's) or
// kebab-case. Each value keeps the key as written so that an error names the file and the key the user typed.

import { readFileSync } from "node:fs";
import YAML from "yaml";
import { ConfigError } from "../train/config.js";
import { camelCase } from "./fields.js";

export interface ConfigFileEntry {
  /** The option's camelCase name. */
  field: string;
  /** The key as written in the file (`per_device_train_batch_size`). */
  key: string;
  value: unknown;
}

/** Read a config file into entries; a parse error or a non-mapping names the file. */
export function readConfigEntries(path: string): ConfigFileEntry[] {
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`[config] ${path}: ${(e as Error).message}`);
  }
  if (raw === null || raw === undefined) return [];
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`[config] ${path}: expected a mapping of options`);
  const seen = new Map<string, string>();
  return Object.entries(raw as Record<string, unknown>).map(([key, value]) => {
    const field = camelCase(key);
    const twice = seen.get(field);
    if (twice !== undefined) throw new ConfigError(`[config] ${path}: '${key}' and '${twice}' set the same option`);
    seen.set(field, key);
    return { field, key, value };
  });
}
