// Chat templates (Jinja, from a model folder: untrusted) rendered by @huggingface/jinja's interpreter and
// nothing else: no Python, no eval, no file or process access. The interpreter is bounded so a hostile
// template ends with an error instead of a hang or an out-of-memory abort: at most MAX_TEMPLATE_STEPS
// evaluations, `range()` of at most MAX_RANGE items, intermediate strings of at most MAX_RENDER_CHARS, and
// templates of at most MAX_TEMPLATE_CHARS (real ones are a few KB). Globals are the ones transformers gives.
// Not here: which template a tokenizer uses (tokenizer.ts).

import * as jinja from "@huggingface/jinja";

export class ChatTemplateError extends Error {
  override name = "ChatTemplateError";
}

export const TEMPLATE_LIMITS = Object.freeze({
  /** Characters of template source. */
  MAX_TEMPLATE_CHARS: 1_000_000,
  /** AST evaluations per render (a real chat template uses tens to hundreds per message). */
  MAX_TEMPLATE_STEPS: 2_000_000,
  /** Wall time of one render (the interpreter takes ~15 us per loop iteration). */
  MAX_RENDER_MS: 3_000,
  /** Items one range() call may produce. */
  MAX_RANGE: 100_000,
  /** Characters of any string value produced while rendering, the output included. */
  MAX_RENDER_CHARS: 32_000_000,
});

// The package's .d.ts imports "./runtime" without an extension, which node16 resolution cannot follow, so
// the two runtime classes are typed here by the little this file uses of them.
interface JinjaValue {
  value: unknown;
}
interface JinjaEnvironment {
  set(name: string, value: unknown): unknown;
}
interface JinjaInterpreter {
  evaluate(statement: unknown, environment: JinjaEnvironment): JinjaValue;
  run(program: unknown): JinjaValue;
}
const Environment = jinja.Environment as unknown as new () => JinjaEnvironment;
const Interpreter = jinja.Interpreter as unknown as new (env: JinjaEnvironment) => JinjaInterpreter;
type Template = jinja.Template;

/** Interpreter that counts its steps and the size of the strings it builds. */
class BoundedInterpreter extends Interpreter {
  private steps = 0;
  private readonly t0 = performance.now();

  override evaluate(statement: unknown, environment: JinjaEnvironment): JinjaValue {
    if (++this.steps > TEMPLATE_LIMITS.MAX_TEMPLATE_STEPS) {
      throw new ChatTemplateError(`rendering took more than ${TEMPLATE_LIMITS.MAX_TEMPLATE_STEPS} steps`);
    }
    if ((this.steps & 1023) === 0 && performance.now() - this.t0 > TEMPLATE_LIMITS.MAX_RENDER_MS) {
      throw new ChatTemplateError(`rendering took more than ${TEMPLATE_LIMITS.MAX_RENDER_MS / 1000} s`);
    }
    const v = super.evaluate(statement, environment);
    if (typeof v.value === "string" && v.value.length > TEMPLATE_LIMITS.MAX_RENDER_CHARS) {
      throw new ChatTemplateError(`rendering built a string of ${v.value.length} characters (limit ${TEMPLATE_LIMITS.MAX_RENDER_CHARS})`);
    }
    return v;
  }
}

/** Python's range, refusing more than MAX_RANGE items. */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  for (const [k, v] of [
    ["start", start],
    ["stop", stop],
    ["step", step],
  ] as const) {
    if (!Number.isInteger(v)) throw new ChatTemplateError(`range() ${k} must be an integer, got ${v}`);
  }
  if (step === 0) throw new ChatTemplateError("range() step must not be zero");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (n > TEMPLATE_LIMITS.MAX_RANGE) throw new ChatTemplateError(`range() of ${n} items (limit ${TEMPLATE_LIMITS.MAX_RANGE})`);
  return Array.from({ length: n }, (_, i) => start + i * step);
}

/** transformers' strftime_now (the directives @huggingface/jinja implements). */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad2 = (n: number) => String(n).padStart(2, "0");
  return String(format).replace(/%[YmdbBHM%]/g, (t) => {
    const table: Record<string, () => string> = {
      "%Y": () => String(d.getFullYear()),
      "%m": () => pad2(d.getMonth() + 1),
      "%d": () => pad2(d.getDate()),
      "%b": () => new Intl.DateTimeFormat(undefined, { month: "short" }).format(d),
      "%B": () => new Intl.DateTimeFormat(undefined, { month: "long" }).format(d),
      "%H": () => pad2(d.getHours()),
      "%M": () => pad2(d.getMinutes()),
      "%%": () => "%",
    };
    return table[t]();
  });
}

const parsedCache = new Map<string, Template>();

/** Parse a template (cached by source); throws ChatTemplateError on a syntax error or an oversized source. */
export function parseChatTemplate(source: string): Template {
  let t = parsedCache.get(source);
  if (t !== undefined) return t;
  if (source.length > TEMPLATE_LIMITS.MAX_TEMPLATE_CHARS) {
    throw new ChatTemplateError(`the template has ${source.length} characters (limit ${TEMPLATE_LIMITS.MAX_TEMPLATE_CHARS})`);
  }
  try {
    t = new jinja.Template(source);
  } catch (e) {
    throw new ChatTemplateError(`cannot parse (${(e as Error).message})`);
  }
  if (parsedCache.size > 64) parsedCache.clear();
  parsedCache.set(source, t);
  return t;
}

/** Render a parsed template with `vars`, inside the bounds above; every failure is a ChatTemplateError. */
export function renderBounded(source: string, vars: Record<string, unknown>): string {
  const t = parseChatTemplate(source);
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (msg: unknown) => {
      throw new ChatTemplateError(`the template raised: ${String(msg).slice(0, 200)}`);
    },
    range: boundedRange,
    strftime_now: strftimeNow,
  };
  try {
    for (const [k, v] of Object.entries({ ...globals, ...vars })) env.set(k, v);
    const out = new BoundedInterpreter(env).run(t.parsed).value;
    if (typeof out !== "string") throw new ChatTemplateError(`rendered a ${typeof out}, not text`);
    return out;
  } catch (e) {
    if (e instanceof ChatTemplateError) throw e;
    // the interpreter's own errors, and RangeError from deep recursion or an over-long string
    throw new ChatTemplateError(`render failed (${(e as Error).message.slice(0, 300)})`);
  }
}
