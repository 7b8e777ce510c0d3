// LLM-as-judge step labels (Qwen 2501.07301 §3, App. C; ProcessBench's critic prompt): a generative judge reads
// the problem and the numbered steps and names the first wrong step. The judge is any `(prompt) => Promise<string>`:
// a local CausalLM through generate (greedy), or an OpenAI-compatible endpoint (temperature 0).
// Differences: the reply ends with one line "first wrong step: K" (1-based) or "first wrong step: none" instead
// of per-paragraph <analysis_i> tags; a reply with no such line, or K outside 1..M, gives a null label (counted).

import { type GenerativeLM, generate } from "../../generate/generate.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import { LabelError } from "./steps.js";

/** A generative judge: prompt text in, reply text out. */
export type JudgeFn = (prompt: string) => Promise<string>;

/** The default judge prompt; {problem} and {steps} are replaced. Steps are numbered from 1. */
export const JUDGE_TEMPLATE = [
  "The following is a math problem and a step-by-step solution. Find the first wrong step: a step with a wrong",
  "calculation, fact or reasoning, or one that builds on an earlier wrong step.",
  "",
  "Problem:",
  "{problem}",
  "",
  "Solution:",
  "{steps}",
  "",
  "Check the steps in order. End your reply with one line, 'first wrong step: K' where K is the number of the",
  "first wrong step, or 'first wrong step: none' if every step is correct.",
].join("\n");

/** The judge prompt for one solution. */
export function judgePrompt(problem: string, steps: readonly string[], template = JUDGE_TEMPLATE): string {
  const numbered = steps.map((s, i) => `Step ${i + 1}: ${s}`).join("\n");
  return template.replace("{problem}", problem.trim()).replace("{steps}", numbered);
}

const VERDICT_RE = /first\s+(?:wrong|incorrect|erroneous)\s+step\s*(?:is|:|=)?\s*(?:step\s*)?(-?\d+|none)\b/gi;

/**
 * The first-error index (0-based) a judge reply names: the LAST "first wrong step: K" in the reply (a judge may
 * quote the instruction before answering). "none" or -1 → -1. Null when absent or K is not in 1..numSteps.
 */
export function parseJudgeReply(reply: string, numSteps: number): number | null {
  let last: string | null = null;
  for (const m of reply.matchAll(VERDICT_RE)) last = m[1]!;
  if (last === null) return null;
  if (last.toLowerCase() === "none" || last === "-1") return -1;
  const k = Number(last);
  return k >= 1 && k <= numSteps ? k - 1 : null;
}

export interface JudgeLabel {
  /** First wrong step (0-based), -1 for none, null when the reply could not be parsed. */
  firstError: number | null;
  reply: string;
}

export interface JudgeStats {
  total: number;
  parsed: number;
  unparseable: number;
}

export interface JudgeLabelOptions {
  template?: string;
  /** Judge calls in flight at once (for remote endpoints). Default 1. */
  concurrency?: number;
}

/** Ask the judge about every solution; results are in input order. */
export async function judgeLabels(
  judge: JudgeFn,
  items: readonly { prompt: string; steps: readonly string[] }[],
  opts: JudgeLabelOptions = {},
): Promise<{ labels: JudgeLabel[]; stats: JudgeStats }> {
  const conc = opts.concurrency ?? 1;
  if (!Number.isInteger(conc) || conc < 1) throw new LabelError(`[judgeLabels] concurrency must be an integer >= 1, got ${conc}`);
  const labels = new Array<JudgeLabel>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const it = items[i]!;
      const reply = await judge(judgePrompt(it.prompt, it.steps, opts.template));
      labels[i] = { firstError: parseJudgeReply(reply, it.steps.length), reply };
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, Math.max(items.length, 1)) }, worker));
  const parsed = labels.filter((l) => l.firstError !== null).length;
  return { labels, stats: { total: items.length, parsed, unparseable: items.length - parsed } };
}

export interface LocalJudgeOptions {
  maxNewTokens?: number;
  /** Wrap the prompt as one user message with the tokenizer's chat template (when it has one). Default true. */
  useChatTemplate?: boolean;
  /** Calls made in the same tick (judgeLabels with concurrency > 1) share one generate call of at most this many rows. Default 64. */
  maxBatch?: number;
}

/** A judge backed by a local model: greedy generation of the reply; calls made in the same tick are batched. */
export function localJudge(model: GenerativeLM, tokenizer: Tokenizer, opts: LocalJudgeOptions = {}): JudgeFn {
  const maxBatch = opts.maxBatch ?? 64;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new LabelError(`[localJudge] maxBatch must be an integer >= 1, got ${maxBatch}`);
  let queue: { ids: number[]; resolve: (t: string) => void; reject: (e: unknown) => void }[] = [];
  const flush = () => {
    const batch = queue;
    queue = [];
    for (let i = 0; i < batch.length; i += maxBatch) {
      const part = batch.slice(i, i + maxBatch);
      try {
        const gens = generate(
          model,
          part.map((q) => q.ids),
          { maxNewTokens: opts.maxNewTokens ?? 256, temperature: 0, tokenizer },
        );
        part.forEach((q, j) => {
          q.resolve(gens[j]!.text ?? "");
        });
      } catch (e) {
        for (const q of part) q.reject(e);
      }
    }
  };
  return (prompt) => {
    const useChat = (opts.useChatTemplate ?? true) && tokenizer.chatTemplate !== null;
    const text = useChat ? tokenizer.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true }) : prompt;
    const ids = tokenizer.encode(text, { addSpecialTokens: !useChat });
    if (queue.length === 0) setImmediate(flush);
    return new Promise<string>((resolve, reject) => {
      queue.push({ ids, resolve, reject });
    });
  };
}

export interface RemoteJudgeOptions {
  /** Base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1. */
  url: string;
  /** Model name the server knows. */
  model: string;
  apiKey?: string;
  maxTokens?: number;
}

/** A judge behind an OpenAI-compatible /chat/completions endpoint (vLLM, SGLang, llama.cpp), temperature 0. */
export function remoteJudge(opts: RemoteJudgeOptions): JudgeFn {
  const url = `${opts.url.replace(/\/+$/, "")}/chat/completions`;
  return async (prompt) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) },
      body: JSON.stringify({
        model: opts.model,
        messages: [{ role: "user", content: prompt }],
        temperature: 0,
        max_tokens: opts.maxTokens ?? 1024,
      }),
    });
    if (!res.ok) throw new LabelError(`[remoteJudge] ${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
    const content = body.choices?.[0]?.message?.content;
    if (typeof content !== "string") throw new LabelError(`[remoteJudge] ${url}: reply has no choices[0].message.content`);
    return content;
  };
}
