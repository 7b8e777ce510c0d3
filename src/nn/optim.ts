// Optimizers with PyTorch semantics: AdamW (decoupled weight decay, one multi-tensor `kernels().adamwMulti`
// call per step over every parameter with a gradient, per-parameter step counts as torch keeps them) and SGD
// (momentum, dampening, Nesterov, L2 weight decay). Parameters without a gradient are skipped. Optimizer state
// lives where the parameters live (fp32 on a device, kept past scope()); state dicts hold plain host arrays.
// Not here: amsgrad, maximize, learning-rate schedules (schedule.ts).

import { kernels } from "../backend/index.js";
import type { AdamwHyper, Buf } from "../backend/types.js";
import { add, keep, memoryCheckpoint, mul, noGrad, onDevice, shapeStr, type Tensor, zeros } from "../tensor/index.js";

export class OptimError extends Error {
  override name = "OptimError";
}

/** A set of parameters sharing a weight decay (HF Trainer excludes biases and norms from decay). */
export interface ParamGroup {
  params: Tensor[];
  /** Overrides the optimizer's weightDecay for this group. */
  weightDecay?: number;
}

type ParamsArg = Tensor[] | ParamGroup[];

function toGroups(params: ParamsArg): ParamGroup[] {
  if (params.length === 0) return [];
  const groups = (params[0] as ParamGroup).params !== undefined ? (params as ParamGroup[]) : [{ params: params as Tensor[] }];
  const seen = new Set<Tensor>();
  for (const g of groups) {
    for (const p of g.params) {
      if (seen.has(p)) throw new OptimError("[optim] a parameter appears twice");
      if (p.dtype === "i32") throw new OptimError("[optim] parameters must be float tensors");
      seen.add(p);
    }
  }
  return groups;
}

function checkGrad(op: string, p: Tensor, i: number): Tensor {
  const g = p.grad as Tensor;
  if (g.size !== p.size || g.dtype !== p.dtype || g.device !== p.device) {
    const where = g.device === p.device ? ["", ""] : [` on '${g.device}'`, ` on '${p.device}'`];
    throw new OptimError(
      `[${op}] parameter ${i}: grad ${g.dtype} ${shapeStr(g.shape)}${where[0]} does not match ${p.dtype} ${shapeStr(p.shape)}${where[1]}`,
    );
  }
  return g;
}

/** Zero state shaped like p, on p's device, kept past any scope(). */
function stateLike(p: Tensor): Tensor {
  return keep(zeros([p.size], p.dtype));
}

/** A state tensor for p holding `values` (a checkpoint's), or null. */
function stateFrom(values: Float32Array | Float64Array | null, p: Tensor): Tensor | null {
  if (values === null) return null;
  const t = stateLike(p);
  t.copyFrom(values);
  return t;
}

/** A host copy of a state tensor's values, as the parameter's float type. */
function hostCopy(t: Tensor | null): Float32Array | Float64Array | null {
  if (t === null) return null;
  const d = t.hostData();
  return d instanceof Float64Array ? d.slice() : Float32Array.from(d);
}

abstract class Optimizer {
  readonly groups: ParamGroup[];
  /** Learning rate used by the next step (a scheduler sets it before each step). */
  lr: number;

  constructor(params: ParamsArg, lr: number) {
    if (!(lr >= 0)) throw new OptimError(`[optim] lr must be >= 0, got ${lr}`);
    this.groups = toGroups(params);
    this.lr = lr;
  }

  /** Every parameter, in group order (the index used by state dicts). */
  params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Drop every gradient (PyTorch's zero_grad(set_to_none=True)); on a device their memory is freed now. */
  zeroGrad(): void {
    for (const p of this.params()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  abstract step(): void;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export const ADAMW_DEFAULTS = Object.freeze({ lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 });

export interface AdamWState {
  kind: "adamw";
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Per parameter (in params() order): steps taken, first and second moments (null before the first step). */
  steps: number[];
  expAvg: (Float32Array | Float64Array | null)[];
  expAvgSq: (Float32Array | Float64Array | null)[];
}

/** AdamW (Loshchilov & Hutter), exactly torch.optim.AdamW without amsgrad. */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private steps: number[];
  private m: (Tensor | null)[];
  private v: (Tensor | null)[];

  constructor(params: ParamsArg, opts: AdamWOptions = {}) {
    super(params, opts.lr ?? ADAMW_DEFAULTS.lr);
    this.betas = opts.betas ?? ADAMW_DEFAULTS.betas;
    this.eps = opts.eps ?? ADAMW_DEFAULTS.eps;
    this.weightDecay = opts.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new OptimError(`[AdamW] betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(this.eps >= 0)) throw new OptimError(`[AdamW] eps must be >= 0, got ${this.eps}`);
    const n = this.params().length;
    this.steps = new Array(n).fill(0);
    this.m = new Array(n).fill(null);
    this.v = new Array(n).fill(null);
  }

  step(): void {
    const [b1, b2] = this.betas;
    const k = kernels();
    const ps: Buf[] = [];
    const gs: Buf[] = [];
    const ms: Buf[] = [];
    const vs: Buf[] = [];
    const hyper: AdamwHyper[] = [];
    let i = 0;
    for (const group of this.groups) {
      const wd = group.weightDecay ?? this.weightDecay;
      for (const p of group.params) {
        const idx = i++;
        if (p.grad === null) continue;
        const g = checkGrad("AdamW", p, idx);
        const m = (this.m[idx] ??= stateLike(p));
        const v = (this.v[idx] ??= stateLike(p));
        const t = ++this.steps[idx];
        ps.push(onDevice("AdamW", p, k.device));
        gs.push(onDevice("AdamW", g, k.device));
        ms.push(m.storage);
        vs.push(v.storage);
        hyper.push({ lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: wd, bc1: 1 - b1 ** t, bc2: 1 - b2 ** t });
        p.hostShadow = null;
      }
    }
    if (ps.length > 0) k.adamwMulti(ps, gs, ms, vs, hyper);
    memoryCheckpoint();
  }

  stateDict(): AdamWState {
    return {
      kind: "adamw",
      lr: this.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.weightDecay,
      steps: [...this.steps],
      expAvg: this.m.map(hostCopy),
      expAvgSq: this.v.map(hostCopy),
    };
  }

  /**
   * Flat named arrays for a safetensors checkpoint: `<name>.exp_avg`, `<name>.exp_avg_sq` and `<name>.step`
   * (one element) per parameter that has stepped; `names` follow params() order (e.g. HF parameter names).
   */
  namedState(names: readonly string[]): Map<string, Float32Array> {
    this.checkNames(names);
    const out = new Map<string, Float32Array>();
    names.forEach((n, i) => {
      const m = this.m[i];
      const v = this.v[i];
      if (m === null || v === null) return;
      out.set(`${n}.exp_avg`, Float32Array.from(m.hostData()));
      out.set(`${n}.exp_avg_sq`, Float32Array.from(v.hostData()));
      out.set(`${n}.step`, Float32Array.of(this.steps[i]));
    });
    return out;
  }

  /** Inverse of namedState; parameters absent from `arrays` start fresh (step 0). */
  loadNamedState(names: readonly string[], arrays: Map<string, Float32Array>): void {
    this.checkNames(names);
    const params = this.params();
    const state = this.stateDict();
    names.forEach((n, i) => {
      const m = arrays.get(`${n}.exp_avg`);
      const v = arrays.get(`${n}.exp_avg_sq`);
      const s = arrays.get(`${n}.step`);
      if (m === undefined && v === undefined && s === undefined) {
        state.steps[i] = 0;
        state.expAvg[i] = null;
        state.expAvgSq[i] = null;
        return;
      }
      if (m === undefined || v === undefined || s === undefined || s.length !== 1) {
        throw new OptimError(`[AdamW] checkpoint state of "${n}" is incomplete (needs exp_avg, exp_avg_sq and step)`);
      }
      if (m.length !== params[i].size || v.length !== params[i].size) {
        throw new OptimError(`[AdamW] checkpoint moments of "${n}" have ${m.length} elements, the parameter has ${params[i].size}`);
      }
      state.steps[i] = s[0];
      state.expAvg[i] = m;
      state.expAvgSq[i] = v;
    });
    this.loadStateDict(state);
  }

  private checkNames(names: readonly string[]): void {
    const n = this.params().length;
    if (names.length !== n) throw new OptimError(`[AdamW] ${names.length} names given for ${n} parameters`);
  }

  /** Restore moments and steps (hyperparameters come from the constructor, except lr). */
  loadStateDict(state: AdamWState): void {
    const params = this.params();
    if (state.kind !== "adamw") throw new OptimError(`[AdamW] state is for '${state.kind}'`);
    for (const key of ["steps", "expAvg", "expAvgSq"] as const) {
      if (state[key].length !== params.length) {
        throw new OptimError(`[AdamW] state.${key} has ${state[key].length} entries, the optimizer has ${params.length} parameters`);
      }
    }
    params.forEach((p, i) => {
      for (const key of ["expAvg", "expAvgSq"] as const) {
        const a = state[key][i];
        if (a !== null && a.length !== p.size) {
          throw new OptimError(`[AdamW] state.${key}[${i}] has ${a.length} elements, parameter ${i} ${shapeStr(p.shape)} has ${p.size}`);
        }
      }
    });
    this.lr = state.lr;
    this.steps = [...state.steps];
    for (const t of [...this.m, ...this.v]) t?.dispose();
    this.m = state.expAvg.map((a, i) => stateFrom(a, params[i]));
    this.v = state.expAvgSq.map((a, i) => stateFrom(a, params[i]));
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** L2 penalty added to the gradient (torch.optim.SGD's weight_decay, not decoupled). */
  weightDecay?: number;
}

export interface SGDState {
  kind: "sgd";
  lr: number;
  momentumBuffers: (Float32Array | Float64Array | null)[];
}

/** torch.optim.SGD: g += wd p; buf = momentum buf + (1 - dampening) g (buf = g on the first step); p -= lr (nesterov ? g + momentum buf : buf). */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  private buffers: (Tensor | null)[];

  constructor(params: ParamsArg, opts: SGDOptions = {}) {
    super(params, opts.lr ?? 1e-3);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = opts.weightDecay ?? 0;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new OptimError("[SGD] nesterov needs momentum > 0 and dampening 0");
    }
    this.buffers = new Array(this.params().length).fill(null);
  }

  step(): void {
    const { momentum: mu, dampening, nesterov, lr } = this;
    let i = 0;
    noGrad(() => {
      for (const group of this.groups) {
        const wd = group.weightDecay ?? this.weightDecay;
        for (const p of group.params) {
          const idx = i++;
          if (p.grad === null) continue;
          const g = checkGrad("SGD", p, idx);
          // d = g + wd p; buf = d (first step) or mu buf + (1 - dampening) d; p -= lr (nesterov ? d + mu buf : buf)
          let d = wd === 0 ? g : add(g, mul(p, wd));
          if (mu !== 0) {
            const prev = this.buffers[idx];
            const buf = prev === null ? d : add(mul(prev, mu), mul(d, 1 - dampening));
            if (prev === null) this.buffers[idx] = keep(stateLike(p));
            (this.buffers[idx] as Tensor).assign(buf);
            d = nesterov ? add(d, mul(buf, mu)) : buf;
          }
          p.assign(add(p, mul(d, -lr)));
        }
      }
    });
    memoryCheckpoint();
  }

  stateDict(): SGDState {
    return { kind: "sgd", lr: this.lr, momentumBuffers: this.buffers.map(hostCopy) };
  }

  loadStateDict(state: SGDState): void {
    const params = this.params();
    if (state.kind !== "sgd") throw new OptimError(`[SGD] state is for '${state.kind}'`);
    if (state.momentumBuffers.length !== params.length) {
      throw new OptimError(`[SGD] state has ${state.momentumBuffers.length} buffers, the optimizer has ${params.length} parameters`);
    }
    this.lr = state.lr;
    this.buffers = state.momentumBuffers.map((b, i) => {
      if (b === null) return null;
      if (b.length !== params[i].size) throw new OptimError(`[SGD] buffer ${i} has ${b.length} elements, parameter has ${params[i].size}`);
      return stateFrom(b, params[i]);
    });
  }
}
