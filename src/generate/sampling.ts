// Choosing the next token from one row of logits: greedy, temperature, top-k, top-p (nucleus), min-p.
// Filters follow HF's logits processors (temperature first, then top-k, top-p, min-p); the returned
// log-prob is log_softmax(logits / temperature) at the chosen token, before filtering, which is what a
// teacher-forced forward pass at the same temperature computes (TRL's old/ref log-probs).

export interface SamplingOptions {
  /** 0 (or doSample false) means greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK?: number;
  /** Keep the smallest set whose probability mass reaches p; 1 disables. */
  topP?: number;
  /** Drop tokens whose probability is below minP × the top probability; 0 disables. */
  minP?: number;
  doSample?: boolean;
}

export interface Choice {
  id: number;
  logprob: number;
}

export class SamplingError extends Error {
  override name = "SamplingError";
}

export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new SamplingError(`[sampling] temperature must be >= 0, got ${t}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0))
    throw new SamplingError(`[sampling] topK must be an integer >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new SamplingError(`[sampling] topP must be in (0, 1], got ${o.topP}`);
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) throw new SamplingError(`[sampling] minP must be in [0, 1], got ${o.minP}`);
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

/** log_softmax(row / temperature)[id] computed in float64. */
export function tokenLogprob(row: ArrayLike<number>, id: number, temperature = 1): number {
  const t = temperature > 0 ? temperature : 1;
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) mx = Math.max(mx, row[j] / t);
  let s = 0;
  for (let j = 0; j < row.length; j++) s += Math.exp(row[j] / t - mx);
  return row[id] / t - mx - Math.log(s);
}

/** Pick a token from one row of logits; `uniform` returns numbers in [0, 1). */
export function sampleToken(row: ArrayLike<number>, opts: SamplingOptions, uniform: () => number): Choice {
  const temperature = opts.temperature ?? 1;
  const greedy = opts.doSample === false || temperature === 0;
  if (greedy) {
    const id = argmax(row);
    return { id, logprob: tokenLogprob(row, id, 1) };
  }
  const v = row.length;
  const scaled = new Float64Array(v);
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < v; j++) {
    scaled[j] = row[j] / temperature;
    if (scaled[j] > mx) mx = scaled[j];
  }
  const probs = new Float64Array(v);
  let z = 0;
  for (let j = 0; j < v; j++) z += probs[j] = Math.exp(scaled[j] - mx);
  for (let j = 0; j < v; j++) probs[j] /= z;
  const keep = filterMask(probs, opts);
  let total = 0;
  for (let j = 0; j < v; j++) if (keep[j]) total += probs[j];
  let r = uniform() * total;
  let id = -1;
  for (let j = 0; j < v; j++) {
    if (!keep[j]) continue;
    id = j;
    r -= probs[j];
    if (r < 0) break;
  }
  return { id, logprob: scaled[id] - mx - Math.log(z) };
}

/**
 * Which tokens survive top-k, top-p and min-p (HF order), given temperature-scaled probabilities.
 * The survivors are always a prefix of the tokens ordered by probability (descending, ties by lower id), so
 * only its length is computed, from the sorted values (a native typed-array sort, no comparator callbacks).
 */
export function filterMask(probs: Float64Array, opts: SamplingOptions): Uint8Array {
  const v = probs.length;
  const keep = new Uint8Array(v).fill(1);
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  const minP = opts.minP ?? 0;
  if (v === 0 || (topK <= 0 && topP >= 1 && minP <= 0)) return keep;
  const asc = Float64Array.from(probs).sort(); // ascending; sorted[r] (descending rank r) = asc[v - 1 - r]
  const at = (r: number) => asc[v - 1 - r];
  let n = topK > 0 && topK < v ? topK : v; // kept prefix length
  if (topP < 1) {
    // HF TopP: over the kept tokens renormalised, drop those whose cumulative mass (ascending) is <= 1 - p;
    // the top token always stays
    let kept = 0;
    for (let r = 0; r < n; r++) kept += at(r);
    let cum = 0;
    while (n > 1) {
      cum += at(n - 1) / kept;
      if (cum > 1 - topP) break;
      n--;
    }
  }
  if (minP > 0) {
    const floor = minP * at(0);
    while (n > 1 && at(n - 1) < floor) n--;
  }
  if (n === v) return keep;
  // the first n in (probability desc, id asc) order: everything above the boundary value, then ties by id
  const boundary = at(n - 1);
  let above = 0;
  for (let j = 0; j < v; j++) if (probs[j] > boundary) above++;
  let ties = n - above;
  for (let j = 0; j < v; j++) {
    if (probs[j] > boundary) continue;
    if (probs[j] === boundary && ties > 0) ties--;
    else keep[j] = 0;
  }
  return keep;
}
