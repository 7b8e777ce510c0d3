// Reverse-mode autograd over the op records left by src/tensor/ops: topological order, one lookup per node
// in the gradient table, accumulation into leaves' `.grad`. Backward runs without recording (no
// higher-order gradients); the graph is released afterwards unless retainGraph is set. Temporaries of the
// pass come from the buffer pool (tensor.ts) and go back to it once no gradient entry references them.

import { kernels } from "../backend/index.js";
import { GRADIENTS, type GradFn } from "./gradients.js";
import { memoryCheckpoint } from "./memory.js";
import { add } from "./ops/elementwise.js";
import { clone } from "./ops/shape.js";
import { sameShape, stridesOf } from "./shape_utils.js";
import { keepStorage } from "./storage.js";
import {
  full,
  isPoolBorn,
  type Node,
  noGrad,
  releaseBuffer,
  type Storage,
  shapeStr,
  Tensor,
  TensorError,
  takeRecentBuffers,
  withBufferPool,
  zeros,
} from "./tensor.js";

/** What a released node becomes: backward through it again is an error, not a silently missing gradient. */
const RELEASED: Node = Object.freeze({ op: "<released>", inputs: [], ctx: {} }) as Node;

export interface BackwardOptions {
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop() as [Tensor, boolean];
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const inp of t.node?.inputs ?? []) if (inp.requiresGrad && !seen.has(inp)) stack.push([inp, false]);
  }
  return order; // inputs before outputs
}

/** Per-pass bookkeeping: the gradient table plus how many of its entries use each storage. */
class GradTable {
  readonly grads = new Map<Tensor, Tensor>();
  private readonly refs = new Map<Storage, number>();

  get(t: Tensor): Tensor | undefined {
    return this.grads.get(t);
  }

  referenced(data: Storage): boolean {
    return this.refs.has(data);
  }

  /** How many entries use this storage. */
  count(data: Storage): number {
    return this.refs.get(data) ?? 0;
  }

  set(t: Tensor, g: Tensor): void {
    const prev = this.grads.get(t);
    if (prev !== undefined) this.unref(prev.storage);
    this.grads.set(t, g);
    this.refs.set(g.storage, (this.refs.get(g.storage) ?? 0) + 1);
  }

  delete(t: Tensor): void {
    const prev = this.grads.get(t);
    if (prev === undefined) return;
    this.grads.delete(t);
    this.unref(prev.storage);
  }

  private unref(data: Storage): void {
    const c = (this.refs.get(data) ?? 1) - 1;
    if (c <= 0) this.refs.delete(data);
    else this.refs.set(data, c);
  }
}

function accumulate(table: GradTable, t: Tensor, g: Tensor): void {
  if (!sameShape(g.shape, t.shape)) {
    throw new TensorError(
      `[backward] gradient ${shapeStr(g.shape)} does not match tensor ${shapeStr(t.shape)} (op ${t.node?.op ?? "leaf"})`,
    );
  }
  const prev = table.get(t);
  if (prev === undefined) {
    table.set(t, g);
    return;
  }
  // a sum this pass allocated and no other entry shares is only ours: add into it instead of a new buffer
  if (isPoolBorn(prev.storage) && prev.storage !== g.storage && prev.dtype === g.dtype && table.count(prev.storage) === 1) {
    addInPlace(prev, g);
    return;
  }
  table.set(t, add(prev, g));
}

/** dst += src (same shape, dtype and device), with the backend's add kernel writing into dst. */
function addInPlace(dst: Tensor, src: Tensor): void {
  const k = kernels();
  if (dst.device !== k.device || src.device !== k.device) {
    throw new TensorError(`[backward] gradient on '${src.device}' cannot be added to one on '${dst.device}' (backend '${k.device}')`);
  }
  k.binary("add", dst.storage, dst.storage, src.storage, {
    outShape: dst.shape,
    aStrides: stridesOf(dst.shape),
    bStrides: stridesOf(dst.shape),
  });
}

/** Gradients of `root` with respect to every tensor in its graph that requires grad. */
function propagate(root: Tensor, seed: Tensor, opts: BackwardOptions): Map<Tensor, Tensor> {
  const table = new GradTable();
  noGrad(() =>
    withBufferPool(() => {
      accumulate(table, root, seed);
      const order = topoOrder(root);
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const node = t.node;
        const g = table.get(t);
        if (node === null || g === undefined) continue;
        if (node === RELEASED) {
          throw new TensorError(
            "[backward] the graph through this tensor was freed by an earlier backward(); pass { retainGraph: true } to the first call, or detach()",
          );
        }
        const rule = (GRADIENTS as Record<string, GradFn>)[node.op];
        if (rule === undefined) throw new TensorError(`[backward] op '${node.op}' has no gradient rule`);
        const inGrads = rule(g, node, t);
        node.inputs.forEach((inp, j) => {
          const gi = inGrads[j];
          if (gi && inp.requiresGrad) accumulate(table, inp, gi);
        });
        if (!opts.retainGraph) {
          table.delete(t); // interior gradients are not needed once passed on
          t.node = RELEASED;
        }
        // buffers this step allocated (rule temporaries, consumed sums) and g itself are dead unless an entry holds them
        const dead = takeRecentBuffers();
        dead.push(g.storage);
        for (const d of dead) if (!table.referenced(d)) releaseBuffer(d);
      }
    }),
  );
  return table.grads;
}

function defaultSeed(root: Tensor, grad?: Tensor): Tensor {
  if (!root.requiresGrad) throw new TensorError("[backward] tensor does not require grad (no input requires grad, or made under noGrad)");
  if (grad !== undefined) return grad;
  if (root.size !== 1) throw new TensorError(`[backward] implicit gradient needs a scalar, got ${shapeStr(root.shape)}`);
  return full(root.shape, 1, root.dtype);
}

/** loss.backward(): accumulate d(root)/d(leaf) into every leaf's `.grad`. */
export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  memoryCheckpoint(); // the forward graph is complete: usually the peak of a training step
  const leaves: Tensor[] = [];
  for (const t of topoOrder(root)) if (t.node === null && t.requiresGrad) leaves.push(t);
  const seed = defaultSeed(root, grad);
  const grads = propagate(root, seed, opts);
  // pass-through rules (add, reshape) hand one buffer to several leaves, or the caller's seed: copy so that
  // each .grad owns its storage and in-place updates (accumulation, clipping, scaling) touch one gradient only.
  // Gradients accumulate into an existing .grad in place (PyTorch semantics) and outlive any enclosing scope().
  const taken = new Set<Storage>([seed.storage]);
  noGrad(() => {
    for (const leaf of leaves) {
      const g = grads.get(leaf);
      if (g === undefined) continue;
      const prev = leaf.grad;
      if (
        prev !== null &&
        sameShape(prev.shape, g.shape) &&
        prev.dtype === g.dtype &&
        prev.device === g.device &&
        prev.storage !== g.storage
      ) {
        addInPlace(prev, g);
        continue;
      }
      if (prev !== null) leaf.grad = add(prev, g);
      else {
        const storage = taken.has(g.storage) || g.storage === leaf.storage ? clone(g).storage : g.storage;
        taken.add(storage);
        leaf.grad = new Tensor(storage, g.shape);
      }
      keepStorage(leaf.grad.storage);
    }
  });
}

/**
 * Functional gradient: runs fn, returns its value and d(value)/d(param) for each param (zeros where unused),
 * without touching `.grad`.
 */
export function grad(fn: () => Tensor, params: readonly Tensor[]): { value: Tensor; grads: Tensor[] } {
  const value = fn();
  const grads = propagate(value, defaultSeed(value), { retainGraph: true });
  for (const p of params) {
    if (!p.requiresGrad) throw new TensorError(`[grad] parameter ${p.name ?? p.toString()} does not require grad`);
  }
  return {
    value,
    grads: params.map((p) => grads.get(p) ?? zeros(p.shape, p.dtype)),
  };
}
