// One answer extractor for everything that reads a final answer: the accuracy reward, the labellers' gold checker
// and the step that ends a rollout, search (when a solution is finished, answer keys for voting, correctness)
// and evaluation. Default: the stated forms (last \boxed{}, "#### X", "answer is X"), else the last number of
// the text. A custom pattern (--answer-pattern) replaces the stated forms. Not here: symbolic equivalence.

import { extractAnswer, goldNumber, lastNumber, parseNumber, type Rational, rationalEquals } from "./rule.js";
import { RewardError } from "./types.js";

export interface AnswerExtractorOptions {
  /**
   * A regex (source, or `/source/flags`) whose named group `answer`, else first capture group, else whole match
   * is the stated answer; the last match in the text counts. null (default): \boxed{}, "#### X", "answer is X".
   */
  pattern?: string | RegExp | null;
  /** With no stated answer, use the last number in the text (default true). */
  fallbackLastNumber?: boolean;
}

function compile(pattern: string | RegExp): RegExp {
  if (pattern instanceof RegExp) return new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
  const literal = /^\/(.*)\/([a-z]*)$/s.exec(pattern);
  const [source, flags] = literal ? [literal[1]!, literal[2]!] : [pattern, ""];
  try {
    return new RegExp(source, flags.includes("g") ? flags : `${flags}g`);
  } catch (e) {
    throw new RewardError(`[answer] the answer pattern ${JSON.stringify(pattern)} is not a valid regex: ${(e as Error).message}`);
  }
}

export class AnswerExtractor {
  readonly pattern: RegExp | null;
  readonly fallbackLastNumber: boolean;

  constructor(opts: AnswerExtractorOptions = {}) {
    this.pattern = opts.pattern === undefined || opts.pattern === null || opts.pattern === "" ? null : compile(opts.pattern);
    this.fallbackLastNumber = opts.fallbackLastNumber ?? true;
  }

  /** The answer the text states explicitly (the pattern's last match, or the default forms), else null. */
  stated(text: string): string | null {
    if (this.pattern === null) return extractAnswer(text, { fallbackLastNumber: false });
    let last: string | null = null;
    this.pattern.lastIndex = 0;
    for (const m of text.matchAll(this.pattern)) last = m.groups?.answer ?? m[1] ?? m[0];
    return last === null ? null : last.trim();
  }

  /** The stated answer, else (with fallbackLastNumber) the last number in the text. */
  answer(text: string): string | null {
    return this.stated(text) ?? (this.fallbackLastNumber ? lastNumber(text) : null);
  }

  /** The answer as an exact rational, or null when there is none or it is not a number. */
  number(text: string): Rational | null {
    const a = this.answer(text);
    return a === null ? null : parseNumber(a);
  }

  /** The answer normalised for voting: 0.5 and 1/2 give "1/2"; a non-number is trimmed; null when none. */
  key(text: string): string | null {
    const a = this.answer(text);
    if (a === null) return null;
    const r = parseNumber(a);
    if (r === null) return a.trim();
    return r.den === 1n ? `${r.num}` : `${r.num}/${r.den}`;
  }

  /** A gold value from a dataset column: a number, a numeric string, or a solution text that states it. */
  gold(value: unknown): Rational | null {
    if (typeof value === "string" && this.pattern !== null) {
      const s = parseNumber(value);
      if (s !== null) return s;
      const stated = this.stated(value);
      return stated === null ? null : parseNumber(stated);
    }
    return goldNumber(value);
  }

  /** Whether the text's answer equals the gold answer exactly as rationals; null when the gold is not a number. */
  correct(text: string, gold: unknown): boolean | null {
    const g = this.gold(gold);
    if (g === null) return null;
    const got = this.number(text);
    return got !== null && rationalEquals(got, g);
  }

  /** For messages: what this extractor reads. */
  describe(): string {
    const stated = this.pattern === null ? '\\boxed{x}, "#### x" or "answer is x"' : `/${this.pattern.source}/`;
    return this.fallbackLastNumber ? `${stated}, else the last number` : stated;
  }
}

/** The default extractor (stated forms, else the last number). */
export const DEFAULT_ANSWER = new AnswerExtractor();

/** The extractor of an --answer-pattern option (null: the default). */
export function answerExtractor(pattern: string | null | undefined): AnswerExtractor {
  return pattern === null || pattern === undefined || pattern === "" ? DEFAULT_ANSWER : new AnswerExtractor({ pattern });
}
