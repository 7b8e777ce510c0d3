// Tokenizers: the `Tokenizer` interface the rest of Nexus uses, and a Hugging Face tokenizer loaded from
// `tokenizer.json` + `tokenizer_config.json` (through @huggingface/tokenizers) with its Jinja chat template
// (through @huggingface/jinja). The character-level `CharTokenizer` is in char_tokenizer.ts; prompt/completion
// and chat encoding with loss masks in chat_encoding.ts. Not here: batching, padding, truncation, offsets.

import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { renderBounded } from "./chat_template.js";
import { describeValue } from "./describe.js";
import { writeFileAtomic } from "./safetensors.js";

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the header that opens an assistant turn. */
  addGenerationPrompt?: boolean;
  /** Tool (function) schemas, passed to the template as `tools`. */
  tools?: unknown[];
  /** Extra template variables (e.g. `enable_thinking`). */
  extra?: Record<string, unknown>;
}

export interface Tokenizer {
  /** Number of ids the tokenizer can produce: max id + 1, added tokens included. */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  /** Ids of special tokens (dropped by decode with skipSpecialTokens). */
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: string | null;
  /** `addSpecialTokens` (default true) applies the tokenizer's post-processor (e.g. a BOS), like HF `tokenizer(text)`. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Render the chat template to text (tokenize it with addSpecialTokens: false, as HF does). */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
  /** The two JSON files `saveTokenizer` writes, plus the chat template. */
  toFiles(): { tokenizerJson: unknown; tokenizerConfig: Record<string, unknown> };
}

function fail(where: string, msg: string): never {
  throw new TokenizerError(`[tokenizer] ${where}: ${msg}`);
}

/** A special token in tokenizer_config.json is a string, null, or an AddedToken dict {content, ...}. */
function tokenString(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return null;
}

/**
 * Render a HF chat template with the variables transformers passes (special tokens, tools, flags), in the
 * bounded Jinja interpreter of chat_template.ts. `source` names where the template came from in errors.
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  opts: ChatTemplateOptions & { specialTokens?: Record<string, string | null>; source?: string } = {},
): string {
  try {
    return renderBounded(template, {
      ...(opts.specialTokens ?? {}),
      ...(opts.extra ?? {}),
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      tools: opts.tools ?? null,
    });
  } catch (e) {
    return fail(opts.source ?? "chat template", `chat template: ${(e as Error).message}`);
  }
}

/** Largest token id a tokenizer.json may hold (the biggest real vocabularies are ~2^18): ids size arrays. */
export const MAX_TOKEN_ID = 2 ** 22;
/** Most BPE merges a tokenizer.json may list. */
export const MAX_MERGES = 2 ** 23;

const isTokenId = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 0 && v < MAX_TOKEN_ID;

/**
 * Check the parts of a tokenizer.json that size allocations or end up as ids, before the tokenizer library
 * sees it: vocab entries and added-token ids are integers in [0, MAX_TOKEN_ID), merges a bounded list of
 * strings or pairs. (The library would build an array as long as the largest id, and hand out any JSON
 * value as an id.)
 */
export function checkTokenizerJson(tj: Record<string, unknown>, where: string): void {
  const m = tj.model;
  if (m === null || typeof m !== "object" || Array.isArray(m))
    fail(where, `tokenizer.json model is ${describeValue(m)}, expected an object`);
  const model = m as Record<string, unknown>;
  if (model.type !== undefined && !["BPE", "WordPiece", "Unigram", "WordLevel"].includes(model.type as string)) {
    fail(where, `tokenizer.json model.type ${describeValue(model.type)} is not supported (BPE, WordPiece, Unigram, WordLevel)`);
  }
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    if (vocab.length > MAX_TOKEN_ID) fail(where, `tokenizer.json model.vocab has ${vocab.length} entries (limit ${MAX_TOKEN_ID})`);
    vocab.forEach((e, i) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "number" || !Number.isFinite(e[1])) {
        fail(where, `tokenizer.json model.vocab[${i}] is ${describeValue(e)}, expected [piece, score]`);
      }
    });
    if (model.unk_id !== undefined && model.unk_id !== null && !(isTokenId(model.unk_id) && (model.unk_id as number) < vocab.length)) {
      fail(where, `tokenizer.json model.unk_id ${describeValue(model.unk_id)} is not an index of model.vocab`);
    }
  } else if (vocab !== null && typeof vocab === "object") {
    for (const [token, id] of Object.entries(vocab)) {
      if (!isTokenId(id))
        fail(
          where,
          `tokenizer.json model.vocab[${describeValue(token)}] is ${describeValue(id)}, expected a token id in [0, ${MAX_TOKEN_ID})`,
        );
    }
  } else
    fail(where, `tokenizer.json model.vocab is ${describeValue(vocab)}, expected an object of token ids (or Unigram [piece, score] pairs)`);
  const merges = model.merges;
  if (merges !== undefined && merges !== null) {
    if (!Array.isArray(merges)) fail(where, `tokenizer.json model.merges is ${describeValue(merges)}, expected a list`);
    if (merges.length > MAX_MERGES) fail(where, `tokenizer.json model.merges has ${merges.length} entries (limit ${MAX_MERGES})`);
    merges.forEach((e, i) => {
      const ok = typeof e === "string" || (Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string");
      if (!ok) fail(where, `tokenizer.json model.merges[${i}] is ${describeValue(e)}, expected "a b" or ["a", "b"]`);
    });
  }
  const added = tj.added_tokens ?? [];
  if (!Array.isArray(added)) fail(where, `tokenizer.json added_tokens is ${describeValue(added)}, expected a list`);
  added.forEach((t, i) => {
    const a = t as Record<string, unknown> | null;
    if (a === null || typeof a !== "object" || !isTokenId(a.id) || typeof a.content !== "string" || a.content === "") {
      fail(where, `tokenizer.json added_tokens[${i}] is ${describeValue(t)}, expected {id: a token id, content: a non-empty string}`);
    }
  });
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf-8");
  } catch (e) {
    return fail(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    return fail(file, `not valid JSON (${(e as Error).message})`);
  }
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

/** A Hugging Face fast tokenizer (tokenizer.json) with its config and chat template. */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: string | null;
  private readonly impl: HfTokenizerImpl;
  private readonly cleanUp: boolean;
  private readonly specialTokens: Record<string, string | null>;
  /** For a character-level vocabulary (BPE without merges or byte fallback): its characters; else null. */
  private readonly charVocab: ReadonlySet<string> | null;
  private readonly unkToken: string | null;
  /** Characters outside a character-level vocabulary seen so far (reported once on stderr). */
  unknownCharacters = 0;

  constructor(
    private readonly tokenizerJson: Record<string, unknown>,
    private readonly tokenizerConfig: Record<string, unknown>,
    chatTemplate: string | null = null,
    private readonly where = "tokenizer",
  ) {
    if (!Array.isArray(tokenizerJson.added_tokens)) tokenizerJson.added_tokens = [];
    checkTokenizerJson(tokenizerJson, where);
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (e) {
      fail(where, `cannot build the tokenizer (${(e as Error).message})`);
    }
    const vocab = this.impl.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const special = new Set<number>();
    for (const t of tokenizerJson.added_tokens as AddedTokenJson[]) if (t.special) special.add(t.id);
    this.specialTokenIds = special;
    const idOf = (name: string): [string | null, number | null] => {
      const tok = tokenString(tokenizerConfig[name]);
      if (tok === null) return [null, null];
      const id = this.impl.token_to_id(tok);
      if (id === undefined) fail(where, `${name} "${tok}" is not in the vocabulary`);
      return [tok, id];
    };
    [this.bosToken, this.bosTokenId] = idOf("bos_token");
    [this.eosToken, this.eosTokenId] = idOf("eos_token");
    [this.padToken, this.padTokenId] = idOf("pad_token");
    this.specialTokens = {};
    for (const k of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
      this.specialTokens[k] = tokenString(tokenizerConfig[k]);
    }
    // transformers 5 defaults clean_up_tokenization_spaces to false; the JS library would default to true.
    this.cleanUp = tokenizerConfig.clean_up_tokenization_spaces === true;
    let tmpl: unknown = chatTemplate ?? tokenizerConfig.chat_template ?? null;
    if (Array.isArray(tmpl)) {
      // Named templates: [{name, template}]; the one named "default" is what apply_chat_template uses.
      const named = tmpl.find((x) => (x as { name?: unknown } | null)?.name === "default") as { template?: unknown } | undefined;
      tmpl = named?.template ?? null;
    }
    this.chatTemplate = typeof tmpl === "string" ? tmpl : null;
    const model = (tokenizerJson.model ?? {}) as {
      type?: unknown;
      merges?: unknown;
      byte_fallback?: unknown;
      vocab?: unknown;
      unk_token?: unknown;
    };
    const charLevel = model.type === "BPE" && Array.isArray(model.merges) && model.merges.length === 0 && model.byte_fallback !== true;
    this.charVocab = charLevel && model.vocab && typeof model.vocab === "object" ? new Set(Object.keys(model.vocab)) : null;
    this.unkToken = typeof model.unk_token === "string" ? model.unk_token : null;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (text.length === 0 && !(opts.addSpecialTokens ?? true)) return [];
    if (this.charVocab !== null && this.unknownCharacters === 0) this.reportUnknownCharacter(text);
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** A character-level vocabulary maps an unknown character to its unknown token, or drops it: say so, once. */
  private reportUnknownCharacter(text: string): void {
    let rest = text;
    for (const t of this.tokenizerJson.added_tokens as AddedTokenJson[]) rest = rest.split(t.content).join("");
    for (const c of rest) {
      if (this.charVocab!.has(c)) continue;
      this.unknownCharacters++;
      const cp = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
      const what = this.unkToken !== null ? `encoded as ${this.unkToken}` : "DROPPED (this tokenizer has no unknown token)";
      process.stderr.write(
        `[tokenizer] ${this.where}: character ${JSON.stringify(c)} (${cp}) is not in the vocabulary: ${what} (reported once)\n`,
      );
      return;
    }
  }

  /** Ids outside the vocabulary (padded embedding rows, e.g. Qwen's) decode to nothing, as HF's tokenizers do. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) if (!Number.isInteger(id)) fail("decode", `id ${id} is not an integer`);
    const known = ids.filter((id) => id >= 0 && id < this.vocabSize);
    if (known.length === 0) return "";
    return this.impl.decode(known, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUp,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) {
      fail(
        this.where,
        "has no chat template, which conversational rows ({messages}) and chat serving need: add one as " +
          `${path.join(this.where, "chat_template.jinja")} (or "chat_template" in tokenizer_config.json), or use {prompt, completion} rows`,
      );
    }
    return renderChatTemplate(this.chatTemplate, messages, { ...opts, specialTokens: this.specialTokens, source: this.where });
  }

  toFiles(): { tokenizerJson: unknown; tokenizerConfig: Record<string, unknown> } {
    const cfg = { ...this.tokenizerConfig };
    if (this.chatTemplate !== null) cfg.chat_template = this.chatTemplate;
    return { tokenizerJson: this.tokenizerJson, tokenizerConfig: cfg };
  }
}

/**
 * Load `tokenizer.json` + `tokenizer_config.json` from a directory. A `chat_template.jinja` file (how
 * transformers 5 saves templates) takes precedence over `chat_template` in the config.
 */
export function loadTokenizer(dir: string): HfTokenizer {
  const tjPath = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(tjPath)) fail(dir, "no tokenizer.json (only fast tokenizers are supported)");
  const tj = readJson(tjPath);
  if (tj === null || typeof tj !== "object" || Array.isArray(tj)) fail(tjPath, "not a JSON object");
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgPath) ? readJson(cfgPath) : {};
  if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg)) fail(cfgPath, "not a JSON object");
  const jinjaPath = path.join(dir, "chat_template.jinja");
  const template = fs.existsSync(jinjaPath) ? fs.readFileSync(jinjaPath, "utf-8") : null;
  return new HfTokenizer(tj as Record<string, unknown>, cfg as Record<string, unknown>, template, dir);
}

/** Write tokenizer.json and tokenizer_config.json (chat template inside the config), atomically. */
export function saveTokenizer(tok: Tokenizer, dir: string): void {
  const { tokenizerJson, tokenizerConfig } = tok.toFiles();
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, obj] of [
    ["tokenizer.json", tokenizerJson],
    ["tokenizer_config.json", tokenizerConfig],
  ] as const) {
    const text = `${JSON.stringify(obj, null, 2)}\n`;
    writeFileAtomic(path.join(dir, name), (fd) => fs.writeSync(fd, text));
  }
}

/** Throw if the tokenizer can produce an id the model's embedding does not have. */
export function checkTokenizerFitsModel(tok: Tokenizer, vocabSize: number, where = "model"): void {
  if (tok.vocabSize <= vocabSize) return;
  const worst = tok.vocabSize - 1;
  const name = tok.idToToken(worst);
  fail(
    where,
    `tokenizer has ${tok.vocabSize} ids but the model's vocab_size is ${vocabSize}: ` +
      `token ${JSON.stringify(name)} (id ${worst}) and every id from ${vocabSize} have no embedding row`,
  );
}
