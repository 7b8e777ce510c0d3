// Fuzz target for the native addon: every exported kernel is called with a consistent small argument list,
// then 1-3 arguments are damaged (extreme sizes such as 2^33 and 2^52, NaN / Infinity / fractions, wrong
// types, short or long arrays, shapes and strides that overflow, missing arguments). A call must either
// throw an error tagged `[cpu <kernel>]` or return without touching memory outside its arrays: every array
// is a view with guard elements on both sides, checked after the call. Runs in a child process (harness.ts),
// so a segfault or an abort is counted against its case. Not here: the kernels' numerics (test/native_*).

import { loadCpuAddon } from "../../src/backend/cpu.js";
import type { Rng } from "../../src/nn/rng.js";
import { announceCase, type FuzzTarget, type Outcome } from "./harness.js";
import { EXTREME_NUMBERS, pick } from "./mutate.js";

const GUARD = 16;
const CANARY = 0x5a5a5a5a;

/** A typed array of `n` elements inside a larger buffer whose GUARD elements on each side hold a canary. */
class Guarded {
  readonly buf: ArrayBuffer;
  readonly view: Float32Array | Int32Array;
  constructor(
    readonly kind: "f32" | "i32",
    readonly n: number,
    fill: (i: number) => number,
  ) {
    this.buf = new ArrayBuffer((n + 2 * GUARD) * 4);
    new Uint32Array(this.buf).fill(CANARY);
    this.view = kind === "f32" ? new Float32Array(this.buf, GUARD * 4, n) : new Int32Array(this.buf, GUARD * 4, n);
    for (let i = 0; i < n; i++) this.view[i] = fill(i);
  }
  intact(): boolean {
    const w = new Uint32Array(this.buf);
    for (let i = 0; i < GUARD; i++) if (w[i] !== CANARY || w[w.length - 1 - i] !== CANARY) return false;
    return true;
  }
}

type Arg = Guarded | number | boolean | string | null | undefined | unknown[] | Record<string, unknown> | Float64Array;

/** One kernel: a consistent argument list for small sizes, with which arguments are arrays of ids. */
type Make = (rng: Rng) => Arg[];

const f = (n: number, rng: Rng) => new Guarded("f32", n, () => rng.next() * 2 - 1);
const ids = (n: number, bound: number, rng: Rng) => new Guarded("i32", n, () => rng.int(Math.max(1, bound)));

const UNARY = ["exp", "log", "silu", "powScalar", "clamp", "addScalar"];
const BINARY = ["add", "mul", "div", "maximum", "eq"];

const KERNELS: Record<string, Make> = {
  unary: (r) => [pick(r, UNARY), f(12, r), f(12, r), 2, 0.5],
  binary: (r) => [pick(r, BINARY), f(12, r), f(12, r), f(4, r), { outShape: [3, 4], aStrides: [4, 1], bStrides: [0, 1] }],
  where: (r) => [f(8, r), f(8, r), f(8, r), f(8, r)],
  sum: (r) => [f(8, r), f(24, r), 2, 3, 4],
  logsumexp: (r) => [f(8, r), f(24, r), 2, 3, 4],
  max: (r) => [f(8, r), ids(8, 1, r), f(24, r), 2, 3, 4],
  copyStrided: (r) => [f(6, r), f(6, r), [2, 3], [1, 2], 0],
  copyToStrided: (r) => [f(6, r), f(6, r), [2, 3], [1, 2], 0],
  sort: (r) => [f(12, r), ids(12, 1, r), f(12, r), 2, 3, 2, r.next() < 0.5],
  gather: (r) => [f(8, r), f(12, r), ids(8, 3, r), 2, 3, 2, 2],
  scatterAdd: (r) => [f(12, r), f(8, r), ids(8, 3, r), 2, 3, 2, 2],
  indexSelect: (r) => [f(12, r), f(20, r), ids(3, 5, r), 3, 4],
  indexAdd: (r) => [f(20, r), f(12, r), ids(3, 5, r), 3, 4],
  softmax: (r) => [f(12, r), f(12, r), 3, 4],
  logSoftmax: (r) => [f(12, r), f(12, r), 3, 4],
  tokenLogprobs: (r) => [f(3, r), f(3, r), f(12, r), ids(3, 4, r), 3, 4],
  tokenLogprobsBackward: (r) => [f(12, r), f(3, r), f(12, r), f(3, r), ids(3, 4, r), 3, 4],
  rmsNorm: (r) => [f(12, r), f(3, r), f(12, r), f(4, r), 3, 4, 1e-6],
  rmsNormBackward: (r) => [f(12, r), f(4, r), f(12, r), f(12, r), f(4, r), f(3, r), 3, 4],
  rope: (r) => [f(32, r), f(32, r), f(8, r), f(8, r), 1, 2, 4, 4, false],
  attention: (r) => [f(32, r), f(8, r), f(32, r), f(16, r), f(16, r), null, 1, 2, 1, 4, 4, 4, 0.5, true],
  attentionBackward: (r) => [
    f(32, r),
    f(16, r),
    f(16, r),
    f(32, r),
    f(32, r),
    f(16, r),
    f(16, r),
    f(32, r),
    f(8, r),
    null,
    1,
    2,
    1,
    4,
    4,
    4,
    0.5,
    true,
  ],
  swiglu: (r) => [f(8, r), f(8, r), f(8, r)],
  swigluBackward: (r) => [f(8, r), f(8, r), f(8, r), f(8, r), f(8, r)],
  adamw: (r) => [f(8, r), f(8, r), f(8, r), f(8, r), 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001],
  matmul: (r) => [f(12, r), f(8, r), f(12, r), 2, 2, 3, 2, false, false, 4, 6, 6, false],
  matmulInfo: () => [],
  fmaThroughput: () => [1000],
  // decode kernels (rollout engine): paged KV cache of 4 blocks of 4 slots, 1-2 KV heads of dim 4
  pagedKvWrite: (r) => [f(64, r), f(64, r), f(24, r), f(24, r), ids(3, 8, r), 3, 2, 4, 4],
  copyBlocks: (r) => [f(64, r), ids(2, 4, r), ids(2, 4, r), 2, 16],
  pagedAttention: (r) => [
    f(24, r),
    f(24, r),
    f(64, r),
    f(64, r),
    new Guarded("i32", 4, (i) => i),
    new Guarded("i32", 2, (i) => [5, 3][i]),
    new Guarded("i32", 3, (i) => [0, 2, 3][i]),
    2,
    2,
    1,
    4,
    4,
    2,
    0.5,
  ],
  sampleTokens: (r) => [
    ids(2, 1, r),
    f(2, r),
    f(10, r),
    new Guarded("f32", 2, () => 0.8),
    ids(2, 5, r),
    new Guarded("f32", 2, () => 0.9),
    f(2, r),
    f(2, r),
    2,
    5,
  ],
  packedWeightSize: () => [4, 8],
  packWeight: (r) => [f(packed(4, 8), r), f(32, r), 4, 8],
  linearPacked: (r) => [f(12, r), f(24, r), f(packed(4, 8), r), 3, 4, 8],
};

/** Floats packWeight writes for an [n, k] weight (asked of the addon; 0 before it is loaded). */
function packed(n: number, k: number): number {
  const size = addon?.packedWeightSize;
  return typeof size === "function" ? (size(n, k) as number) : 0;
}

/** Sizes that overflow int64 products and reach computations, or are not sizes at all. */
const HOSTILE_NUMBERS = [...EXTREME_NUMBERS, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 62, 2 ** 63, 9e15, 4097];

function damage(args: Arg[], rng: Rng): string[] {
  const what: string[] = [];
  const n = 1 + rng.int(3);
  for (let k = 0; k < n && args.length > 0; k++) {
    const i = rng.int(args.length);
    const a = args[i];
    const r = rng.next();
    if (a instanceof Guarded) {
      if (r < 0.4) {
        const len = pick(rng, [0, 1, Math.max(0, a.n - 1), a.n + 1, 4096, 65536]);
        args[i] = new Guarded(a.kind, len, () => (a.kind === "i32" ? rng.int(8) - 1 : rng.next()));
        what.push(`arg ${i}: ${a.kind}[${len}]`);
      } else if (r < 0.7) {
        args[i] = a.kind === "f32" ? new Guarded("i32", a.n, () => 0) : new Guarded("f32", a.n, () => 0.5);
        what.push(`arg ${i}: wrong typed array`);
      } else if (r < 0.85 && a.kind === "i32") {
        const bad = pick(rng, [-1, 2 ** 31 - 1, -(2 ** 31), 4096, 1e6]);
        a.view[rng.int(Math.max(1, a.n))] = bad;
        what.push(`arg ${i}: an id = ${bad}`);
      } else {
        args[i] = pick(rng, [null, undefined, 3, "x", [1, 2], new Float64Array(a.n)] as Arg[]);
        what.push(`arg ${i}: ${String(args[i])}`);
      }
    } else if (Array.isArray(a)) {
      const b = [...a];
      if (r < 0.5 && b.length > 0) {
        const j = rng.int(b.length);
        b[j] = pick(rng, HOSTILE_NUMBERS);
        what.push(`arg ${i}[${j}] = ${b[j]}`);
      } else if (r < 0.6 && b.length > 0) {
        b.pop();
        what.push(`arg ${i}: rank ${b.length}`);
      } else if (r < 0.8) {
        b.push(pick(rng, HOSTILE_NUMBERS));
        what.push(`arg ${i}: rank ${b.length}`);
      } else {
        args[i] = pick(rng, ["x", null, {}, Array.from({ length: 40 }, () => 1)] as Arg[]);
        what.push(`arg ${i}: ${JSON.stringify(args[i])}`);
        continue;
      }
      args[i] = b;
    } else if (a !== null && typeof a === "object" && !(a instanceof Float64Array)) {
      const o = { ...(a as Record<string, unknown>) };
      if (Object.keys(o).length === 0) {
        args[i] = 7;
        what.push(`arg ${i} = 7`);
        continue;
      }
      const key = pick(rng, Object.keys(o));
      const arr = Array.isArray(o[key]) ? [...(o[key] as number[])] : [1];
      arr[rng.int(arr.length)] = pick(rng, HOSTILE_NUMBERS);
      o[key] = rng.next() < 0.8 ? arr : "x";
      args[i] = o;
      what.push(`arg ${i}.${key} = ${JSON.stringify(o[key])}`);
    } else if (r < 0.75) {
      args[i] = pick(rng, HOSTILE_NUMBERS);
      what.push(`arg ${i} = ${args[i]}`);
    } else if (r < 0.9) {
      args[i] = pick(rng, ["3", null, undefined, {}, [], true, "nope"] as Arg[]);
      what.push(`arg ${i} = ${JSON.stringify(args[i]) ?? "undefined"}`);
    } else {
      args.length = i;
      what.push(`only ${i} arguments`);
    }
  }
  return what;
}

/**
 * Argument lists built to pass naive range checks through integer overflow (the issue's copyStrided stride
 * 2^52 and matmul batch 2^33), or to loop over a huge dimension while every array is empty.
 */
const PRESETS: Record<string, (r: Rng) => Arg[]> = {
  copyStrided: (r) => {
    const rows = pick(r, [2049, 4096, 3]);
    return [f(4096, r), f(4, r), [rows], [pick(r, [2 ** 52, 2 ** 53 - 1, -(2 ** 52), 2 ** 51 + 1])], pick(r, [0, 3, 2 ** 52])];
  },
  copyToStrided: (r) => [f(4, r), f(4096, r), [pick(r, [2049, 4096])], [pick(r, [2 ** 52, -(2 ** 52)])], 0],
  sort: (r) => [f(4, r), ids(4, 1, r), f(4, r), pick(r, [9e15, 2 ** 40]), 0, 1, false],
  copyStrided2: (r) => [f(4096, r), f(64, r), [pick(r, [2, 64]), pick(r, [2 ** 31, 2 ** 52])], [pick(r, [2 ** 52, 1]), 2 ** 12], 0],
  matmul: (r) => {
    const batch = pick(r, [2 ** 33, 2 ** 31, 2 ** 62, 2 ** 52]);
    const st = () => pick(r, [0, 2 ** 31, 2 ** 52, 2 ** 21]);
    return [f(16, r), f(16, r), f(16, r), batch, 2, 2, pick(r, [0, 1, 2]), false, false, st(), st(), st(), r.next() < 0.5];
  },
  matmulHuge: (r) => [
    f(16, r),
    f(16, r),
    f(16, r),
    1,
    pick(r, [2 ** 32, 2 ** 52]),
    pick(r, [2 ** 32, 2 ** 21]),
    0,
    false,
    false,
    0,
    0,
    0,
    false,
  ],
  binary: (r) => [pick(r, BINARY), f(16, r), f(16, r), f(16, r), { outShape: [2 ** 32, 2 ** 32], aStrides: [0, 1], bStrides: [1, 0] }],
  sum: (r) => [f(4, r), f(4, r), pick(r, [9e15, 2 ** 40]), pick(r, [0, 1]), 0],
  max: (r) => [f(4, r), ids(4, 1, r), f(4, r), 0, pick(r, [9e15, 2 ** 40]), pick(r, [0, 5])],
  gather: (r) => [f(4, r), f(4, r), ids(4, 1, r), pick(r, [9e15, 2 ** 40]), 1, pick(r, [2 ** 40, 1]), 0],
  softmax: (r) => [f(4, r), f(4, r), pick(r, [9e15, 2 ** 40]), 0],
  rope: (r) => [f(4, r), f(4, r), f(4, r), f(4, r), 2 ** 40, 2 ** 10, 2 ** 3, 0, false],
  attention: (r) => [f(4, r), f(4, r), f(4, r), f(4, r), f(4, r), null, 2 ** 20, 2 ** 10, 1, 2 ** 10, 2 ** 10, 0, 0.5, true],
};

type Addon = Record<string, (...a: unknown[]) => unknown>;
let addon: Addon | null = null;

export const nativeTarget: FuzzTarget = {
  name: "native",
  cases: { full: 2000, quick: 100 },
  setup() {
    addon = loadCpuAddon() as unknown as Addon | null;
  },
  run(rng): Outcome {
    if (addon === null) return { kind: "rejected", what: ["native addon not built"], message: "skipped: no native addon" };
    let name: string;
    let args: Arg[];
    let what: string[];
    if (rng.next() < 0.15) {
      const preset = pick(rng, Object.keys(PRESETS));
      name = preset.replace(/\d+$|Huge$/, "");
      args = PRESETS[preset](rng);
      what = [name, `preset ${preset}: ${args.map((a) => (a instanceof Guarded ? `${a.kind}[${a.n}]` : JSON.stringify(a))).join(", ")}`];
    } else {
      name = pick(rng, Object.keys(KERNELS));
      args = KERNELS[name](rng);
      what = [name, ...damage(args, rng)];
    }
    const guarded = args.filter((a): a is Guarded => a instanceof Guarded);
    const plain = args.map((a) => (a instanceof Guarded ? a.view : a));
    announceCase(what);
    try {
      addon[name](...plain);
    } catch (e) {
      const m = (e as Error).message ?? "";
      if (!/^\[cpu[ \]]/.test(m)) return { kind: "failed", what, reason: `untagged native error: ${String(m).slice(0, 200)}` };
      if (!guarded.every((g) => g.intact())) return { kind: "failed", what, reason: `threw (${m}) after writing outside an array` };
      return { kind: "rejected", what, message: m.slice(0, 200) };
    }
    if (!guarded.every((g) => g.intact())) return { kind: "failed", what, reason: "returned after writing outside an array" };
    return { kind: "accepted", what };
  },
};
