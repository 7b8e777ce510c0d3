// Reverse-mode autograd over the op records left by src/tensor/ops: topological order, one lookup per node
// in the gradient table, accumulation into leaves' `.grad`. Backward runs without recording (no
// higher-order gradients); the graph is released afterwards unless retainGraph is set.

import { GRADIENTS, type GradFn } from "./gradients.js";
import { add } from "./ops/elementwise.js";
import { sameShape } from "./shape_utils.js";
import { type Node, noGrad, type Storage, shapeStr, Tensor, TensorError, tensor } from "./tensor.js";

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

function accumulate(grads: Map<Tensor, Tensor>, t: Tensor, g: Tensor): void {
  if (!sameShape(g.shape, t.shape)) {
    throw new TensorError(
      `[backward] gradient ${shapeStr(g.shape)} does not match tensor ${shapeStr(t.shape)} (op ${t.node?.op ?? "leaf"})`,
    );
  }
  const prev = grads.get(t);
  grads.set(t, prev === undefined ? g : add(prev, g));
}

/** Gradients of `root` with respect to every tensor in its graph that requires grad. */
function propagate(root: Tensor, seed: Tensor, opts: BackwardOptions): Map<Tensor, Tensor> {
  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    accumulate(grads, root, seed);
    const order = topoOrder(root);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const node = t.node;
      const g = grads.get(t);
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
        if (gi && inp.requiresGrad) accumulate(grads, inp, gi);
      });
      if (!opts.retainGraph) {
        grads.delete(t); // interior gradients are not needed once passed on
        t.node = RELEASED;
      }
    }
  });
  return grads;
}

function defaultSeed(root: Tensor, grad?: Tensor): Tensor {
  if (!root.requiresGrad) throw new TensorError("[backward] tensor does not require grad (no input requires grad, or made under noGrad)");
  if (grad !== undefined) return grad;
  if (root.size !== 1) throw new TensorError(`[backward] implicit gradient needs a scalar, got ${shapeStr(root.shape)}`);
  return tensor(1, { dtype: root.dtype, shape: root.shape });
}

/** loss.backward(): accumulate d(root)/d(leaf) into every leaf's `.grad`. */
export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  const leaves: Tensor[] = [];
  for (const t of topoOrder(root)) if (t.node === null && t.requiresGrad) leaves.push(t);
  const seed = defaultSeed(root, grad);
  const grads = propagate(root, seed, opts);
  // pass-through rules (add, reshape) hand one buffer to several leaves, or the caller's seed: copy so that
  // each .grad owns its storage and in-place updates (clipping, scaling) touch one gradient only
  const taken = new Set<Storage>([seed.data]);
  noGrad(() => {
    for (const leaf of leaves) {
      const g = grads.get(leaf);
      if (g === undefined) continue;
      if (leaf.grad === null) {
        const data = taken.has(g.data) || g.data === leaf.data ? g.data.slice() : g.data;
        taken.add(data);
        leaf.grad = new Tensor(data, g.shape);
      } else leaf.grad = add(leaf.grad, g);
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
    grads: params.map((p) => grads.get(p) ?? new Tensor(new (p.data.constructor as Float32ArrayConstructor)(p.size), p.shape)),
  };
}
