// Shared plumbing for the loss modules: the typed error, config resolution (merge with frozen defaults,
// reject unknown keys), input shape checks, and the smoothed logistic loss that DPO and CPO both use.

import { add, logSigmoid, mul, neg, shapeStr, type Tensor } from "../tensor/index.js";

export class LossError extends Error {
  override name = "LossError";
}

/** Merge `user` over `defaults`, rejecting keys the defaults do not name; `check` enforces cross-field rules. */
export function resolveConfig<C extends object>(
  component: string,
  defaults: Readonly<C>,
  user: Partial<C> | undefined,
  check?: (c: C) => void,
): C {
  const known = new Set(Object.keys(defaults));
  const merged = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(user ?? {})) {
    if (!known.has(k)) throw new LossError(`[${component}] unknown config key '${k}'; expected one of ${[...known].join(", ")}`);
    if (v !== undefined) merged[k] = v; // undefined keeps the default
  }
  check?.(merged as C);
  return merged as C;
}

export function requireShape(component: string, name: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new LossError(`[${component}] ${name} is ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
  }
}

export function requireRank(component: string, name: string, t: Tensor, rank: number): void {
  if (t.ndim !== rank) throw new LossError(`[${component}] ${name} must have ${rank} dims, got ${shapeStr(t.shape)}`);
}

export function requireOneOf<T extends string>(component: string, name: string, value: string, allowed: Record<T, unknown>): T {
  if (!Object.hasOwn(allowed, value)) {
    throw new LossError(`[${component}] ${name} must be one of ${Object.keys(allowed).join(", ")}; got '${value}'`);
  }
  return value as T;
}

/** -log sigmoid(x), stable for large |x|. */
export const negLogSigmoid = (x: Tensor) => neg(logSigmoid(x));

/** (1 - eps) * -log sigmoid(z) + eps * -log sigmoid(-z): the label-smoothed (conservative) logistic loss. */
export function smoothedLogistic(z: Tensor, eps: number): Tensor {
  return eps === 0 ? negLogSigmoid(z) : add(mul(negLogSigmoid(z), 1 - eps), mul(negLogSigmoid(neg(z)), eps));
}
