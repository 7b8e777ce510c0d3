// What a model folder holds, read from its config.json (`architectures`, `id2label`): a causal LM (a policy), a
// sequence classifier (an outcome reward model or a value model, *ForSequenceClassification) or a token
// classifier (a process reward model, *ForTokenClassification), so that loading a folder of the wrong kind says
// what the folder is and what was expected. Not here: loading weights (models/).

import * as fs from "node:fs";
import * as path from "node:path";

export type FolderKind = "causal-lm" | "sequence-classifier" | "token-classifier";

export class FolderKindError extends Error {
  override name = "FolderKindError";
}

export interface FolderInfo {
  /** null when config.json names no known architecture (then nothing is checked). */
  kind: FolderKind | null;
  architecture: string | null;
  numLabels: number | null;
}

/** Kind, architecture and label count of a model folder; null kind when config.json does not say. */
export function folderInfo(dir: string): FolderInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf-8"));
  } catch {
    parsed = null;
  }
  // not an object (null, an array, a number): nothing to say here; the loader proper names the file and the problem
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { kind: null, architecture: null, numLabels: null };
  const raw = parsed as Record<string, unknown>;
  const arch = Array.isArray(raw.architectures) && typeof raw.architectures[0] === "string" ? raw.architectures[0] : null;
  const labels = raw.id2label && typeof raw.id2label === "object" ? Object.keys(raw.id2label).length : null;
  const numLabels = typeof raw.num_labels === "number" ? raw.num_labels : labels;
  let kind: FolderKind | null = null;
  if (arch?.endsWith("ForCausalLM")) kind = "causal-lm";
  else if (arch?.endsWith("ForSequenceClassification")) kind = "sequence-classifier";
  else if (arch?.endsWith("ForTokenClassification")) kind = "token-classifier";
  return { kind, architecture: arch, numLabels };
}

const WHAT: Record<FolderKind, string> = {
  "causal-lm": "a causal language model (a policy)",
  "sequence-classifier": "a sequence classifier (an outcome reward model or a value model)",
  "token-classifier": "a token classifier (a process reward model)",
};

/** "a token classifier (a process reward model: LlamaForTokenClassification, 2 labels)". */
export function describeFolder(info: FolderInfo): string {
  if (info.kind === null) return `a model of architecture ${JSON.stringify(info.architecture)}`;
  const labels = info.kind !== "causal-lm" && info.numLabels !== null ? `, ${info.numLabels} label${info.numLabels === 1 ? "" : "s"}` : "";
  return `${WHAT[info.kind]}: ${info.architecture}${labels}`;
}

const HOW: Record<FolderKind, string> = {
  "causal-lm": "a *ForCausalLM folder, as `nexus init`, `nexus sft` or a policy trainer writes",
  "sequence-classifier":
    "a *ForSequenceClassification folder, as `nexus rm` writes (train one from a causal LM with `nexus rm --model DIR`)",
  "token-classifier": "a *ForTokenClassification folder, as `nexus prm` writes (train one from a causal LM with `nexus prm --model DIR`)",
};

/**
 * Throw unless `dir` holds one of `want` (a folder whose config.json names no known architecture passes).
 * `tag` names the caller, `role` the option or use the folder is for ("--prm-model", "a policy").
 */
export function expectFolderKind(dir: string, want: readonly FolderKind[], tag: string, role: string): FolderInfo {
  const info = folderInfo(dir);
  if (info.kind === null || want.includes(info.kind)) return info;
  const expected = want.map((k) => `${WHAT[k]}: ${HOW[k]}`).join("; or ");
  throw new FolderKindError(`[${tag}] ${dir} is ${describeFolder(info)}, but ${role} needs ${expected}`);
}
