// Seeded mutations for the fuzz part: bytes (truncation, bit flips, invalid UTF-8, spliced chunks), JSON
// values (huge / negative / fractional numbers, NaN strings, wrong types, deep nesting, dropped or extra
// keys, huge arrays and strings) and text (numbers swapped for extreme literals). Each mutation returns a
// short description, so a failing case can be read and replayed from (seed, target, case).
// Not here: what is mutated or how the result is judged (targets_*.ts).

import { Rng } from "../../src/nn/rng.js";

/** Numbers that break size arithmetic: zero, negatives, int32/uint32/2^52 edges, floats, denormals, 1e308. */
export const EXTREME_NUMBERS = Object.freeze([
  0,
  -1,
  1,
  2,
  3,
  -(2 ** 31),
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 33,
  2 ** 52,
  2 ** 53 + 2,
  1e9,
  1e15,
  1e18,
  1e308,
  -1e308,
  0.5,
  1.5,
  -0,
  1e-320,
  100000,
  65536,
]);

/** Strings that are numbers to a careless parser. */
export const NAN_STRINGS = Object.freeze(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-0", "0x10", "", " 12 "]);

export const WRONG_TYPES: readonly unknown[] = Object.freeze([null, true, false, "str", [], {}, [1, 2], { a: 1 }, [[]], [null], "\u0000"]);

/** A generator seeded from (seed, target name, case index): each case can be replayed alone. */
export function caseRng(seed: number, target: string, index: number): Rng {
  let h = 2166136261;
  for (const ch of `${target}#${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return new Rng((seed * 1_000_003 + h) % 2 ** 52);
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

// ---- bytes ----------------------------------------------------------------------------------------------

export type ByteMutation = (b: Buffer, rng: Rng) => [Buffer, string];

const INVALID_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
];

export const BYTE_MUTATIONS: Record<string, ByteMutation> = {
  truncate: (b, rng) => {
    const at = rng.int(b.length + 1);
    return [b.subarray(0, at), `truncate to ${at} bytes`];
  },
  bitflip: (b, rng) => {
    const out = Buffer.from(b);
    const n = 1 + rng.int(4);
    const at: number[] = [];
    for (let i = 0; i < n && out.length > 0; i++) {
      const p = rng.int(out.length);
      out[p] ^= 1 << rng.int(8);
      at.push(p);
    }
    return [out, `flip bits at ${at.join(",")}`];
  },
  invalidUtf8: (b, rng) => {
    const at = rng.int(b.length + 1);
    const bad = pick(rng, INVALID_UTF8);
    return [Buffer.concat([b.subarray(0, at), bad, b.subarray(at)]), `insert invalid UTF-8 ${bad.toString("hex")} at ${at}`];
  },
  splice: (b, rng) => {
    if (b.length < 2) return [b, "splice (too short)"];
    const from = rng.int(b.length);
    const len = 1 + rng.int(Math.min(64, b.length - from));
    const at = rng.int(b.length);
    return [Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]), `copy ${len} bytes from ${from} to ${at}`];
  },
  zeroRun: (b, rng) => {
    const out = Buffer.from(b);
    const at = rng.int(out.length + 1);
    const len = rng.int(32);
    out.fill(0, at, Math.min(out.length, at + len));
    return [out, `zero ${len} bytes at ${at}`];
  },
};

// ---- text ---------------------------------------------------------------------------------------------

/** Replace one number literal in JSON/YAML text with an extreme literal (beyond what JSON.stringify emits). */
export function mutateNumberLiteral(text: string, rng: Rng): [string, string] {
  const re = /-?\d+(\.\d+)?([eE][-+]?\d+)?/g;
  const spots = [...text.matchAll(re)];
  if (spots.length === 0) return [text, "no number literal"];
  const m = pick(rng, spots);
  const lit = pick(rng, [`1${"0".repeat(400)}`, "-1e400", "1e-400", "4294967297", "9007199254740993", "-0", "1.0e+999", "0.0000001"]);
  const at = m.index ?? 0;
  return [
    text.slice(0, at) + lit + text.slice(at + m[0].length),
    `number literal ${m[0]} -> ${lit.length > 20 ? `${lit.slice(0, 12)}...` : lit}`,
  ];
}

/** Duplicate a key of the top-level object (the last one wins in JSON.parse). */
export function duplicateKey(text: string, rng: Rng, value: unknown): [string, string] {
  const at = text.indexOf("{");
  if (at < 0) return [text, "no object"];
  const keys = [...text.matchAll(/"([A-Za-z_]+)"\s*:/g)].map((m) => m[1]);
  if (keys.length === 0) return [text, "no key"];
  const k = pick(rng, keys);
  return [`${text.slice(0, at + 1)}"${k}": ${JSON.stringify(value) ?? "null"},${text.slice(at + 1)}`, `duplicate key ${k}`];
}

// ---- JSON values --------------------------------------------------------------------------------------

type Json = unknown;
type Path = (string | number)[];

/** Every path in a JSON value (containers and leaves), up to `limit` of them (sampled evenly). */
export function jsonPaths(v: Json, limit = 20_000): Path[] {
  const out: Path[] = [];
  const walk = (x: Json, p: Path) => {
    if (out.length >= limit) return;
    out.push(p);
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) walk(x[i], [...p, i]);
    } else if (x !== null && typeof x === "object") for (const [k, y] of Object.entries(x)) walk(y, [...p, k]);
  };
  walk(v, []);
  return out;
}

function getAt(v: Json, p: Path): Json {
  let x = v;
  for (const k of p) x = (x as Record<string | number, Json>)[k];
  return x;
}

function setAt(v: Json, p: Path, value: Json | typeof DELETE): Json {
  if (p.length === 0) return value === DELETE ? null : value;
  const parent = getAt(v, p.slice(0, -1)) as Record<string | number, Json>;
  const k = p[p.length - 1];
  if (value === DELETE) {
    if (Array.isArray(parent)) parent.splice(k as number, 1);
    else delete parent[k];
  } else parent[k] = value;
  return v;
}

const DELETE = Symbol("delete");

export type JsonMutation = (v: Json, rng: Rng, paths: Path[]) => [Json, string];

const show = (p: Path) => (p.length === 0 ? "<root>" : p.map(String).join("."));

const DEEP = "\u0001deep\u0001";

/** Replace the placeholders deepNest left in the text by `depth` nested arrays or objects. */
function expandDeep(text: string): string {
  return text.replace(/"\\u0001deep\\u0001([[{])(\d+)"/g, (_, kind: string, d: string) => {
    const n = Number(d);
    return kind === "[" ? `${"[".repeat(n)}1${"]".repeat(n)}` : `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
  });
}

export const JSON_MUTATIONS: Record<string, JsonMutation> = {
  extremeNumber: (v, rng, paths) => {
    const nums = paths.filter((p) => typeof getAt(v, p) === "number");
    const p = nums.length > 0 && rng.next() < 0.8 ? pick(rng, nums) : pick(rng, paths);
    const n = pick(rng, EXTREME_NUMBERS);
    return [setAt(v, p, n), `${show(p)} = ${n}`];
  },
  nanString: (v, rng, paths) => {
    const p = pick(rng, paths);
    const s = pick(rng, NAN_STRINGS);
    return [setAt(v, p, s), `${show(p)} = ${JSON.stringify(s)}`];
  },
  wrongType: (v, rng, paths) => {
    const p = pick(rng, paths);
    const w = structuredClone(pick(rng, WRONG_TYPES));
    return [setAt(v, p, w), `${show(p)} = ${JSON.stringify(w)}`];
  },
  dropKey: (v, rng, paths) => {
    const p = pick(rng, paths.filter((q) => q.length > 0).concat([[]]));
    if (p.length === 0) return [v, "drop nothing"];
    return [setAt(v, p, DELETE), `drop ${show(p)}`];
  },
  deepNest: (v, rng, paths) => {
    // nested in the text at the end (mutateJsonText): a 100000-deep value would overflow this file's own recursion
    const p = pick(rng, paths);
    const depth = pick(rng, [100, 5_000, 100_000]);
    const kind = rng.next() < 0.5 ? "[" : "{";
    return [setAt(v, p, `${DEEP}${kind}${depth}`), `${show(p)} nested ${depth} deep`];
  },
  hugeArray: (v, rng, paths) => {
    const p = pick(rng, paths);
    const n = pick(rng, [10_000, 100_000]);
    return [setAt(v, p, new Array(n).fill(pick(rng, [0, "a", null, 1e9]))), `${show(p)} = array of ${n}`];
  },
  hugeString: (v, rng, paths) => {
    const p = pick(rng, paths);
    const n = pick(rng, [1 << 12, 1 << 18]);
    return [setAt(v, p, pick(rng, ["a", "\ud800", "é", "{%"]).repeat(n)), `${show(p)} = string of ${n} units`];
  },
  loneSurrogate: (v, rng, paths) => {
    const strs = paths.filter((p) => typeof getAt(v, p) === "string");
    if (strs.length === 0) return [v, "no string"];
    const p = pick(rng, strs);
    const s = getAt(v, p) as string;
    const at = rng.int(s.length + 1);
    return [setAt(v, p, `${s.slice(0, at)}\udc00${s.slice(at)}`), `${show(p)} gets a lone surrogate at ${at}`];
  },
  extraKey: (v, rng, paths) => {
    const objs = paths.filter((p) => {
      const x = getAt(v, p);
      return x !== null && typeof x === "object" && !Array.isArray(x);
    });
    if (objs.length === 0) return [v, "no object"];
    const p = pick(rng, objs);
    const k = pick(rng, ["__proto__", "constructor", "toString", "extra_field", "", "hasOwnProperty"]);
    const val = pick(rng, WRONG_TYPES);
    (getAt(v, p) as Record<string, Json>)[k] = structuredClone(val);
    return [v, `${show(p)}.${k} = ${JSON.stringify(val)}`];
  },
  swapValues: (v, rng, paths) => {
    const leaves = paths.filter((p) => p.length > 0);
    if (leaves.length < 2) return [v, "nothing to swap"];
    const a = pick(rng, leaves);
    const b = pick(rng, leaves);
    if (a.join("\0").startsWith(b.join("\0")) || b.join("\0").startsWith(a.join("\0"))) return [v, "swap (nested paths)"];
    const va = structuredClone(getAt(v, a));
    setAt(v, a, structuredClone(getAt(v, b)));
    setAt(v, b, va);
    return [v, `swap ${show(a)} and ${show(b)}`];
  },
};

/**
 * Apply 1-3 mutations to a copy of a JSON value (mostly structural, sometimes on its text) and return the
 * text to feed to a loader. `focus` (optional) names key paths to prefer: the fields that size allocations.
 */
export function mutateJsonText(value: Json, rng: Rng, focus: readonly Path[] = []): { text: string; what: string[] } {
  let v = structuredClone(value);
  const what: string[] = [];
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const all = jsonPaths(v);
    const focused = focus.filter((p) => {
      try {
        return getAt(v, p) !== undefined;
      } catch {
        return false;
      }
    });
    const paths = focused.length > 0 && rng.next() < 0.5 ? focused : all;
    const name = pick(rng, Object.keys(JSON_MUTATIONS));
    let d: string;
    [v, d] = JSON_MUTATIONS[name](v, rng, paths);
    what.push(d);
  }
  let text = expandDeep(JSON.stringify(v, null, rng.next() < 0.5 ? 2 : undefined) ?? "null");
  const r = rng.next();
  if (r < 0.15) {
    const [t, d] = r < 0.1 ? mutateNumberLiteral(text, rng) : duplicateKey(text, rng, pick(rng, EXTREME_NUMBERS));
    text = t;
    what.push(d);
  }
  return { text, what };
}

/** Bytes of a text after 0-2 byte-level mutations (so most inputs stay parseable JSON). */
export function maybeMutateBytes(text: string, rng: Rng, p = 0.25): { bytes: Buffer; what: string[] } {
  let b: Buffer = Buffer.from(text, "utf8");
  const what: string[] = [];
  if (rng.next() < p) {
    const name = pick(rng, Object.keys(BYTE_MUTATIONS));
    let d: string;
    [b, d] = BYTE_MUTATIONS[name](b, rng);
    what.push(d);
  }
  return { bytes: b, what };
}
