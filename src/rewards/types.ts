// The reward-function interface (DESIGN.md "Rewards"): a function of a batch (prompts, completions, their ids
// and every extra dataset column, one entry per completion) returning one number or null per completion,
// synchronously or as a promise. Also how a weighted list of them is called and summed, as TRL GRPO does.
// Not here: any particular reward (rule.ts; ORM, PRM and judges live in their own files).

export class RewardError extends Error {
  override name = "RewardError";
}

/** One batch. Column arrays (e.g. `answer`) are aligned with `completions`: entry i belongs to completion i. */
export interface RewardArgs {
  prompts: string[];
  completions: string[];
  completionIds?: number[][];
  [column: string]: unknown[] | undefined;
}

/** null = "no opinion" for that completion (e.g. no gold answer); it is left out of the weighted sum. */
export type RewardOutput = (number | null)[];

/** A reward function; its `name` labels its metrics (`rewards/<name>/mean`). */
export type RewardFn = ((args: RewardArgs) => RewardOutput | Promise<RewardOutput>) & { readonly name: string };

/** Give a reward function a metric name (closures are otherwise anonymous or named after a variable). */
export function namedReward(name: string, fn: (args: RewardArgs) => RewardOutput | Promise<RewardOutput>): RewardFn {
  Object.defineProperty(fn, "name", { value: name, configurable: true });
  return fn as RewardFn;
}

/** Call one reward function and check its output: one finite number or null per completion; NaN becomes null. */
export async function callReward(fn: RewardFn, args: RewardArgs): Promise<RewardOutput> {
  const out = await fn(args);
  const n = args.completions.length;
  if (!Array.isArray(out)) throw new RewardError(`[reward ${fn.name}] expected an array of ${n} rewards, got ${typeof out}`);
  if (out.length !== n) throw new RewardError(`[reward ${fn.name}] expected ${n} rewards (one per completion), got ${out.length}`);
  return out.map((r, i) => {
    if (r === null || (typeof r === "number" && Number.isNaN(r))) return null;
    if (typeof r !== "number" || !Number.isFinite(r)) {
      throw new RewardError(`[reward ${fn.name}] completion ${i}: expected a finite number or null, got ${String(r)}`);
    }
    return r;
  });
}

export interface RewardBreakdown {
  /** Names of the functions, in order. */
  names: string[];
  /** (F, N): each function's rewards, null where it abstained. */
  perFunction: RewardOutput[];
  /** (N,): Σ_k w_k r_k over the functions that gave a number (TRL `nansum`); 0 where all abstained. */
  total: number[];
  /** Completions for which every function returned null (TRL warns about these). */
  allNull: number[];
}

/**
 * Call every function on the batch (concurrently, like TRL's asyncio.gather for async rewards) and sum with
 * weights (default all 1). Null and NaN are ignored in the sum, as TRL `_calculate_rewards` does with
 * `(rewards_per_func * weights).nansum(dim=1)`; a completion with no reward at all therefore totals 0.
 */
export async function computeRewards(fns: readonly RewardFn[], args: RewardArgs, weights?: readonly number[]): Promise<RewardBreakdown> {
  if (fns.length === 0) throw new RewardError("[computeRewards] need at least one reward function");
  const w = weights ?? fns.map(() => 1);
  if (w.length !== fns.length) throw new RewardError(`[computeRewards] got ${w.length} weights for ${fns.length} reward functions`);
  if (w.some((x) => !Number.isFinite(x))) throw new RewardError(`[computeRewards] weights must be finite, got [${w.join(", ")}]`);
  const perFunction = await Promise.all(fns.map((f) => callReward(f, args)));
  const n = args.completions.length;
  const total = new Array<number>(n).fill(0);
  const allNull: number[] = [];
  for (let i = 0; i < n; i++) {
    let any = false;
    for (let k = 0; k < fns.length; k++) {
      const r = perFunction[k]![i];
      if (r === null || r === undefined) continue;
      total[i]! += w[k]! * r;
      any = true;
    }
    if (!any) allNull.push(i);
  }
  return { names: fns.map((f) => f.name), perFunction, total, allNull };
}

/** One reward function that returns the weighted nansum of `fns` (see computeRewards). */
export function combineRewards(fns: readonly RewardFn[], weights?: readonly number[], name = "combined"): RewardFn {
  if (weights !== undefined && weights.length !== fns.length) {
    throw new RewardError(`[combineRewards] got ${weights.length} weights for ${fns.length} reward functions`);
  }
  return namedReward(name, async (args) => (await computeRewards(fns, args, weights)).total);
}
