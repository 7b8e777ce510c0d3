// A training run's precision (LOOP_FIELDS.precision, `--precision`): each shared loop runs at its config's precision and
// restores the process's afterwards. fp32 multiplies in float32 (TF32 tensor cores on cuda); bf16 is PyTorch-AMP-style
// autocast (fp32 master weights and optimizer state, bf16 products with fp32 accumulation in matmul and attention),
// available on cuda (and the sim test backend); the cpu and ref backends reject it, saying so.

import { getPrecision, type Precision, setPrecision } from "../backend/index.js";

/** Run fn at precision p (undefined: the current one), restoring the previous precision when it settles. */
export async function atPrecision<T>(p: Precision | undefined, fn: () => Promise<T>): Promise<T> {
  const prev = getPrecision();
  if (p === undefined || p === prev) return fn();
  setPrecision(p);
  try {
    return await fn();
  } finally {
    setPrecision(prev);
  }
}
