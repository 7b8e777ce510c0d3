// The `ref` backend: plain TypeScript loops, the living definition of every kernel and the oracle in tests.
// It favours clarity over speed (no blocking, no threads) and also accepts Float64Array for gradient checks.
// It is not a fallback: `cpu`, `cuda` and `sim` must agree with it, and it is chosen only when asked.
// It multiplies in fp32/fp64 only (mathModes ["fp32"]); bf16 and tf32 are rejected by the op layer.

import { refDecodeKernels } from "./ref_decode.js";
import type { AdamwHyper, BinaryOp, BroadcastLayout, FloatArray, HostArray, HostKernels, UnaryOp } from "./types.js";

const LN2 = Math.LN2;

function softplus(x: number): number {
  // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(1 - e^x) for x <= 0, stable on both sides of -ln 2 (Mächler 2012). */
function log1mexp(x: number): number {
  return x > -LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x));
}

export const UNARY_FNS: Record<UnaryOp, (x: number, p0: number, p1: number) => number> = {
  neg: (x) => -x,
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  log1p: (x) => Math.log1p(x),
  expm1: (x) => Math.expm1(x),
  sqrt: (x) => Math.sqrt(x),
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: (x) => Math.abs(x),
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  sigmoid,
  tanh: (x) => Math.tanh(x),
  relu: (x) => (x > 0 ? x : 0),
  silu: (x) => x * sigmoid(x),
  softplus,
  logSigmoid: (x) => -softplus(-x),
  log1mexp,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  powScalar: (x, p) => x ** p,
  clamp: (x, lo, hi) => (x < lo ? lo : x > hi ? hi : x),
  addScalar: (x, p) => x + p,
  mulScalar: (x, p) => x * p,
  gtScalar: (x, p) => (x > p ? 1 : 0),
  siluGrad: (x) => {
    const s = sigmoid(x);
    return s * (1 + x * (1 - s));
  },
};

export const BINARY_FNS: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  minimum: (a, b) => (a < b ? a : b),
  maximum: (a, b) => (a > b ? a : b),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  eq: (a, b) => (a === b ? 1 : 0),
};

function binary(op: BinaryOp, out: FloatArray, a: FloatArray, b: FloatArray, layout: BroadcastLayout): void {
  const f = BINARY_FNS[op];
  const n = out.length;
  if (a.length === n && b.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
    return;
  }
  if (b.length === 1 && a.length === n) {
    const bv = b[0];
    for (let i = 0; i < n; i++) out[i] = f(a[i], bv);
    return;
  }
  if (a.length === 1 && b.length === n) {
    const av = a[0];
    for (let i = 0; i < n; i++) out[i] = f(av, b[i]);
    return;
  }
  const { outShape, aStrides, bStrides } = layout;
  const nd = outShape.length;
  const idx = new Array<number>(nd).fill(0);
  let ia = 0;
  let ib = 0;
  for (let i = 0; i < n; i++) {
    out[i] = f(a[ia], b[ib]);
    // odometer increment over outShape, tracking input offsets
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      ia += aStrides[d];
      ib += bStrides[d];
      if (idx[d] < outShape[d]) break;
      ia -= aStrides[d] * outShape[d];
      ib -= bStrides[d] * outShape[d];
      idx[d] = 0;
    }
  }
}

function copyStrided(
  out: FloatArray | Int32Array,
  x: FloatArray | Int32Array,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): void {
  const nd = shape.length;
  const n = out.length;
  if (nd === 0) {
    if (n > 0) out[0] = x[offset];
    return;
  }
  const idx = new Array<number>(nd).fill(0);
  let ix = offset;
  const last = nd - 1;
  const lastLen = shape[last];
  const lastStride = strides[last];
  for (let i = 0; i < n; i += lastLen) {
    for (let j = 0; j < lastLen; j++) out[i + j] = x[ix + j * lastStride];
    for (let d = last - 1; d >= 0; d--) {
      idx[d]++;
      ix += strides[d];
      if (idx[d] < shape[d]) break;
      ix -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

function copyToStrided(out: HostArray, x: HostArray, shape: readonly number[], strides: readonly number[], offset: number): void {
  const nd = shape.length;
  const n = x.length;
  if (nd === 0) {
    if (n > 0) out[offset] = x[0];
    return;
  }
  const idx = new Array<number>(nd).fill(0);
  let io = offset;
  const last = nd - 1;
  const lastLen = shape[last];
  const lastStride = strides[last];
  for (let i = 0; i < n; i += lastLen) {
    for (let j = 0; j < lastLen; j++) out[io + j * lastStride] = x[i + j];
    for (let d = last - 1; d >= 0; d--) {
      idx[d]++;
      io += strides[d];
      if (idx[d] < shape[d]) break;
      io -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

function adamw(
  p: FloatArray,
  g: FloatArray,
  m: FloatArray,
  v: FloatArray,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): void {
  for (let i = 0; i < p.length; i++) {
    p[i] -= lr * weightDecay * p[i];
    m[i] = beta1 * m[i] + (1 - beta1) * g[i];
    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    p[i] -= (lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + eps);
  }
}

/** adamwMulti for host backends: the single-tensor kernel `step` over each parameter in turn. */
export function adamwEach(
  step: typeof adamw,
  params: readonly FloatArray[],
  grads: readonly FloatArray[],
  m: readonly FloatArray[],
  v: readonly FloatArray[],
  hyper: readonly AdamwHyper[],
): void {
  for (let i = 0; i < params.length; i++) {
    const h = hyper[i];
    step(params[i], grads[i], m[i], v[i], h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.bc1, h.bc2);
  }
}

function matmul(
  c: FloatArray,
  a: FloatArray,
  b: FloatArray,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  strideA: number,
  strideB: number,
  strideC: number,
  accumulate: boolean,
): void {
  // element (i, p) of op(A) and (p, j) of op(B)
  const as0 = transA ? 1 : k;
  const as1 = transA ? m : 1;
  const bs0 = transB ? 1 : n;
  const bs1 = transB ? k : 1;
  const row = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * strideA;
    const bo = bi * strideB;
    const co = bi * strideC;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = a[ao + i * as0 + p * as1];
        if (av === 0) continue;
        const bp = bo + p * bs0;
        for (let j = 0; j < n; j++) row[j] += av * b[bp + j * bs1];
      }
      const cr = co + i * n;
      if (accumulate) for (let j = 0; j < n; j++) c[cr + j] += row[j];
      else for (let j = 0; j < n; j++) c[cr + j] = row[j];
    }
  }
}

function sum(out: FloatArray, x: FloatArray, outer: number, n: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += x[(o * n + j) * inner + i];
      out[o * inner + i] = s;
    }
  }
}

function max(out: FloatArray, idx: Int32Array, x: FloatArray, outer: number, n: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = Number.NEGATIVE_INFINITY;
      let arg = 0;
      for (let j = 0; j < n; j++) {
        const v = x[(o * n + j) * inner + i];
        if (v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
          best = v;
          arg = j;
        }
      }
      out[o * inner + i] = best;
      idx[o * inner + i] = arg;
    }
  }
}

function logsumexp(out: FloatArray, x: FloatArray, outer: number, n: number, inner: number): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let mx = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < n; j++) mx = Math.max(mx, x[(o * n + j) * inner + i]);
      if (mx === Number.NEGATIVE_INFINITY || mx === Number.POSITIVE_INFINITY) {
        out[o * inner + i] = mx;
        continue;
      }
      let s = 0;
      for (let j = 0; j < n; j++) s += Math.exp(x[(o * n + j) * inner + i] - mx);
      out[o * inner + i] = mx + Math.log(s);
    }
  }
}

function gather(out: FloatArray, x: FloatArray, idx: Int32Array, outer: number, nIn: number, nIdx: number, inner: number) {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * nIdx + j) * inner + i;
        const r = idx[p];
        out[p] = r >= 0 && r < nIn ? x[(o * nIn + r) * inner + i] : Number.NaN;
      }
    }
  }
}

function scatterAdd(out: FloatArray, src: FloatArray, idx: Int32Array, outer: number, nOut: number, nIdx: number, inner: number) {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < nIdx; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * nIdx + j) * inner + i;
        const r = idx[p];
        if (r >= 0 && r < nOut) out[(o * nOut + r) * inner + i] += src[p];
      }
    }
  }
}

function softmaxRow(out: FloatArray, x: FloatArray, off: number, n: number, log: boolean): void {
  let mx = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) mx = Math.max(mx, x[off + j]);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[off + j] - mx);
  if (log) {
    const lse = mx + Math.log(s);
    for (let j = 0; j < n; j++) out[off + j] = x[off + j] - lse;
  } else {
    for (let j = 0; j < n; j++) out[off + j] = Math.exp(x[off + j] - mx) / s;
  }
}

function attentionScores(
  scores: Float64Array,
  q: FloatArray,
  k: FloatArray,
  keyMask: FloatArray | null,
  qo: number,
  ko: number,
  bi: number,
  ti: number,
  t: number,
  s: number,
  dh: number,
  scale: number,
  causal: boolean,
): number {
  // fills scores[0..s) (-Infinity where masked) and returns their max
  let mx = Number.NEGATIVE_INFINITY;
  const limit = causal ? ti + (s - t) : s - 1;
  for (let j = 0; j < s; j++) {
    if (j > limit || (keyMask !== null && keyMask[bi * s + j] === 0)) {
      scores[j] = Number.NEGATIVE_INFINITY;
      continue;
    }
    let dot = 0;
    for (let d = 0; d < dh; d++) dot += q[qo + d] * k[ko + j * dh + d];
    scores[j] = dot * scale;
    if (scores[j] > mx) mx = scores[j];
  }
  return mx;
}

export const refKernels = {
  name: "ref",
  device: "host",
  mathModes: ["fp32"],
  unary(op, out, x, p0, p1) {
    const f = UNARY_FNS[op];
    for (let i = 0; i < x.length; i++) out[i] = f(x[i], p0, p1);
  },
  binary,
  where(out, cond, a, b) {
    for (let i = 0; i < out.length; i++) out[i] = cond[i] !== 0 ? a[i] : b[i];
  },
  fill(out, value) {
    out.fill(value);
  },
  cast(out, x) {
    if (out instanceof Int32Array && !(x instanceof Int32Array)) for (let i = 0; i < x.length; i++) out[i] = Math.trunc(x[i]);
    else out.set(x);
  },
  sum,
  max,
  logsumexp,
  matmul,
  copyStrided,
  copyToStrided,
  gather,
  scatterAdd,
  indexSelect(out, table, ids, n, d, rows) {
    for (let i = 0; i < n; i++) {
      const ok = ids[i] >= 0 && ids[i] < rows;
      const src = ids[i] * d;
      for (let j = 0; j < d; j++) out[i * d + j] = ok ? table[src + j] : Number.NaN;
    }
  },
  indexAdd(table, src, ids, n, d, rows) {
    for (let i = 0; i < n; i++) {
      if (!(ids[i] >= 0 && ids[i] < rows)) continue;
      const dst = ids[i] * d;
      for (let j = 0; j < d; j++) table[dst + j] += src[i * d + j];
    }
  },
  softmax(out, x, rows, n) {
    for (let r = 0; r < rows; r++) softmaxRow(out, x, r * n, n, false);
  },
  logSoftmax(out, x, rows, n) {
    for (let r = 0; r < rows; r++) softmaxRow(out, x, r * n, n, true);
  },
  tokenLogprobs(out, lse, logits, targets, rows, v) {
    for (let r = 0; r < rows; r++) {
      const off = r * v;
      let mx = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < v; j++) mx = Math.max(mx, logits[off + j]);
      let s = 0;
      for (let j = 0; j < v; j++) s += Math.exp(logits[off + j] - mx);
      lse[r] = mx + Math.log(s);
      out[r] = targets[r] >= 0 && targets[r] < v ? logits[off + targets[r]] - lse[r] : Number.NaN;
    }
  },
  tokenLogprobsBackward(dlogits, dout, logits, lse, targets, rows, v) {
    for (let r = 0; r < rows; r++) {
      const off = r * v;
      const g = dout[r];
      for (let j = 0; j < v; j++) dlogits[off + j] = -g * Math.exp(logits[off + j] - lse[r]);
      if (targets[r] >= 0 && targets[r] < v) dlogits[off + targets[r]] += g;
    }
  },
  rmsNorm(y, rstd, x, w, rows, d, eps) {
    for (let r = 0; r < rows; r++) {
      const off = r * d;
      let ss = 0;
      for (let j = 0; j < d; j++) ss += x[off + j] * x[off + j];
      const rs = 1 / Math.sqrt(ss / d + eps);
      rstd[r] = rs;
      for (let j = 0; j < d; j++) y[off + j] = x[off + j] * rs * w[j];
    }
  },
  rmsNormBackward(dx, dw, dy, x, w, rstd, rows, d) {
    dw.fill(0);
    for (let r = 0; r < rows; r++) {
      const off = r * d;
      const rs = rstd[r];
      // y = x * rs * w; dx = rs * (dy*w) - x * rs^3 / d * sum(dy*w*x)
      let dot = 0;
      for (let j = 0; j < d; j++) dot += dy[off + j] * w[j] * x[off + j];
      const c = (rs * rs * rs * dot) / d;
      for (let j = 0; j < d; j++) {
        dx[off + j] = rs * dy[off + j] * w[j] - x[off + j] * c;
        dw[j] += dy[off + j] * x[off + j] * rs;
      }
    }
  },
  rope(out, x, cos, sin, b, h, t, dh, inverse) {
    const half = dh / 2;
    const sgn = inverse ? -1 : 1;
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        for (let ti = 0; ti < t; ti++) {
          const xo = ((bi * h + hi) * t + ti) * dh;
          const co = (bi * t + ti) * half;
          for (let i = 0; i < half; i++) {
            const c = cos[co + i];
            const s = sgn * sin[co + i];
            const x1 = x[xo + i];
            const x2 = x[xo + i + half];
            out[xo + i] = x1 * c - x2 * s;
            out[xo + i + half] = x2 * c + x1 * s;
          }
        }
      }
    }
  },
  attention(out, lse, q, k, v, keyMask, b, h, hkv, t, s, dh, scale, causal, sCap) {
    const group = h / hkv;
    const scores = new Float64Array(s);
    const acc = new Float64Array(dh);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        const kvo = (bi * hkv + Math.floor(hi / group)) * sCap * dh;
        for (let ti = 0; ti < t; ti++) {
          const qo = ((bi * h + hi) * t + ti) * dh;
          const mx = attentionScores(scores, q, k, keyMask, qo, kvo, bi, ti, t, s, dh, scale, causal);
          acc.fill(0);
          if (mx === Number.NEGATIVE_INFINITY) {
            lse[(bi * h + hi) * t + ti] = Number.NEGATIVE_INFINITY;
            for (let d = 0; d < dh; d++) out[qo + d] = 0;
            continue;
          }
          let z = 0;
          for (let j = 0; j < s; j++) {
            const p = Math.exp(scores[j] - mx);
            if (p === 0) continue;
            z += p;
            for (let d = 0; d < dh; d++) acc[d] += p * v[kvo + j * dh + d];
          }
          lse[(bi * h + hi) * t + ti] = mx + Math.log(z);
          for (let d = 0; d < dh; d++) out[qo + d] = acc[d] / z;
        }
      }
    }
  },
  attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, keyMask, b, h, hkv, t, s, dh, scale, causal) {
    const group = h / hkv;
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    const scores = new Float64Array(s);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        const kvo = (bi * hkv + Math.floor(hi / group)) * s * dh;
        for (let ti = 0; ti < t; ti++) {
          const qo = ((bi * h + hi) * t + ti) * dh;
          const l = lse[(bi * h + hi) * t + ti];
          if (l === Number.NEGATIVE_INFINITY) continue;
          attentionScores(scores, q, k, keyMask, qo, kvo, bi, ti, t, s, dh, scale, causal);
          // D = sum_d dout * out (= sum_j P_j dP_j)
          let dsum = 0;
          for (let d = 0; d < dh; d++) dsum += dout[qo + d] * out[qo + d];
          for (let j = 0; j < s; j++) {
            if (scores[j] === Number.NEGATIVE_INFINITY) continue;
            const p = Math.exp(scores[j] - l);
            let dp = 0;
            for (let d = 0; d < dh; d++) {
              dp += dout[qo + d] * v[kvo + j * dh + d];
              dv[kvo + j * dh + d] += p * dout[qo + d];
            }
            const ds = p * (dp - dsum) * scale;
            for (let d = 0; d < dh; d++) {
              dq[qo + d] += ds * k[kvo + j * dh + d];
              dk[kvo + j * dh + d] += ds * q[qo + d];
            }
          }
        }
      }
    }
  },
  swiglu(out, gate, up) {
    for (let i = 0; i < out.length; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  },
  swigluBackward(dgate, dup, dout, gate, up) {
    for (let i = 0; i < dout.length; i++) {
      const s = sigmoid(gate[i]);
      dup[i] = dout[i] * gate[i] * s;
      dgate[i] = dout[i] * up[i] * s * (1 + gate[i] * (1 - s));
    }
  },
  sort(values, indices, x, outer, n, inner, descending) {
    const order = new Array<number>(n);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const at = (j: number) => x[(o * n + j) * inner + i];
        for (let j = 0; j < n; j++) order[j] = j;
        // Array.prototype.sort is stable; NaN sorts last in both directions
        order.sort((p, q) => {
          const a = at(p);
          const c = at(q);
          if (Number.isNaN(a)) return Number.isNaN(c) ? 0 : 1;
          if (Number.isNaN(c)) return -1;
          return descending ? c - a : a - c;
        });
        for (let j = 0; j < n; j++) {
          values[(o * n + j) * inner + i] = at(order[j]);
          indices[(o * n + j) * inner + i] = order[j];
        }
      }
    }
  },
  adamw,
  adamwMulti(params, grads, m, v, hyper) {
    adamwEach(adamw, params, grads, m, v, hyper);
  },
  ...refDecodeKernels,
} satisfies HostKernels;
