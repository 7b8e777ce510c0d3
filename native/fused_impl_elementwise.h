// Elementwise and reduction kernels (unary, binary, where, sum, logsumexp) written once against V.
// Included by fused_instance.h inside an ISA's anonymous namespace; the N-API side is elementwise.cc.
// It does not validate sizes, coalesce broadcast layouts or pick fast paths by array length: the caller does.

// Work below this many elements stays on the calling thread: an OpenMP fork costs a few microseconds on a
// quiet machine, and milliseconds when the other core is busy (the worker has to be scheduled).
constexpr int64_t kParallelMin = 131072;
// Above it, one thread per this much work at most: with many cores a mid-sized op split over all of them spends
// more in the fork/join and in cores fetching lines another core wrote than it saves (and 2 threads still get
// kParallelMin / 2 each, exactly as before this cap).
constexpr int64_t kWorkPerThread = kParallelMin / 2;

/** Threads for `work` units: 1 below kParallelMin, else at most one per kWorkPerThread, at most all of them. */
inline int threadsFor(int64_t work) {
  const int most = omp_get_max_threads();
  if (work < kParallelMin || most < 2) return 1;
  const int64_t want = work / kWorkPerThread;
  return static_cast<int>(want < most ? want : most);
}
// Rows are summed in blocks of this many elements whose partial sums are merged in double, so a 49152-wide
// vocabulary row keeps float32-level relative accuracy even in the one-lane scalar build.
constexpr int64_t kRowBlock = 2048;

// f(begin, end) over [0, n) in contiguous chunks (about 8 per thread) claimed from the thread pool
// (thread_pool.h), so a thread whose core is busy elsewhere takes fewer of them instead of holding the call up.
// Chunk boundaries are multiples of `align` (64 floats by default) so threads never write to the same cache
// line; they depend only on n and the thread count, never on timing.
template <class F>
void parallelFor(int64_t n, int64_t workPerItem, F f, int64_t align = 64) {
  if (n <= 0) return;
  const int threads = n < 2 ? 1 : threadsFor(n * workPerItem);
  if (threads < 2) {
    f(int64_t{0}, n);
    return;
  }
  // at least kParallelMin / 8 work per chunk: claiming one costs an atomic and a few cache misses
  const int64_t chunks = std::max<int64_t>(2, std::min<int64_t>(8 * threads, n * workPerItem / (kParallelMin / 8)));
  int64_t size = (n + chunks - 1) / chunks;
  if (align > 1) size = (size + align - 1) / align * align;
  const int64_t count = (n + size - 1) / size;
  nexus::pool::forEachChunk(count, [&](int64_t i) { f(i * size, std::min(n, (i + 1) * size)); }, threads);
}

// out[i] = f(x[i]) over [0, n) with a masked tail.
template <class F>
void mapUnary(float* out, const float* x, int64_t n, int64_t cost, F f) {
  parallelFor(n, cost, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + W <= e; i += W) vstore(out + i, f(vload(x + i)));
    if (i < e) vstoren(out + i, f(vloadn(x + i, e - i)), e - i);
  });
}

double jsPow(double a, double b) {
  // JS `**` differs from C pow: 1 ** NaN and (+-1) ** +-Infinity are NaN
  if (std::isnan(b) || (std::fabs(a) == 1.0 && std::isinf(b))) return std::nan("");
  return std::pow(a, b);
}

// The math of UNARY_FNS in src/backend/ref.ts, one V lambda per op.
void unaryKernel(fk::Unary op, float* out, const float* x, int64_t n, double p0, double p1) {
  using fk::Unary;
  const V one = vset1(1.f), zero = vzero();
  const float f0 = static_cast<float>(p0), f1 = static_cast<float>(p1);
  switch (op) {
    case Unary::Neg: return mapUnary(out, x, n, 1, [&](V a) { return vneg(a); });
    case Unary::Exp: return mapUnary(out, x, n, 4, [&](V a) { return vexp(a); });
    case Unary::Log: return mapUnary(out, x, n, 4, [&](V a) { return vlog(a); });
    case Unary::Log1p: return mapUnary(out, x, n, 4, [&](V a) { return vlog1p(a); });
    case Unary::Expm1:
      return mapUnary(out, x, n, 16, [&](V a) { return vlanes(a, [](double t) { return std::expm1(t); }); });
    case Unary::Sqrt: return mapUnary(out, x, n, 2, [&](V a) { return vsqrt(a); });
    case Unary::Rsqrt: return mapUnary(out, x, n, 2, [&](V a) { return one / vsqrt(a); });
    case Unary::Abs: return mapUnary(out, x, n, 1, [&](V a) { return vabs(a); });
    case Unary::Sign:
      return mapUnary(out, x, n, 1, [&](V a) { return vsel(vgt(a, zero), one, vsel(vlt(a, zero), -one, zero)); });
    case Unary::Sigmoid: return mapUnary(out, x, n, 4, [&](V a) { return vsigmoid(a); });
    case Unary::Tanh:
      return mapUnary(out, x, n, 16, [&](V a) { return vlanes(a, [](double t) { return std::tanh(t); }); });
    case Unary::Relu: return mapUnary(out, x, n, 1, [&](V a) { return vsel(vgt(a, zero), a, zero); });
    case Unary::Silu: return mapUnary(out, x, n, 4, [&](V a) { return a * vsigmoid(a); });
    case Unary::Softplus: return mapUnary(out, x, n, 8, [&](V a) { return vsoftplus(a); });
    case Unary::LogSigmoid: return mapUnary(out, x, n, 8, [&](V a) { return -vsoftplus(-a); });
    case Unary::Log1mexp:
      // log(1 - e^x), stable on both sides of -ln 2 (Maechler 2012), in double like the reference
      return mapUnary(out, x, n, 16, [&](V a) {
        return vlanes(a, [](double t) { return t > -M_LN2 ? std::log(-std::expm1(t)) : std::log1p(-std::exp(t)); });
      });
    case Unary::Square: return mapUnary(out, x, n, 1, [&](V a) { return a * a; });
    case Unary::Reciprocal: return mapUnary(out, x, n, 2, [&](V a) { return one / a; });
    case Unary::PowScalar:
      if (p0 == 2.0) return mapUnary(out, x, n, 1, [&](V a) { return a * a; });
      if (p0 == 1.0) return mapUnary(out, x, n, 1, [&](V a) { return a; });
      return mapUnary(out, x, n, 16, [&](V a) { return vlanes(a, [p0](double t) { return jsPow(t, p0); }); });
    case Unary::Clamp: {
      const V lo = vset1(f0), hi = vset1(f1);
      return mapUnary(out, x, n, 1, [&](V a) { return vsel(vlt(a, lo), lo, vsel(vgt(a, hi), hi, a)); });
    }
    case Unary::AddScalar: return mapUnary(out, x, n, 1, [&](V a) { return a + vset1(f0); });
    case Unary::MulScalar: return mapUnary(out, x, n, 1, [&](V a) { return a * vset1(f0); });
    case Unary::GtScalar: return mapUnary(out, x, n, 1, [&](V a) { return vsel(vgt(a, vset1(f0)), one, zero); });
    case Unary::SiluGrad:
      return mapUnary(out, x, n, 4, [&](V a) {
        const V s = vsigmoid(a);
        return s * vfma(a, one - s, one);
      });
    case Unary::Count: break;
  }
}

// out[i] = f(a[i * sa], b[i * sb]) for i < len, vectorised for the unit/zero stride pairs.
template <class F>
void binaryRow(float* out, const float* a, const float* b, int64_t len, int64_t sa, int64_t sb, F f) {
  int64_t i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + W <= len; i += W) vstore(out + i, f(vload(a + i), vload(b + i)));
    if (i < len) vstoren(out + i, f(vloadn(a + i, len - i), vloadn(b + i, len - i)), len - i);
  } else if (sa == 1 && sb == 0) {
    const V bv = vset1(*b);
    for (; i + W <= len; i += W) vstore(out + i, f(vload(a + i), bv));
    if (i < len) vstoren(out + i, f(vloadn(a + i, len - i), bv), len - i);
  } else if (sa == 0 && sb == 1) {
    const V av = vset1(*a);
    for (; i + W <= len; i += W) vstore(out + i, f(av, vload(b + i)));
    if (i < len) vstoren(out + i, f(av, vloadn(b + i, len - i)), len - i);
  } else {
    alignas(64) float ta[W], tb[W];
    for (; i < len; i += W) {
      const int64_t c = std::min<int64_t>(W, len - i);
      for (int64_t j = 0; j < c; ++j) {
        ta[j] = a[(i + j) * sa];
        tb[j] = b[(i + j) * sb];
      }
      vstoren(out + i, f(vloadn(ta, c), vloadn(tb, c)), c);
    }
  }
}

// Broadcast over coalesced dims: rows of the last dim, row offsets by an odometer started at each range.
template <class F>
void binaryStrided(float* out, const float* a, const float* b, int nd, const int64_t* shape, const int64_t* as,
                   const int64_t* bs, int64_t cost, F f) {
  const int64_t len = nd > 0 ? shape[nd - 1] : 1;
  const int64_t sa = nd > 0 ? as[nd - 1] : 0, sb = nd > 0 ? bs[nd - 1] : 0;
  int64_t rows = 1;
  for (int d = 0; d + 1 < nd; ++d) rows *= shape[d];
  parallelFor(rows, len * cost, [&](int64_t r0, int64_t r1) {
    int64_t idx[fk::kMaxDims] = {0};
    int64_t ao = 0, bo = 0, rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      ao += idx[d] * as[d];
      bo += idx[d] * bs[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      binaryRow(out + r * len, a + ao, b + bo, len, sa, sb, f);
      for (int d = nd - 2; d >= 0; --d) {
        ao += as[d];
        bo += bs[d];
        if (++idx[d] < shape[d]) break;
        ao -= as[d] * shape[d];
        bo -= bs[d] * shape[d];
        idx[d] = 0;
      }
    }
  }, 1);
}

// The math of BINARY_FNS in src/backend/ref.ts.
void binaryKernel(fk::Binary op, float* out, const float* a, const float* b, int nd, const int64_t* shape,
                  const int64_t* as, const int64_t* bs) {
  using fk::Binary;
  const V one = vset1(1.f), zero = vzero();
  auto run = [&](int64_t cost, auto f) { binaryStrided(out, a, b, nd, shape, as, bs, cost, f); };
  switch (op) {
    case Binary::Add: return run(1, [](V x, V y) { return x + y; });
    case Binary::Sub: return run(1, [](V x, V y) { return x - y; });
    case Binary::Mul: return run(1, [](V x, V y) { return x * y; });
    case Binary::Div: return run(2, [](V x, V y) { return x / y; });
    case Binary::Pow: return run(16, [](V x, V y) { return vlanes2(x, y, jsPow); });
    case Binary::Minimum: return run(1, [](V x, V y) { return vsel(vlt(x, y), x, y); });
    case Binary::Maximum: return run(1, [](V x, V y) { return vsel(vgt(x, y), x, y); });
    case Binary::Gt: return run(1, [&](V x, V y) { return vsel(vgt(x, y), one, zero); });
    case Binary::Ge: return run(1, [&](V x, V y) { return vsel(vge(x, y), one, zero); });
    case Binary::Eq: return run(1, [&](V x, V y) { return vsel(veq(x, y), one, zero); });
    case Binary::Count: break;
  }
}

void whereKernel(float* out, const float* c, const float* a, const float* b, int64_t n) {
  parallelFor(n, 1, [&](int64_t s, int64_t e) {
    int64_t i = s;
    for (; i + W <= e; i += W) vstore(out + i, vsel(vne(vload(c + i), vzero()), vload(a + i), vload(b + i)));
    if (i < e) {
      const int64_t r = e - i;
      vstoren(out + i, vsel(vne(vloadn(c + i, r), vzero()), vloadn(a + i, r), vloadn(b + i, r)), r);
    }
  });
}

// Sum of a contiguous row: 4 accumulators of W lanes within each block, blocks added in double.
float rowSum(const float* x, int64_t n) {
  double total = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kRowBlock) {
    const int64_t b1 = std::min(n, b0 + kRowBlock);
    V s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
    int64_t i = b0;
    for (; i + 4 * W <= b1; i += 4 * W) {
      s0 = s0 + vload(x + i);
      s1 = s1 + vload(x + i + W);
      s2 = s2 + vload(x + i + 2 * W);
      s3 = s3 + vload(x + i + 3 * W);
    }
    for (; i + W <= b1; i += W) s0 = s0 + vload(x + i);
    if (i < b1) s1 = s1 + vloadn(x + i, b1 - i);
    total += vsum((s0 + s1) + (s2 + s3));
  }
  return static_cast<float>(total);
}

// out[i] = sum_j x[j * inner + i] for i < len: blocks of 256 rows are summed apart and then added, so the
// rounding error grows with 256 + n / 256 terms rather than n (bias gradients sum thousands of rows).
void columnSum(float* out, const float* x, int64_t n, int64_t inner, int64_t len) {
  constexpr int64_t kBlock = 256;
  for (int64_t i = 0; i < len; i += 4 * W) {
    const int64_t c = std::min<int64_t>(4 * W, len - i);
    V t[4] = {vzero(), vzero(), vzero(), vzero()};
    for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
      const int64_t j1 = std::min(n, j0 + kBlock);
      V s[4] = {vzero(), vzero(), vzero(), vzero()};
      for (int64_t j = j0; j < j1; ++j) {
        const float* row = x + j * inner + i;
        if (c == 4 * W) {
          for (int v = 0; v < 4; ++v) s[v] = s[v] + vload(row + v * W);
        } else {
          for (int v = 0; v * W < c; ++v) s[v] = s[v] + vloadn(row + v * W, std::min<int64_t>(W, c - v * W));
        }
      }
      for (int v = 0; v < 4; ++v) t[v] = t[v] + s[v];
    }
    for (int v = 0; v * W < c; ++v) vstoren(out + i + v * W, t[v], std::min<int64_t>(W, c - v * W));
  }
}

void sumKernel(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
    parallelFor(outer, n, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = rowSum(x + o * n, n);
    }, 16);
    return;
  }
  if (outer == 1) {
    // split columns across threads (the bias-gradient case: [B*T, D] -> [D])
    parallelFor(inner, n, [&](int64_t b, int64_t e) { columnSum(out + b, x + b, n, inner, e - b); });
    return;
  }
  parallelFor(outer, n * inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) columnSum(out + o * inner, x + o * n * inner, n, inner, inner);
  }, 1);
}

// logsumexp of a contiguous row in one pass: per block, lane-wise running max m and sum s, s rescaled only
// when a group of 4W raises some lane's max; blocks merge into (M, S) in double. m starts at -FLT_MAX rather
// than -inf so that -inf inputs give exp(-inf) = 0 instead of NaN; an all -inf row yields log(0) = -inf.
float rowLse(const float* x, int64_t n) {
  float mAll = -FLT_MAX;
  double sAll = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kRowBlock) {
    const int64_t b1 = std::min(n, b0 + kRowBlock);
    V m = vset1(-FLT_MAX), s = vzero();
    int64_t i = b0;
    for (; i + 4 * W <= b1; i += 4 * W) {
      const V x0 = vload(x + i), x1 = vload(x + i + W), x2 = vload(x + i + 2 * W), x3 = vload(x + i + 3 * W);
      const V mn = vmax(m, vmax(vmax(x0, x1), vmax(x2, x3)));
      if (vany(vgt(mn, m))) {
        s = s * vexp(m - mn);
        m = mn;
      }
      s = s + ((vexp(x0 - m) + vexp(x1 - m)) + (vexp(x2 - m) + vexp(x3 - m)));
    }
    for (; i < b1; i += W) {
      const V xc = vloadn(x + i, std::min<int64_t>(W, b1 - i), -__builtin_inff());
      const V mn = vmax(m, xc);
      s = s * vexp(m - mn) + vexp(xc - mn);
      m = mn;
    }
    const float bm = vhmax(m);
    if (bm == __builtin_inff()) {  // +inf wins unless the row also holds a NaN (the reference's Math.max rule)
      for (int64_t j = 0; j < n; ++j)
        if (x[j] != x[j]) return x[j];
      return bm;
    }
    const float mn = std::max(mAll, bm);
    sAll = sAll * std::exp(static_cast<double>(mAll) - mn) + vsum(s * vexp(m - vset1(mn)));
    mAll = mn;
  }
  return static_cast<float>(static_cast<double>(mAll) + std::log(sAll));
}

void logsumexpKernel(float* out, const float* x, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
    parallelFor(outer, n * 4, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = rowLse(x + o * n, n);
    }, 16);
    return;
  }
  // strided reductions: two passes over n with inner as the vector axis
  parallelFor(outer, n * inner * 4, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const float* xo = x + o * n * inner;
      float* oo = out + o * inner;
      for (int64_t i = 0; i < inner; i += W) {
        const int64_t c = std::min<int64_t>(W, inner - i);
        V mx = vset1(-__builtin_inff());
        for (int64_t j = 0; j < n; ++j) mx = vmax(vloadn(xo + j * inner + i, c), mx);
        // rows whose max is +-inf (or NaN) give the max itself, as in the reference
        const M fin = vlt(vabs(mx), vset1(__builtin_inff()));
        const V ms = vsel(fin, mx, vzero());
        V s = vzero();
        for (int64_t j = 0; j < n; ++j) s = s + vexp(vloadn(xo + j * inner + i, c) - ms);
        // a NaN anywhere in the column makes s NaN: report it rather than an infinite max
        vstoren(oo + i, vsel(fin, ms + vlog(s), vsel(vne(s, s), s, mx)), c);
      }
    }
  }, 1);
}
