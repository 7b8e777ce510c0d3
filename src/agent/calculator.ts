// A calculator tool for the arithmetic tasks: a policy turn that ends with a call `<calc>17 + 25 * 2</calc>` gets
// the exact value appended (`<result>67</result>` by default); a turn without a call ends the episode. Expressions
// are integers and decimals with + - * / and parentheses, evaluated as exact rationals (usual precedence); a
// malformed call gets an error observation instead of a value, so the policy learns from it. The tags and the
// result template are options, so a small char-level vocabulary can use e.g. "[" "]" and "={value}".
// Not here: the rollout loop (src/train/sampling.ts), rewards (the answer is read from the whole completion).

import { type EnvEpisode, type Environment, EnvironmentError, type EnvTurn } from "./environment.js";

export interface CalculatorOptions {
  /** Opens a call. Default "<calc>". */
  open?: string;
  /** Closes a call (the turn's stop string). Default "</calc>". */
  close?: string;
  /** The observation; `{value}` is replaced by the result. Default "<result>{value}</result>". */
  resultTemplate?: string;
  /** The observation for a call that does not parse or divides by zero. Default "<result>error</result>". */
  errorText?: string;
  /** Tool calls per episode at most (the policy gets one more turn to answer). Default 4. */
  maxCalls?: number;
}

/** An exact rational p/q with q > 0. */
interface Q {
  p: bigint;
  q: bigint;
}

const gcd = (a: bigint, b: bigint): bigint => {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
};
const norm = (p: bigint, q: bigint): Q => {
  if (q === 0n) throw new EnvironmentError("[calculator] division by zero");
  if (q < 0n) [p, q] = [-p, -q];
  const g = gcd(p, q) || 1n;
  return { p: p / g, q: q / g };
};

/** Evaluate + - * / ( ) over integers and decimals exactly; throws on anything else. */
export function evaluateExpression(src: string): { p: bigint; q: bigint } {
  const s = src.replace(/\s+/g, "").replace(/[×x]/g, "*").replace(/÷/g, "/").replace(/−/g, "-");
  let i = 0;
  const fail = (why: string): never => {
    throw new EnvironmentError(`[calculator] cannot evaluate ${JSON.stringify(src)}: ${why}`);
  };
  const number = (): Q => {
    const m = /^\d+(?:\.\d+)?/.exec(s.slice(i));
    if (m === null) return fail(`expected a number at ${i}`);
    i += m[0].length;
    const [int, frac = ""] = m[0].split(".");
    return norm(BigInt(int + frac), 10n ** BigInt(frac.length));
  };
  const factor = (): Q => {
    if (s[i] === "-") {
      i++;
      const v = factor();
      return { p: -v.p, q: v.q };
    }
    if (s[i] === "+") {
      i++;
      return factor();
    }
    if (s[i] === "(") {
      i++;
      const v = sum();
      if (s[i] !== ")") fail(`expected ")" at ${i}`);
      i++;
      return v;
    }
    return number();
  };
  const product = (): Q => {
    let v = factor();
    while (s[i] === "*" || s[i] === "/") {
      const op = s[i++];
      const w = factor();
      v = op === "*" ? norm(v.p * w.p, v.q * w.q) : norm(v.p * w.q, v.q * w.p);
    }
    return v;
  };
  const sum = (): Q => {
    let v = product();
    while (s[i] === "+" || s[i] === "-") {
      const op = s[i++];
      const w = product();
      v = norm(op === "+" ? v.p * w.q + w.p * v.q : v.p * w.q - w.p * v.q, v.q * w.q);
    }
    return v;
  };
  if (s === "") fail("empty expression");
  const v = sum();
  if (i !== s.length) fail(`unexpected ${JSON.stringify(s[i])} at ${i}`);
  return v;
}

/** The value as text: an integer, else a terminating decimal, else a fraction "p/q". */
export function formatRational(v: { p: bigint; q: bigint }): string {
  if (v.q === 1n) return v.p.toString();
  let q = v.q;
  let twos = 0;
  let fives = 0;
  while (q % 2n === 0n) {
    q /= 2n;
    twos++;
  }
  while (q % 5n === 0n) {
    q /= 5n;
    fives++;
  }
  if (q !== 1n) return `${v.p}/${v.q}`;
  const digits = Math.max(twos, fives);
  const scaled = (v.p * 10n ** BigInt(digits)) / v.q;
  const neg = scaled < 0n;
  const abs = (neg ? -scaled : scaled).toString().padStart(digits + 1, "0");
  const out = `${abs.slice(0, abs.length - digits)}.${abs.slice(abs.length - digits)}`.replace(/\.?0+$/, "");
  return neg ? `-${out}` : out;
}

/** The calculator as an Environment (for GRPO on the arithmetic tasks). */
export function calculatorEnvironment(opts: CalculatorOptions = {}): Environment {
  const open = opts.open ?? "<calc>";
  const close = opts.close ?? "</calc>";
  const template = opts.resultTemplate ?? "<result>{value}</result>";
  const errorText = opts.errorText ?? "<result>error</result>";
  const maxCalls = opts.maxCalls ?? 4;
  if (open === "" || close === "") throw new EnvironmentError("[calculator] open and close tags must not be empty");
  if (!template.includes("{value}")) throw new EnvironmentError("[calculator] resultTemplate must contain {value}");
  return {
    name: "calculator",
    stop: [close],
    maxTurns: maxCalls + 1,
    reset(_row, _seed, tokenizer): EnvEpisode {
      let calls = 0;
      let errors = 0;
      return {
        step(turn: EnvTurn) {
          const text = turn.text;
          if (turn.finishReason !== "stop" || !text.endsWith(close)) return { observationIds: [], done: true };
          const at = text.lastIndexOf(open);
          calls++;
          let obs: string;
          let ok = false;
          if (at < 0) obs = errorText;
          else {
            try {
              obs = template.replace(
                "{value}",
                formatRational(evaluateExpression(text.slice(at + open.length, text.length - close.length))),
              );
              ok = true;
            } catch {
              obs = errorText;
            }
          }
          if (!ok) errors++;
          // the rollout loop ends the episode after maxTurns turns; the turn after the last call answers
          return {
            observationIds: tokenizer.encode(obs, { addSpecialTokens: false }),
            done: false,
            info: { tool_calls: calls, tool_errors: errors },
          };
        },
      };
    },
  };
}
