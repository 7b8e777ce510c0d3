// The `ref` definitions of the decode kernels (src/backend/types.ts, "decode"): paged KV writes, block copies,
// paged attention over block tables, per-row sampling with HF's filters, and the identity "packed" Linear weight.
// Plain float64 loops like ref.ts; `cpu` and `cuda` must agree with them. Sampling's filter semantics (HF order,
// ties by lower id) are defined here once and used by src/generate/sampling.ts too.

import type { Kernels } from "./types.js";

type DecodeKernelName =
  | "pagedKvWrite"
  | "copyBlocks"
  | "pagedAttention"
  | "sampleTokens"
  | "packedWeightSize"
  | "packWeight"
  | "linearPacked";

/**
 * Which tokens survive top-k, top-p and min-p (HF order), given temperature-scaled probabilities.
 * The survivors are always a prefix of the tokens ordered by probability (descending, ties by lower id), so
 * only its length is computed, from the sorted values (a native typed-array sort, no comparator callbacks).
 */
export function filterMask(probs: Float64Array, topK: number, topP: number, minP: number): Uint8Array {
  const v = probs.length;
  const keep = new Uint8Array(v).fill(1);
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

/** log_softmax(row / temperature)[id] in float64 (temperature <= 0 reads as 1). */
export function tokenLogprob(row: ArrayLike<number>, id: number, temperature = 1): number {
  const t = temperature > 0 ? temperature : 1;
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) mx = Math.max(mx, row[j] / t);
  let s = 0;
  for (let j = 0; j < row.length; j++) s += Math.exp(row[j] / t - mx);
  return row[id] / t - mx - Math.log(s);
}

/** One row of sampleTokens: the chosen id and its log-prob (see Kernels.sampleTokens). */
export function sampleRow(
  row: ArrayLike<number>,
  temperature: number,
  topK: number,
  topP: number,
  minP: number,
  uniform: number,
): { id: number; logprob: number } {
  const v = row.length;
  if (temperature <= 0) {
    let id = 0;
    for (let j = 1; j < v; j++) if (row[j] > row[id]) id = j;
    return { id, logprob: tokenLogprob(row, id, 1) };
  }
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
  const keep = filterMask(probs, topK, topP, minP);
  let total = 0;
  for (let j = 0; j < v; j++) if (keep[j]) total += probs[j];
  let r = uniform * total;
  let id = -1;
  for (let j = 0; j < v; j++) {
    if (!keep[j]) continue;
    id = j; // a uniform that rounds to 1 ends on the last kept token
    r -= probs[j];
    if (r < 0) break;
  }
  return { id, logprob: scaled[id] - mx - Math.log(z) };
}

export const refDecodeKernels: Pick<Kernels, DecodeKernelName> = {
  pagedKvWrite(kCache, vCache, k, v, slots, n, hkv, dh, blockSize) {
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      if (slot < 0) continue;
      const blk = Math.floor(slot / blockSize);
      const row = slot % blockSize;
      for (let g = 0; g < hkv; g++) {
        const kt = (blk * hkv + g) * dh * blockSize + row; // keys transposed within a block
        const vo = ((blk * hkv + g) * blockSize + row) * dh;
        const src = (i * hkv + g) * dh;
        for (let d = 0; d < dh; d++) {
          kCache[kt + d * blockSize] = k[src + d];
          vCache[vo + d] = v[src + d];
        }
      }
    }
  },

  copyBlocks(cache, src, dst, n, blockElems) {
    for (let i = 0; i < n; i++) cache.copyWithin(dst[i] * blockElems, src[i] * blockElems, (src[i] + 1) * blockElems);
  },

  pagedAttention(out, q, kCache, vCache, blockTables, contextLens, queryStarts, numSeqs, h, hkv, dh, blockSize, maxBlocks, scale) {
    const group = h / hkv;
    const acc = new Float64Array(dh);
    for (let s = 0; s < numSeqs; s++) {
      const q0 = queryStarts[s];
      const qn = queryStarts[s + 1] - q0;
      const ctx = contextLens[s];
      const scores = new Float64Array(ctx);
      // element offsets of key j, dim 0 (keys step blockSize per dim) and of value row j, for kv head g
      const block = (j: number, g: number) => blockTables[s * maxBlocks + Math.floor(j / blockSize)] * hkv + g;
      const keyAt = (j: number, g: number) => block(j, g) * dh * blockSize + (j % blockSize);
      const valueAt = (j: number, g: number) => (block(j, g) * blockSize + (j % blockSize)) * dh;
      for (let i = 0; i < qn; i++) {
        const visible = ctx - qn + i + 1; // keys [0, visible)
        for (let hi = 0; hi < h; hi++) {
          const g = Math.floor(hi / group);
          const qo = ((q0 + i) * h + hi) * dh;
          let mx = Number.NEGATIVE_INFINITY;
          for (let j = 0; j < visible; j++) {
            const ko = keyAt(j, g);
            let dot = 0;
            for (let d = 0; d < dh; d++) dot += q[qo + d] * kCache[ko + d * blockSize];
            scores[j] = dot * scale;
            if (scores[j] > mx) mx = scores[j];
          }
          acc.fill(0);
          let z = 0;
          for (let j = 0; j < visible; j++) {
            const p = Math.exp(scores[j] - mx);
            z += p;
            const vo = valueAt(j, g);
            for (let d = 0; d < dh; d++) acc[d] += p * vCache[vo + d];
          }
          for (let d = 0; d < dh; d++) out[qo + d] = visible > 0 ? acc[d] / z : 0;
        }
      }
    }
  },

  sampleTokens(ids, logprobs, logits, temperature, topK, topP, minP, uniform, rows, v) {
    for (let r = 0; r < rows; r++) {
      const c = sampleRow(logits.subarray(r * v, (r + 1) * v), temperature[r], topK[r], topP[r], minP[r], uniform[r]);
      ids[r] = c.id;
      logprobs[r] = c.logprob;
    }
  },

  packedWeightSize: (n, k) => n * k,

  packWeight(out, w, n, k) {
    out.set(w.subarray(0, n * k));
  },

  linearPacked(y, x, packed, m, n, k) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += x[i * k + p] * packed[j * k + p];
        y[i * n + j] = s;
      }
    }
  },
};
