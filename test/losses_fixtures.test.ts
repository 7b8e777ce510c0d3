// Oracle test for src/losses: every case of shared/fixtures/losses/losses.json (float64 PyTorch, TRL
// definitions) is recomputed here — loss, every `expected.*` and every `grad.*` via backward — in f64 on
// `ref` (tight tolerance) and in f32 on every available backend (the README's tolerances). A case whose kind,
// config key or loss type we do not handle fails; nothing is skipped.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { withBackend } from "../src/backend/index.js";
import {
  bradleyTerryLoss,
  cpoLoss,
  dpoLoss,
  gae,
  grpoAdvantages,
  grpoLoss,
  ktoLoss,
  orpoLoss,
  ppoLoss,
  prmStepLoss,
  rlooAdvantages,
} from "../src/losses/index.js";
import { type FloatDType, type Tensor, tensor } from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";

type Nested = number | Nested[];
interface Case {
  kind: string;
  config: Record<string, unknown>;
  inputs: Record<string, Nested>;
  loss?: number;
  grad?: Record<string, Nested>;
  expected?: Record<string, Nested>;
}

const FIXTURE = new URL("../../shared/fixtures/losses/losses.json", import.meta.url);
const { cases } = JSON.parse(readFileSync(FIXTURE, "utf8")) as { cases: Case[] };

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const camelKeys = <T>(o: Record<string, T>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [camel(k), v]));

type Outputs = Record<string, Tensor | undefined> & { loss?: Tensor };
type Inputs = Record<string, Tensor>;
type Config = Record<string, unknown>;

/** The fixture's untyped records, handed to a typed loss; the loss itself validates names and shapes. */
const as = <T>(x: object) => x as T;

/** One runner per fixture kind: camelCased inputs and config in, `{ loss?, ...expected }` out. */
const RUNNERS: Record<string, (i: Inputs, c: Config) => Outputs> = {
  dpo: (i, c) => ({ ...dpoLoss(as(i), as(c)) }),
  kto: (i, c) => ({ ...ktoLoss(as(i), as(c)) }),
  orpo: (i, c) => ({ ...orpoLoss(as(i), as(c)) }),
  cpo: (i, c) => ({ ...cpoLoss(as(i), as(c)) }),
  // config.margin says whether the margin column is used
  reward: (i, { margin, ...c }) => ({ ...bradleyTerryLoss(as({ ...i, margin: margin ? i.margin : undefined }), as(c)) }),
  prm: (i, c) => {
    assert.deepEqual(c, {}, "prm takes no config");
    return { ...prmStepLoss(as(i)) };
  },
  grpo_advantages: (i, c) => ({ advantages: grpoAdvantages(i.rewards, as(c)) }),
  rloo_advantages: (i, c) => ({ advantages: rlooAdvantages(i.rewards, as(c)) }),
  gae: (i, c) => ({ ...gae(as(i), as(c)) }),
  grpo: (i, c) => ({ ...grpoLoss(as(i), as(c)) }),
  ppo: (i, c) => ({ ...ppoLoss(as(i), as(c)) }),
};

interface Mode {
  backend: "ref" | "cpu";
  dtype: FloatDType;
  /** |got - want| <= max(rel * |want|, abs) for loss / expected. */
  rel: number;
  abs: number;
  /** |dgot - dwant| <= gradRel * max|dwant| (or gradAbs when that is 0). */
  gradRel: number;
  gradAbs: number;
}

const MODES: Mode[] = [
  { backend: "ref", dtype: "f64", rel: 1e-9, abs: 1e-11, gradRel: 1e-8, gradAbs: 1e-11 },
  ...testBackends().map((b): Mode => ({ backend: b, dtype: "f32", rel: 1e-4, abs: 1e-5, gradRel: 1e-3, gradAbs: 1e-6 })),
];

const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);

function shapeOf(x: Nested): number[] {
  return Array.isArray(x) ? [x.length, ...shapeOf(x[0] ?? 0)] : [];
}

/** Asserts closeness and returns the largest |diff| (reported per case, as llm.c's oracle test does). */
function checkClose(what: string, got: Tensor | undefined, want: Nested, m: Mode): number {
  assert.ok(got !== undefined, `${what}: not returned`);
  const g = Array.from(got.hostData() as ArrayLike<number>);
  const w = flat(want);
  assert.equal(g.length, w.length, `${what}: ${g.length} values, fixture has ${w.length}`);
  let worst = 0;
  for (let k = 0; k < w.length; k++) {
    const err = Math.abs(g[k] - w[k]);
    const tol = Math.max(m.rel * Math.abs(w[k]), m.abs);
    assert.ok(err <= tol, `${what}[${k}]: got ${g[k]}, want ${w[k]} (|diff| ${err.toExponential(2)} > ${tol.toExponential(2)})`);
    worst = Math.max(worst, err);
  }
  return worst;
}

function checkGrad(what: string, got: Tensor | null, want: Nested, m: Mode): number {
  const w = flat(want);
  const g = got === null ? w.map(() => 0) : Array.from(got.hostData() as ArrayLike<number>);
  assert.equal(g.length, w.length, `${what}: ${g.length} values, fixture has ${w.length}`);
  const scale = Math.max(...w.map(Math.abs));
  const tol = scale === 0 ? m.gradAbs : m.gradRel * scale;
  let worst = 0;
  for (let k = 0; k < w.length; k++) {
    const err = Math.abs(g[k] - w[k]);
    assert.ok(err <= tol, `${what}[${k}]: got ${g[k]}, want ${w[k]} (|diff| ${err.toExponential(2)} > ${tol.toExponential(2)})`);
    worst = Math.max(worst, err);
  }
  return worst;
}

/** Runs one case; returns "max |diff| value ..., grad ..." for the test's diagnostic line. */
function runCase(c: Case, m: Mode): string {
  const runner = RUNNERS[c.kind];
  assert.ok(runner !== undefined, `fixture kind '${c.kind}' has no runner (add it to RUNNERS and src/losses)`);
  const differentiable = new Set(Object.keys(c.grad ?? {}));
  const inputs: Inputs = {};
  const byFixtureName: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(c.inputs)) {
    const t = tensor(flat(value), { dtype: m.dtype, shape: shapeOf(value), requiresGrad: differentiable.has(name) });
    inputs[camel(name)] = t;
    byFixtureName[name] = t;
  }
  const out = runner(inputs, camelKeys(c.config));
  let worstValue = 0;
  let worstGrad = 0;
  if (c.loss !== undefined) {
    assert.ok(out.loss !== undefined && out.loss.size === 1, "loss: not a scalar");
    worstValue = checkClose("loss", out.loss, c.loss, m);
  }
  for (const [name, want] of Object.entries(c.expected ?? {})) {
    worstValue = Math.max(worstValue, checkClose(`expected.${name}`, out[camel(name)], want, m));
  }
  if (differentiable.size > 0) {
    assert.ok(out.loss !== undefined, "grad given but no loss returned");
    out.loss.backward();
    for (const [name, want] of Object.entries(c.grad ?? {})) {
      assert.ok(name in byFixtureName, `grad.${name} names no input`);
      worstGrad = Math.max(worstGrad, checkGrad(`grad.${name}`, byFixtureName[name].grad, want, m));
    }
  }
  return `max |diff|: values ${worstValue.toExponential(1)}, grads ${worstGrad.toExponential(1)}`;
}

describe("losses match the PyTorch fixtures", () => {
  test("fixture is present and covers every kind we expect", () => {
    const kinds = new Set(cases.map((c) => c.kind));
    for (const k of Object.keys(RUNNERS)) assert.ok(kinds.has(k), `fixture has no '${k}' case`);
    assert.ok(cases.length >= 60, `only ${cases.length} cases`);
  });
  for (const m of MODES) {
    describe(`${m.backend} ${m.dtype}`, () => {
      for (const c of cases) {
        test(`${c.kind} ${JSON.stringify(c.config)}`, (t) => t.diagnostic(withBackend(m.backend, () => runCase(c, m))));
      }
    });
  }
});
