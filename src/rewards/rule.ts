// Rule-based rewards: answer accuracy (numeric answers, compared exactly as rationals), format (a regex),
// DAPO soft overlong punishment, and a linear length penalty. Each is a factory returning a RewardFn.
// Answers are read from `\boxed{...}`, "#### X", "The answer is X", or else the last number in the text;
// integers, decimals, thousands commas, fractions (3/4, \frac{3}{4}) and signs are understood.
// Not here: symbolic equivalence (no CAS: x+1 vs 1+x), units, or model-based rewards (orm.ts, prm.ts).

import { ARITHMETIC_SOLUTION_RE } from "../data/tasks/arithmetic.js";
import { namedReward, type RewardArgs, RewardError, type RewardFn } from "./types.js";

// ---- exact numbers ---------------------------------------------------------------------------------------

/** An exact rational, reduced, with a positive denominator. */
export interface Rational {
  num: bigint;
  den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function rational(num: bigint, den: bigint): Rational | null {
  if (den === 0n) return null;
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g };
}

export const rationalEquals = (a: Rational, b: Rational): boolean => a.num === b.num && a.den === b.den;
export const rationalToNumber = (r: Rational): number => Number(r.num) / Number(r.den);

// A decimal literal (optional sign, thousands commas, fraction digits, exponent) as an exact rational.
const DECIMAL_RE = /^([-+]?)(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;
function parseDecimal(s: string): Rational | null {
  const m = DECIMAL_RE.exec(s);
  if (!m) return null;
  const intPart = m[2]!.replaceAll(",", "");
  const frac = m[3] ?? "";
  if (intPart === "" && frac === "") return null;
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  if (Math.abs(exp) > 400) return null;
  let num = BigInt(`${intPart}${frac}` || "0");
  let den = 10n ** BigInt(frac.length);
  if (exp > 0) num *= 10n ** BigInt(exp);
  else if (exp < 0) den *= 10n ** BigInt(-exp);
  if (m[1] === "-") num = -num;
  return rational(num, den);
}

function divide(a: Rational | null, b: Rational | null): Rational | null {
  return a && b && b.num !== 0n ? rational(a.num * b.den, a.den * b.num) : null;
}

/**
 * Parse one answer string into an exact rational: "42", "-3", "1,234", "0.75", ".5", "1e3", "3/4", "-3/4",
 * "\frac{3}{4}", "-\dfrac{1}{2}", "\tfrac{1}{2}", with `$`, `\text{}`, `\left( \right)`, `%`, a trailing
 * period and an "x =" prefix removed. Percent signs are dropped, not divided by 100 ("75%" is 75, as a gold "75"
 * would be). Returns null when it is not a single number.
 */
export function parseNumber(raw: string): Rational | null {
  let s = raw
    .replace(/\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}/g, "$1$2")
    .replace(/\\left|\\right|\\!|\\,|\\;|\\ |\$|\\%|%|\s+/g, "")
    .replace(/[−–]/g, "-");
  if (s.includes("=")) s = s.slice(s.lastIndexOf("=") + 1);
  s = s.replace(/\.$/, "");
  while (/^\{.*\}$|^\(.*\)$/.test(s)) s = s.slice(1, -1);
  const latex = /^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$/.exec(s);
  if (latex) {
    const q = divide(parseNumber(latex[2]!), parseNumber(latex[3]!));
    return q && latex[1] === "-" ? { num: -q.num, den: q.den } : q;
  }
  const slash = s.indexOf("/");
  if (slash > 0) return divide(parseDecimal(s.slice(0, slash)), parseDecimal(s.slice(slash + 1)));
  return parseDecimal(s);
}

// ---- answer extraction -----------------------------------------------------------------------------------

/** Contents of the last `\boxed{...}` or `\fbox{...}` (braces balanced), or null. */
export function lastBoxed(text: string): string | null {
  const start = Math.max(text.lastIndexOf("\\boxed"), text.lastIndexOf("\\fbox"));
  if (start < 0) return null;
  const open = text.indexOf("{", start);
  if (open < 0) return null;
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  return null;
}

// A number-like token: a LaTeX fraction, a/b, or a decimal. A minus counts as a sign only when not preceded by a
// word character or closing bracket (so "10-5" reads as 10 and 5).
const SIGN = String.raw`(?:(?<![\w)\]])[-−])?`;
const UNSIGNED = String.raw`(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?`;
const TOKEN = String.raw`${SIGN}\\[dt]?frac\{[^{}]+\}\{[^{}]+\}|${SIGN}${UNSIGNED}(?:\s*/\s*${UNSIGNED})?`;
const TOKEN_RE = new RegExp(TOKEN, "g");
const HASHES_RE = new RegExp(String.raw`####\s*\$?\s*(${TOKEN})`, "g");
const ANSWER_IS_RE = new RegExp(String.raw`answer\s*(?:is|:|=)\s*[:=]?\s*\$?\s*(${TOKEN})`, "gi");

function lastMatch(re: RegExp, text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(re)) last = m[1] ?? m[0];
  return last;
}

export interface ExtractOptions {
  /** When no boxed / "####" / "answer is" form is present, use the last number in the text (default true). */
  fallbackLastNumber?: boolean;
}

/** The last number-like token of the text (a/b, \frac{a}{b}, decimals, signs), or null. */
export function lastNumber(text: string): string | null {
  return lastMatch(TOKEN_RE, text);
}

/** The answer string a completion states, in priority order: last \boxed{}, last "#### X", last "answer is X", last number. */
export function extractAnswer(text: string, opts: ExtractOptions = {}): string | null {
  const boxed = lastBoxed(text);
  if (boxed !== null) return boxed;
  const hashes = lastMatch(HASHES_RE, text);
  if (hashes !== null) return hashes;
  const said = lastMatch(ANSWER_IS_RE, text);
  if (said !== null) return said;
  return (opts.fallbackLastNumber ?? true) ? lastMatch(TOKEN_RE, text) : null;
}

/** The answer a completion states, as an exact rational (null if none). */
export function extractNumber(text: string, opts: ExtractOptions = {}): Rational | null {
  const a = extractAnswer(text, opts);
  return a === null ? null : parseNumber(a);
}

/** A gold value from a dataset column: a number, a numeric string, or a solution text ("#### 72", "\boxed{3/4}"). */
export function goldNumber(gold: unknown): Rational | null {
  if (typeof gold === "number") return Number.isFinite(gold) ? parseDecimal(String(gold)) : null;
  if (typeof gold === "bigint") return rational(gold, 1n);
  if (typeof gold !== "string" || gold.trim() === "") return null;
  return parseNumber(gold) ?? extractNumber(gold, { fallbackLastNumber: false });
}

// ---- rewards ---------------------------------------------------------------------------------------------

export interface AccuracyOptions extends ExtractOptions {
  /** Gold column; default: `answer`, else `solution`. */
  column?: string;
  /** How answers are read (an AnswerExtractor, answer.ts); default: the forms above, else the last number. */
  answer?: { correct(text: string, gold: unknown): boolean | null };
}

function goldColumn(args: RewardArgs, column: string | undefined, tag: string): unknown[] | null {
  const names = column === undefined ? ["answer", "solution"] : [column];
  for (const name of names) {
    const col = args[name];
    if (col === undefined) continue;
    if (!Array.isArray(col) || col.length !== args.completions.length) {
      throw new RewardError(`[${tag}] column "${name}" must have one entry per completion (${args.completions.length})`);
    }
    return col;
  }
  return null;
}

/**
 * 1 if the completion's answer equals the gold answer exactly as rationals (0.75 == 3/4, 0.333 != 1/3), else 0;
 * null where a row's gold answer is empty or not a number (only numeric answers are checked). Rows without the
 * gold column at all are an error naming it (training on reward 0 would be silent).
 */
export function accuracyReward(opts: AccuracyOptions = {}): RewardFn {
  return namedReward("accuracy_reward", (args) => {
    const col = goldColumn(args, opts.column, "accuracy_reward");
    if (col === null) {
      const want = opts.column === undefined ? `an "answer" or "solution" column` : `a "${opts.column}" column`;
      const have = Object.keys(args).filter((k) => !["prompts", "completions", "completionIds"].includes(k));
      throw new RewardError(
        `[accuracy_reward] the rows have no gold answer: add ${want} to the data (columns: ${have.length ? have.join(", ") : "none besides the prompt"})`,
      );
    }
    return args.completions.map((c, i) => {
      if (opts.answer !== undefined) {
        const ok = opts.answer.correct(c, col[i]);
        return ok === null ? null : ok ? 1 : 0;
      }
      const gold = goldNumber(col[i]);
      if (gold === null) return null;
      const got = extractNumber(c, opts);
      return got !== null && rationalEquals(got, gold) ? 1 : 0;
    });
  });
}

/** 1 if the completion matches `pattern`, else 0. A string pattern is compiled with flags `s`; g/y flags are ignored. */
export function formatReward(pattern: RegExp | string, name = "format_reward"): RewardFn {
  const re = typeof pattern === "string" ? new RegExp(pattern, "s") : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  return namedReward(name, (args) => args.completions.map((c) => (re.test(c) ? 1 : 0)));
}

/** formatReward for the arithmetic task's solution format: step lines `a op b = r`, then `The answer is X.`. */
export function arithmeticFormatReward(): RewardFn {
  return formatReward(ARITHMETIC_SOLUTION_RE, "arithmetic_format_reward");
}

function completionLengths(args: RewardArgs): number[] {
  // Token counts when ids are given (TRL), else characters (equal for the lab's char-level tokenizer).
  return args.completionIds ? args.completionIds.map((ids) => ids.length) : args.completions.map((c) => c.length);
}

export interface OverlongOptions {
  /** L_max: the completion length limit. */
  maxCompletionLen: number;
  /** L_cache: the soft zone before L_max where the penalty ramps from 0 to -1. */
  softPunishCache: number;
}

/**
 * DAPO soft overlong punishment (Eq. 13 of 2503.14476; TRL `get_soft_overlong_punishment`): 0 for |y| <= L_max -
 * L_cache, ((L_max - L_cache) - |y|) / L_cache inside the cache zone (so -1 exactly at L_max), -1 beyond L_max.
 */
export function overlongPenalty(opts: OverlongOptions): RewardFn {
  const { maxCompletionLen: L, softPunishCache: C } = opts;
  if (!Number.isInteger(L) || L <= 0) throw new RewardError(`[overlongPenalty] maxCompletionLen must be a positive integer, got ${L}`);
  if (!Number.isInteger(C) || C < 0 || C > L)
    throw new RewardError(`[overlongPenalty] softPunishCache must be an integer in [0, ${L}], got ${C}`);
  return namedReward("soft_overlong_punishment_reward", (args) =>
    completionLengths(args).map((n) => (n <= L - C ? 0 : n <= L ? (L - C - n) / C : -1)),
  );
}

export interface LengthPenaltyOptions {
  /** Penalty per unit of length beyond `freeLength`. */
  coef: number;
  /** Lengths up to this are not penalised (default 0). */
  freeLength?: number;
}

/** Linear length penalty: -coef * max(0, |y| - freeLength), |y| in tokens when ids are given, else characters. */
export function lengthPenalty(opts: LengthPenaltyOptions): RewardFn {
  const free = opts.freeLength ?? 0;
  if (!(opts.coef >= 0) || !Number.isFinite(opts.coef))
    throw new RewardError(`[lengthPenalty] coef must be finite and >= 0, got ${opts.coef}`);
  if (!(free >= 0)) throw new RewardError(`[lengthPenalty] freeLength must be >= 0, got ${free}`);
  return namedReward("length_penalty_reward", (args) => completionLengths(args).map((n) => (n > free ? -opts.coef * (n - free) : 0)));
}
