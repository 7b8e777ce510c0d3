// Module: a tree of named parameters and child modules, with PyTorch/HF dotted names
// (`model.layers.0.self_attn.q_proj.weight`), state dicts, train/eval mode and requires-grad toggles.
// A parameter shared by two modules (tied embeddings) is listed once, under its first name.
// Parameters persist on a device (they outlive scope()), and `to()` moves the whole tree in place.
// Not here: forward signatures (each module defines its own), hooks, buffers.

import type { BackendName } from "../backend/index.js";
import { withBackend } from "../backend/index.js";
import { keep, shapeStr, Tensor } from "../tensor/index.js";

export class ModuleError extends Error {
  override name = "ModuleError";
}

/** Anything with a shape and a flat array: a Tensor, or a tensor read from safetensors. */
export interface TensorLike {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

export type StateDictInput = Map<string, TensorLike> | Record<string, TensorLike>;

export interface LoadStateDictOptions {
  /** Missing or unexpected keys are errors (default true). Shape mismatches are always errors. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** The values of a state-dict entry: a tensor's (one download on a device) or a loaded array's. */
function valuesOf(src: TensorLike): ArrayLike<number> {
  return src instanceof Tensor ? src.hostData() : src.data;
}

const MAX_LISTED = 8;

function listKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, MAX_LISTED).map((k) => `"${k}"`);
  return keys.length > MAX_LISTED ? `${shown.join(", ")} and ${keys.length - MAX_LISTED} more` : shown.join(", ");
}

export class Module {
  /** False after eval(); modules with train-only behaviour (dropout) read it. */
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Register a parameter under a local name; it becomes trainable (requiresGrad). */
  protected registerParameter(name: string, t: Tensor): Tensor {
    if (name.includes(".") || name === "") throw new ModuleError(`[module] parameter name "${name}" must be non-empty without dots`);
    if (this._params.has(name) || this._children.has(name)) throw new ModuleError(`[module] "${name}" is registered twice`);
    if (t.dtype === "i32") throw new ModuleError(`[module] parameter "${name}" must be a float tensor, got i32`);
    t.requiresGrad = true;
    t.hostShadow = null; // parameters change in place: a host copy of their first values would go stale
    keep(t);
    this._params.set(name, t);
    return t;
  }

  /** Register a child module under a local name (its parameters get the `name.` prefix). */
  protected registerModule<M extends Module>(name: string, m: M): M {
    if (name.includes(".") || name === "") throw new ModuleError(`[module] module name "${name}" must be non-empty without dots`);
    if (this._params.has(name) || this._children.has(name)) throw new ModuleError(`[module] "${name}" is registered twice`);
    this._children.set(name, m);
    return m;
  }

  /** Child modules with their local names, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._children.entries()];
  }

  /** Every module in the tree (this one first, name ""), depth first. */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this._children) yield* child.namedModules(prefix === "" ? name : `${prefix}.${name}`);
  }

  /** [dottedName, tensor] for every parameter, in registration order; shared tensors appear once. */
  *namedParameters(prefix = ""): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [name, t] of m._params) {
        if (seen.has(t)) continue;
        seen.add(t);
        yield [modName === "" ? name : `${modName}.${name}`, t];
      }
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  /** Parameters that currently require grad (what an optimizer should get). */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((t) => t.requiresGrad);
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** name → parameter (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters());
  }

  /**
   * Copy values into the parameters (tensors keep their identity, so optimizers stay attached).
   * Throws on any shape mismatch; with strict (default) also on missing or unexpected keys.
   */
  loadStateDict(state: StateDictInput, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const entries = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !entries.has(k));
    const unexpectedKeys = [...entries.keys()].filter((k) => !own.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts: string[] = [];
      if (missingKeys.length > 0) parts.push(`missing key(s) ${listKeys(missingKeys)}`);
      if (unexpectedKeys.length > 0) parts.push(`unexpected key(s) ${listKeys(unexpectedKeys)}`);
      throw new ModuleError(`[loadStateDict] ${parts.join("; ")}`);
    }
    // validate every shape before copying anything, so a failed load leaves the model untouched
    for (const [name, p] of own) {
      const src = entries.get(name);
      if (src === undefined) continue;
      const same = src.shape.length === p.shape.length && src.shape.every((d, i) => d === p.shape[i]);
      if (!same) {
        throw new ModuleError(
          `[loadStateDict] shape mismatch for "${name}": checkpoint ${shapeStr(src.shape)}, model ${shapeStr(p.shape)}`,
        );
      }
      if (valuesOf(src) instanceof Int32Array) throw new ModuleError(`[loadStateDict] "${name}" holds integers; a float tensor is needed`);
    }
    for (const [name, p] of own) {
      const src = entries.get(name);
      if (src !== undefined) p.copyFrom(valuesOf(src));
    }
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Move every parameter (and gradient) to the device of `backend` (default: the current backend) in place, so
   * optimizers and tied weights keep their references. A no-op for parameters already there.
   */
  to(backend?: BackendName): this {
    const move = () => {
      for (const p of this.parameters()) {
        p.moveInPlace();
        p.grad?.moveInPlace();
      }
    };
    if (backend === undefined) move();
    else withBackend(backend, move);
    return this;
  }

  /** Set training mode on the whole tree. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Set requiresGrad on every parameter of the tree. */
  requiresGrad(flag = true): this {
    for (const t of this.parameters()) t.requiresGrad = flag;
    return this;
  }

  /** Stop training every parameter (a frozen reference model, a frozen base under LoRA). */
  freeze(): this {
    return this.requiresGrad(false);
  }

  unfreeze(): this {
    return this.requiresGrad(true);
  }

  /** Drop every parameter's gradient (on a device its memory is freed now). */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }
}

/** An indexed list of modules, named "0", "1", ... (HF's `layers.0`). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i];
    if (m === undefined) throw new ModuleError(`[ModuleList] index ${i} out of range [0, ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
