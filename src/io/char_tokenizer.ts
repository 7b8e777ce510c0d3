// CharTokenizer: one token per character for the synthetic tasks, special tokens first (`<pad>` 0,
// `<eos>` 1, `<bos>` 2 by default), then the given characters in order. It saves as a standard
// `tokenizer.json` (a BPE model with an empty merge list, so every character stays its own token, and a
// Fuse decoder) that @huggingface/tokenizers and HF `tokenizers` load and encode identically.
// It does not normalise text. A character outside the vocabulary becomes the unknown token (`unkToken`, given
// the last id so that the characters' ids do not move) with a warning, or, without one, is an error.

import { type ChatMessage, type ChatTemplateOptions, renderChatTemplate, type Tokenizer, TokenizerError } from "./tokenizer.js";

export interface CharTokenizerOptions {
  /** Padding token (id 0). Default "<pad>". */
  padToken?: string;
  /** End-of-sequence token (id 1). Default "<eos>". */
  eosToken?: string;
  /** Beginning-of-sequence token (id 2), or null for none. Default "<bos>". */
  bosToken?: string | null;
  /** Prepend the BOS token when encoding with addSpecialTokens (saved as a TemplateProcessing post-processor). */
  addBos?: boolean;
  /** More special tokens (e.g. "<|im_start|>"), given ids after the ones above. */
  extraSpecialTokens?: string[];
  /** A Jinja chat template over these tokens, if chat formatting is wanted. */
  chatTemplate?: string | null;
  /** Unknown-character token (the last id); null (default): an unknown character is an error. */
  unkToken?: string | null;
}

function fail(msg: string): never {
  throw new TokenizerError(`[tokenizer] CharTokenizer: ${msg}`);
}

export class CharTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly bosToken: string | null;
  readonly eosToken: string;
  readonly padToken: string;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: string | null;
  readonly addBos: boolean;
  readonly unkToken: string | null;
  readonly unkTokenId: number | null;
  /** Unknown characters seen so far (the first one is reported once on stderr). */
  unknownCharacters = 0;
  /** id -> token string. */
  readonly vocab: readonly string[];
  private readonly ids = new Map<string, number>();
  /** Special tokens, longest first (matched before single characters, leftmost-longest like HF). */
  private readonly specials: string[];

  constructor(chars: string | Iterable<string>, opts: CharTokenizerOptions = {}) {
    this.padToken = opts.padToken ?? "<pad>";
    this.eosToken = opts.eosToken ?? "<eos>";
    this.bosToken = opts.bosToken === undefined ? "<bos>" : opts.bosToken;
    this.addBos = opts.addBos ?? false;
    if (this.addBos && this.bosToken === null) fail("addBos needs a bosToken");
    const specials = [this.padToken, this.eosToken, ...(this.bosToken === null ? [] : [this.bosToken]), ...(opts.extraSpecialTokens ?? [])];
    const vocab: string[] = [];
    for (const s of specials) {
      if (s.length === 0) fail("a special token is empty");
      if (this.ids.has(s)) fail(`special token ${JSON.stringify(s)} appears twice`);
      this.ids.set(s, vocab.length);
      vocab.push(s);
    }
    const list = typeof chars === "string" ? Array.from(chars) : [...chars];
    for (const c of list) {
      if (Array.from(c).length !== 1) fail(`vocabulary entry ${JSON.stringify(c)} is not a single character`);
      if (this.ids.has(c)) continue; // repeated characters are harmless; keep the first id
      this.ids.set(c, vocab.length);
      vocab.push(c);
    }
    this.unkToken = opts.unkToken ?? null;
    this.unkTokenId = null;
    const specialIds = specials.map((_, i) => i);
    if (this.unkToken !== null) {
      if (this.ids.has(this.unkToken)) fail(`unkToken ${JSON.stringify(this.unkToken)} is already in the vocabulary`);
      this.unkTokenId = vocab.length;
      this.ids.set(this.unkToken, vocab.length);
      specialIds.push(vocab.length);
      vocab.push(this.unkToken);
    }
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    this.padTokenId = 0;
    this.eosTokenId = 1;
    this.bosTokenId = this.bosToken === null ? null : 2;
    this.specialTokenIds = new Set(specialIds);
    this.specials = [...specials, ...(this.unkToken === null ? [] : [this.unkToken])].sort((a, b) => b.length - a.length);
    this.chatTemplate = opts.chatTemplate ?? null;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const out: number[] = [];
    if (this.addBos && (opts.addSpecialTokens ?? true)) out.push(this.bosTokenId as number);
    let i = 0;
    outer: while (i < text.length) {
      for (const s of this.specials) {
        if (text.startsWith(s, i)) {
          out.push(this.ids.get(s) as number);
          i += s.length;
          continue outer;
        }
      }
      const cp = text.codePointAt(i) as number;
      const c = String.fromCodePoint(cp);
      let id = this.ids.get(c);
      if (id === undefined) {
        const where = `character ${JSON.stringify(c)} (U+${cp.toString(16).toUpperCase().padStart(4, "0")}) at index ${i}`;
        if (this.unkTokenId === null) fail(`${where} is not in the vocabulary (and there is no unknown token)`);
        if (this.unknownCharacters++ === 0) {
          process.stderr.write(`[tokenizer] ${where} is not in the character vocabulary: encoded as ${this.unkToken} (reported once)\n`);
        }
        id = this.unkTokenId;
      }
      out.push(id);
      i += c.length;
    }
    return out;
  }

  /** Ids outside the vocabulary (a model's padded embedding rows) decode to nothing, as in HF tokenizers. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    let s = "";
    for (const id of ids) {
      const t = this.vocab[id];
      if (t === undefined) continue;
      if (opts.skipSpecialTokens && this.specialTokenIds.has(id)) continue;
      s += t;
    }
    return s;
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) {
      fail(
        "no chat template: conversational rows ({messages}) and chat serving need one (pass chatTemplate, or save the tokenizer and add chat_template.jinja to its folder; `nexus init` writes one)",
      );
    }
    return renderChatTemplate(this.chatTemplate, messages, {
      ...opts,
      specialTokens: { bos_token: this.bosToken, eos_token: this.eosToken, pad_token: this.padToken, unk_token: this.unkToken },
    });
  }

  /** tokenizer.json (HF `tokenizers` format 1.0) and tokenizer_config.json. */
  toFiles(): { tokenizerJson: unknown; tokenizerConfig: Record<string, unknown> } {
    const addedTokens = [...this.specialTokenIds].map((id) => ({
      id,
      content: this.vocab[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
    const bos = this.bosToken as string;
    const postProcessor = this.addBos
      ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [this.bosTokenId], tokens: [bos] } },
        }
      : null;
    const tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: null,
      post_processor: postProcessor,
      decoder: { type: "Fuse" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: this.unkToken,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(this.vocab.map((t, i) => [t, i])),
        merges: [],
      },
    };
    const tokenizerConfig: Record<string, unknown> = {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      pad_token: this.padToken,
      unk_token: this.unkToken,
      clean_up_tokenization_spaces: false,
      model_max_length: 1_000_000_000,
    };
    if (this.chatTemplate !== null) tokenizerConfig.chat_template = this.chatTemplate;
    return { tokenizerJson, tokenizerConfig };
  }
}
