// Row tokenisation shared by trainers and scorers, so a model is read where it was trained: TRL's
// PRMTrainer.tokenize_row (stepwise rows, the label on the last token of each step's separator span) and
// RewardTrainer's pair tokenisation (prompt + chosen / rejected, EOS-terminated for text).
// Not here: collation into tensors (batch.ts), the trainers' losses and loops (src/train/).

import type { ChatMessage, Tokenizer } from "../io/tokenizer.js";

/** The PRM config fields tokenisation reads (PRMTrainer names). */
export interface PrmRowOptions {
  /** Text appended to every step; its last token carries the step's label. */
  stepSeparator: string;
  /** Only the last step keeps its label (training rows; evaluation keeps all). */
  trainOnLastStepOnly: boolean;
  /** Truncate prompt + completion to this many tokens; null keeps all. */
  maxLength: number | null;
  /** Keep the last N prompt tokens; null keeps all. */
  maxPromptLength: number | null;
  /** Truncate the steps to N tokens; null keeps all. */
  maxCompletionLength: number | null;
}

/** A tokenized stepwise row: ids and one label per token (-100, 0 wrong step, 1 correct step). */
export interface PrmExample {
  ids: number[];
  labels: number[];
}

/** TRL's PRMTrainer.tokenize_row. `isEval` keeps every step label even with trainOnLastStepOnly. */
export function tokenizePrmRow(
  tok: Tokenizer,
  row: { prompt: string; completions: readonly string[]; labels: readonly boolean[] },
  cfg: PrmRowOptions,
  isEval = false,
): PrmExample {
  let promptIds = tok.encode(row.prompt, { addSpecialTokens: false });
  const stepLabels =
    cfg.trainOnLastStepOnly && !isEval
      ? row.labels.map((l, i) => (i === row.labels.length - 1 ? Number(l) : -100))
      : row.labels.map(Number);
  const sep = tok.encode(cfg.stepSeparator, { addSpecialTokens: false });
  let completionIds: number[] = [];
  let labels: number[] = [];
  row.completions.forEach((step, i) => {
    const ids = [...tok.encode(step, { addSpecialTokens: false }), ...sep];
    completionIds.push(...ids);
    for (let j = 0; j < ids.length; j++) labels.push(j === ids.length - 1 ? stepLabels[i] : -100);
  });
  if (tok.bosTokenId !== null) promptIds = [tok.bosTokenId, ...promptIds];
  if (cfg.maxPromptLength !== null) promptIds = promptIds.slice(-cfg.maxPromptLength);
  if (cfg.maxCompletionLength !== null) {
    completionIds = completionIds.slice(0, cfg.maxCompletionLength);
    labels = labels.slice(0, cfg.maxCompletionLength);
  }
  let ids = [...promptIds, ...completionIds];
  labels = [...promptIds.map(() => -100), ...labels];
  if (cfg.maxLength !== null) {
    ids = ids.slice(0, cfg.maxLength);
    labels = labels.slice(0, cfg.maxLength);
  }
  return { ids, labels };
}

/** A tokenized preference pair. */
export interface RewardPair {
  chosen: number[];
  rejected: number[];
  margin: number | null;
}

/** prompt + completion ids: text gets EOS appended (TRL), messages are rendered with the chat template. */
export function sequenceIds(tok: Tokenizer, prompt: unknown, completion: unknown): number[] {
  if (typeof completion === "string") {
    const eos = tok.eosToken;
    const text = (typeof prompt === "string" ? prompt : "") + completion;
    return tok.encode(eos !== null && !text.endsWith(eos) ? text + eos : text);
  }
  const messages = [...((prompt as ChatMessage[] | undefined) ?? []), ...(completion as ChatMessage[])];
  return tok.encode(tok.applyChatTemplate(messages), { addSpecialTokens: false });
}

/** Tokenize a preference row as TRL does: prompt + chosen and prompt + rejected, EOS-terminated for text. */
export function tokenizeRewardRow(tok: Tokenizer, row: Record<string, unknown>): RewardPair {
  return {
    chosen: sequenceIds(tok, row.prompt, row.chosen),
    rejected: sequenceIds(tok, row.prompt, row.rejected),
    margin: typeof row.margin === "number" ? row.margin : null,
  };
}
