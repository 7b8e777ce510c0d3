// Row-wise fused kernels written once against V: softmax / log-softmax, token log-probs (+ backward),
// RMSNorm (+ backward), RoPE, SwiGLU (+ backward) and the AdamW step. Included by fused_instance.h after
// fused_impl_elementwise.h (it reuses parallelFor and rowLse); the N-API side is fused.cc. No validation here.

// out[i] = f(x[i]) over one row on the calling thread.
template <class F>
inline void mapRow(float* out, const float* x, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(out + i, f(vload(x + i)));
  if (i < n) vstoren(out + i, f(vloadn(x + i, n - i)), n - i);
}

void softmaxKernel(float* out, const float* x, int64_t rows, int64_t n, bool log) {
  const float ninf = -__builtin_inff();
  parallelFor(rows, n * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* orow = out + r * n;
      if (log) {
        const V lse = vset1(rowLse(xr, n));
        mapRow(orow, xr, n, [&](V a) { return a - lse; });
        continue;
      }
      // max pass, then e^(x - max) written to out while summing, then one scale pass (the row stays in cache)
      V mv = vset1(ninf);
      int64_t i = 0;
      for (; i + W <= n; i += W) mv = vmax(vload(xr + i), mv);
      if (i < n) mv = vmax(vloadn(xr + i, n - i, ninf), mv);
      const V mx = vset1(vhmax(mv));
      double total = 0;  // block sums merged in double, as in rowLse
      for (int64_t b0 = 0; b0 < n; b0 += kRowBlock) {
        const int64_t b1 = std::min(n, b0 + kRowBlock);
        V s = vzero();
        for (i = b0; i + W <= b1; i += W) {
          const V e = vexp(vload(xr + i) - mx);
          vstore(orow + i, e);
          s = s + e;
        }
        if (i < b1) {
          const V e = vexp(vloadn(xr + i, b1 - i, ninf) - mx);  // padding lanes give e^-inf = 0
          vstoren(orow + i, e, b1 - i);
          s = s + e;
        }
        total += vsum(s);
      }
      const V inv = vset1(static_cast<float>(1.0 / total));
      mapRow(orow, orow, n, [&](V a) { return a * inv; });
    }
  }, 1);
}

void tokenLogprobsKernel(float* out, float* lse, const float* logits, const int32_t* targets, int64_t rows,
                         int64_t v) {
  parallelFor(rows, v * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float l = rowLse(logits + r * v, v);
      lse[r] = l;
      out[r] = logits[r * v + targets[r]] - l;
    }
  }, 1);
}

void tokenLogprobsBackwardKernel(float* dlogits, const float* dout, const float* logits, const float* lse,
                                 const int32_t* targets, int64_t rows, int64_t v) {
  parallelFor(rows, v * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const V l = vset1(lse[r]), ng = vset1(-dout[r]);
      mapRow(dlogits + r * v, logits + r * v, v, [&](V a) { return ng * vexp(a - l); });
      dlogits[r * v + targets[r]] += dout[r];
    }
  }, 1);
}

// x . y over one row with 2 accumulators.
inline float rowDot(const float* x, const float* y, int64_t n) {
  V s0 = vzero(), s1 = vzero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = vfma(vload(x + i), vload(y + i), s0);
    s1 = vfma(vload(x + i + W), vload(y + i + W), s1);
  }
  for (; i < n; i += W) {
    const int64_t c = std::min<int64_t>(W, n - i);
    s0 = vfma(vloadn(x + i, c), vloadn(y + i, c), s0);
  }
  return vsum(s0 + s1);
}

void rmsNormKernel(float* y, float* rstd, const float* x, const float* w, int64_t rows, int64_t d, double eps) {
  parallelFor(rows, d * 2, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      const double ss = rowDot(xr, xr, d);
      const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      rstd[r] = rs;
      const V rv = vset1(rs);
      int64_t i = 0;
      for (; i + W <= d; i += W) vstore(yr + i, vload(xr + i) * rv * vload(w + i));
      if (i < d) vstoren(yr + i, vloadn(xr + i, d - i) * rv * vloadn(w + i, d - i), d - i);
    }
  }, 1);
}

// dx = rs (dy w) - x rs^3 / d * sum(dy w x); dw = sum over rows of dy x rs: rows split into a fixed number of
// chunks (a function of rows and d only), each summed into its own partial, partials added in chunk order, so
// dw is the same whatever thread ran which chunk and however many threads there are.
void rmsNormBackwardKernel(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                           int64_t rows, int64_t d) {
  const int64_t chunks = (rows * d * 3 >= kParallelMin && rows > 1) ? std::min<int64_t>(rows, 16) : 1;
  std::vector<float> part(static_cast<size_t>(chunks - 1) * d);
  std::fill(dw, dw + d, 0.f);
  auto body = [&](int64_t r0, int64_t r1, float* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * d;
      const float* gr = dy + r * d;
      float* dxr = dx + r * d;
      const float rs = rstd[r];
      V dot = vzero();
      int64_t i = 0;
      for (; i < d; i += W) {
        const int64_t c = std::min<int64_t>(W, d - i);
        dot = vfma(vloadn(gr + i, c) * vloadn(w + i, c), vloadn(xr + i, c), dot);
      }
      const V cv = vset1(rs * rs * rs * vsum(dot) / static_cast<float>(d)), rv = vset1(rs);
      for (i = 0; i < d; i += W) {
        const int64_t c = std::min<int64_t>(W, d - i);
        const V g = vloadn(gr + i, c), xv = vloadn(xr + i, c);
        vstoren(dxr + i, vfnma(xv, cv, rv * g * vloadn(w + i, c)), c);
        vstoren(acc + i, vfma(g * xv, rv, vloadn(acc + i, c)), c);
      }
    }
  };
  if (chunks == 1) {
    body(0, rows, dw);
    return;
  }
  nexus::pool::forEachChunk(
      chunks, [&](int64_t c) { body(rows * c / chunks, rows * (c + 1) / chunks, c == 0 ? dw : part.data() + (c - 1) * d); },
      threadsFor(rows * d * 3));
  for (int64_t c = 1; c < chunks; ++c) {
    const float* p = part.data() + (c - 1) * d;
    for (int64_t i = 0; i < d; ++i) dw[i] += p[i];
  }
}

// Rotate-half RoPE over rows (b, h, t) of x [B, H, T, Dh]; cos/sin [B, T, Dh/2]. Safe in place (out == x):
// each chunk reads both halves before writing them.
void ropeKernel(float* out, const float* x, const float* cosv, const float* sinv, int64_t b, int64_t h, int64_t t,
                int64_t dh, bool inverse) {
  const int64_t half = dh / 2;
  const V sgn = vset1(inverse ? -1.f : 1.f);
  parallelFor(b * h * t, dh * 2, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t ti = r % t, bi = r / (h * t);
      const float* xr = x + r * dh;
      float* orow = out + r * dh;
      const float* cr = cosv + (bi * t + ti) * half;
      const float* sr = sinv + (bi * t + ti) * half;
      for (int64_t i = 0; i < half; i += W) {
        const int64_t c = std::min<int64_t>(W, half - i);
        const V cv = vloadn(cr + i, c), sv = sgn * vloadn(sr + i, c);
        const V x1 = vloadn(xr + i, c), x2 = vloadn(xr + half + i, c);
        vstoren(orow + i, vfnma(x2, sv, x1 * cv), c);
        vstoren(orow + half + i, vfma(x1, sv, x2 * cv), c);
      }
    }
  }, 1);
}

void swigluKernel(float* out, const float* gate, const float* up, int64_t n) {
  parallelFor(n, 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i += W) {
      const int64_t c = std::min<int64_t>(W, e - i);
      const V g = vloadn(gate + i, c);
      vstoren(out + i, g * vsigmoid(g) * vloadn(up + i, c), c);
    }
  });
}

void swigluBackwardKernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const V one = vset1(1.f);
  parallelFor(n, 6, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i += W) {
      const int64_t c = std::min<int64_t>(W, e - i);
      const V g = vloadn(gate + i, c), d = vloadn(dout + i, c), s = vsigmoid(g);
      vstoren(dup + i, d * g * s, c);
      vstoren(dgate + i, d * vloadn(up + i, c) * s * vfma(g, one - s, one), c);
    }
  });
}

// In place, in the reference's order and precision: each statement is evaluated in double and stored as float
// before the next reads it, so the result matches ref even where b1 m + (1 - b1) g nearly cancels (float
// constants alone would be off by 2.4e-8 relative there). Written as plain loops for the compiler to vectorise.
void adamwKernel(float* p, const float* g, float* m, float* v, int64_t n, const fk::AdamWParams& hp) {
  const double lrwd = hp.lr * hp.weightDecay, b1 = hp.beta1, b2 = hp.beta2, c1 = 1.0 - hp.beta1, c2 = 1.0 - hp.beta2;
  const double lr = hp.lr, bc1 = hp.bc1, bc2 = hp.bc2, eps = hp.eps;
  parallelFor(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double gi = g[i];
      const float p1 = static_cast<float>(p[i] - lrwd * p[i]);
      const float m1 = static_cast<float>(b1 * m[i] + c1 * gi);
      const float v1 = static_cast<float>(b2 * v[i] + c2 * gi * gi);
      p[i] = static_cast<float>(p1 - (lr * (m1 / bc1)) / (std::sqrt(v1 / bc2) + eps));
      m[i] = m1;
      v[i] = v1;
    }
  });
}
