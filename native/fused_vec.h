// A minimal float vector type V (W lanes) for the fused kernels, chosen by NEXUS_VEC = 512 | 256 | 1.
// Included only by fused_instance.h, after the ISA's `#pragma GCC target` and inside an anonymous namespace,
// so every function here is compiled for that ISA and never shared with another translation unit.
// exp/log are Cephes-style polynomials (about 1-2 ulp); the scalar build calls double libm instead.
// NaN rules follow the JS reference: comparisons are ordered (false on NaN) unless named otherwise.

#if NEXUS_VEC == 512

constexpr int W = 16;
struct V { __m512 r; };
using M = __mmask16;
inline V vzero() { return {_mm512_setzero_ps()}; }
inline V vset1(float a) { return {_mm512_set1_ps(a)}; }
inline V vload(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void vstore(float* p, V a) { _mm512_storeu_ps(p, a.r); }
inline M tailMask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
// first n < W lanes from p, `fill` elsewhere (no read past p + n)
inline V vloadn(const float* p, int64_t n, float fill = 0.f) {
  return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), tailMask(n), p)};
}
inline void vstoren(float* p, V a, int64_t n) { _mm512_mask_storeu_ps(p, tailMask(n), a.r); }
inline V operator+(V a, V b) { return {_mm512_add_ps(a.r, b.r)}; }
inline V operator-(V a, V b) { return {_mm512_sub_ps(a.r, b.r)}; }
inline V operator*(V a, V b) { return {_mm512_mul_ps(a.r, b.r)}; }
inline V operator/(V a, V b) { return {_mm512_div_ps(a.r, b.r)}; }
inline V vfma(V a, V b, V c) { return {_mm512_fmadd_ps(a.r, b.r, c.r)}; }    // a*b + c
inline V vfnma(V a, V b, V c) { return {_mm512_fnmadd_ps(a.r, b.r, c.r)}; }  // c - a*b
// max/min return b when either is NaN (x86 semantics); callers put the value to keep NaN of second
inline V vmax(V a, V b) { return {_mm512_max_ps(a.r, b.r)}; }
inline V vmin(V a, V b) { return {_mm512_min_ps(a.r, b.r)}; }
inline V vsqrt(V a) { return {_mm512_sqrt_ps(a.r)}; }
inline V vabs(V a) {
  return {_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a.r), _mm512_set1_epi32(0x7fffffff)))};
}
inline V vneg(V a) {
  return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.r), _mm512_set1_epi32(INT32_MIN)))};
}
inline M vgt(V a, V b) { return _mm512_cmp_ps_mask(a.r, b.r, _CMP_GT_OQ); }
inline M vge(V a, V b) { return _mm512_cmp_ps_mask(a.r, b.r, _CMP_GE_OQ); }
inline M vlt(V a, V b) { return _mm512_cmp_ps_mask(a.r, b.r, _CMP_LT_OQ); }
inline M veq(V a, V b) { return _mm512_cmp_ps_mask(a.r, b.r, _CMP_EQ_OQ); }
inline M vne(V a, V b) { return _mm512_cmp_ps_mask(a.r, b.r, _CMP_NEQ_UQ); }  // true on NaN, like JS !==
inline V vsel(M m, V a, V b) { return {_mm512_mask_blend_ps(m, b.r, a.r)}; }  // m ? a : b
inline bool vany(M m) { return m != 0; }
inline float vsum(V a) { return _mm512_reduce_add_ps(a.r); }
inline float vhmax(V a) { return _mm512_reduce_max_ps(a.r); }
inline V vround(V a) { return {_mm512_roundscale_ps(a.r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V vscale2(V p, V n) { return {_mm512_scalef_ps(p.r, n.r)}; }  // p * 2^n, exact over/underflow
// x = m * 2^e with m in [0.5, 1) for finite x > 0 (subnormals included)
inline void vfrexp(V x, V& m, V& e) {
  m.r = _mm512_getmant_ps(x.r, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_zero);
  e.r = _mm512_add_ps(_mm512_getexp_ps(x.r), _mm512_set1_ps(1.f));
}

#elif NEXUS_VEC == 256

constexpr int W = 8;
struct V { __m256 r; };
using M = __m256;
inline V vzero() { return {_mm256_setzero_ps()}; }
inline V vset1(float a) { return {_mm256_set1_ps(a)}; }
inline V vload(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void vstore(float* p, V a) { _mm256_storeu_ps(p, a.r); }
alignas(32) constexpr int32_t kTail[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i tailMask(int64_t n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTail + 8 - n)); }
inline V vloadn(const float* p, int64_t n, float fill = 0.f) {
  const __m256i m = tailMask(n);
  return {_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m))};
}
inline void vstoren(float* p, V a, int64_t n) { _mm256_maskstore_ps(p, tailMask(n), a.r); }
inline V operator+(V a, V b) { return {_mm256_add_ps(a.r, b.r)}; }
inline V operator-(V a, V b) { return {_mm256_sub_ps(a.r, b.r)}; }
inline V operator*(V a, V b) { return {_mm256_mul_ps(a.r, b.r)}; }
inline V operator/(V a, V b) { return {_mm256_div_ps(a.r, b.r)}; }
inline V vfma(V a, V b, V c) { return {_mm256_fmadd_ps(a.r, b.r, c.r)}; }
inline V vfnma(V a, V b, V c) { return {_mm256_fnmadd_ps(a.r, b.r, c.r)}; }
inline V vmax(V a, V b) { return {_mm256_max_ps(a.r, b.r)}; }
inline V vmin(V a, V b) { return {_mm256_min_ps(a.r, b.r)}; }
inline V vsqrt(V a) { return {_mm256_sqrt_ps(a.r)}; }
inline V vabs(V a) { return {_mm256_and_ps(a.r, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))}; }
inline V vneg(V a) { return {_mm256_xor_ps(a.r, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN)))}; }
inline M vgt(V a, V b) { return _mm256_cmp_ps(a.r, b.r, _CMP_GT_OQ); }
inline M vge(V a, V b) { return _mm256_cmp_ps(a.r, b.r, _CMP_GE_OQ); }
inline M vlt(V a, V b) { return _mm256_cmp_ps(a.r, b.r, _CMP_LT_OQ); }
inline M veq(V a, V b) { return _mm256_cmp_ps(a.r, b.r, _CMP_EQ_OQ); }
inline M vne(V a, V b) { return _mm256_cmp_ps(a.r, b.r, _CMP_NEQ_UQ); }
inline V vsel(M m, V a, V b) { return {_mm256_blendv_ps(b.r, a.r, m)}; }
inline bool vany(M m) { return _mm256_movemask_ps(m) != 0; }
inline float vsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.r), _mm256_extractf128_ps(a.r, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float vhmax(V a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.r), _mm256_extractf128_ps(a.r, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline V vround(V a) { return {_mm256_round_ps(a.r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V pow2i(V n) {  // 2^n for integral n in [-126, 127]
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.r), _mm256_set1_epi32(127)), 23))};
}
// p * 2^n for integral n in [-252, 254] as two exact power-of-two steps, so results may be subnormal or inf
inline V vscale2(V p, V n) {
  const V n1 = {_mm256_floor_ps(_mm256_mul_ps(n.r, _mm256_set1_ps(0.5f)))};
  return p * pow2i(n1) * pow2i(n - n1);
}
inline void vfrexp(V x, V& m, V& e) {
  // subnormals: scale by 2^23 first so the exponent field is meaningful
  const M sub = vlt(x, vset1(1.17549435e-38f));
  x = vsel(sub, x * vset1(8388608.f), x);
  const __m256i bits = _mm256_castps_si256(x.r);
  const __m256i ex = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126));
  e.r = _mm256_sub_ps(_mm256_cvtepi32_ps(ex), _mm256_and_ps(sub, _mm256_set1_ps(23.f)));
  m.r = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                            _mm256_set1_epi32(0x3f000000)));
}

#else  // scalar: one lane, the same kernels compile to plain loops

constexpr int W = 1;
struct V { float r; };
using M = bool;
inline V vzero() { return {0.f}; }
inline V vset1(float a) { return {a}; }
inline V vload(const float* p) { return {*p}; }
inline void vstore(float* p, V a) { *p = a.r; }
inline V vloadn(const float* p, int64_t n, float fill = 0.f) { return {n > 0 ? *p : fill}; }
inline void vstoren(float* p, V a, int64_t n) { if (n > 0) *p = a.r; }
inline V operator+(V a, V b) { return {a.r + b.r}; }
inline V operator-(V a, V b) { return {a.r - b.r}; }
inline V operator*(V a, V b) { return {a.r * b.r}; }
inline V operator/(V a, V b) { return {a.r / b.r}; }
// plain multiply-add: without the FMA target std::fma would be a slow software routine
inline V vfma(V a, V b, V c) { return {a.r * b.r + c.r}; }
inline V vfnma(V a, V b, V c) { return {c.r - a.r * b.r}; }
inline V vmax(V a, V b) { return {a.r > b.r ? a.r : b.r}; }  // NaN -> b, as on x86
inline V vmin(V a, V b) { return {a.r < b.r ? a.r : b.r}; }
inline V vsqrt(V a) { return {std::sqrt(a.r)}; }
inline V vabs(V a) { return {std::fabs(a.r)}; }
inline V vneg(V a) { return {-a.r}; }
inline M vgt(V a, V b) { return a.r > b.r; }
inline M vge(V a, V b) { return a.r >= b.r; }
inline M vlt(V a, V b) { return a.r < b.r; }
inline M veq(V a, V b) { return a.r == b.r; }
inline M vne(V a, V b) { return !(a.r == b.r); }
inline V vsel(M m, V a, V b) { return m ? a : b; }
inline bool vany(M m) { return m; }
inline float vsum(V a) { return a.r; }
inline float vhmax(V a) { return a.r; }

#endif

inline V operator-(V a) { return vneg(a); }

#if NEXUS_VEC != 1
// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 tile, in registers (unpack, shuffle, 128-bit permute).
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}
#endif

#if NEXUS_VEC == 1
inline V vexp(V x) { return {static_cast<float>(std::exp(static_cast<double>(x.r)))}; }
inline V vlog(V x) { return {static_cast<float>(std::log(static_cast<double>(x.r)))}; }
inline V vlog1p(V x) { return {static_cast<float>(std::log1p(static_cast<double>(x.r)))}; }
#else
// Cephes expf: n = round(x / ln2), r = x - n ln2 (two-part ln2), e^r by a degree-6 polynomial, scaled by 2^n.
// x is clamped to [-104, 89] (e^x is 0 / inf in float beyond); NaN passes through the clamp untouched.
inline V vexp(V x) {
  x = vmin(vset1(89.f), vmax(vset1(-104.f), x));
  const V n = vround(x * vset1(1.44269504088896341f));
  V r = vfnma(n, vset1(0.693359375f), x);
  r = vfnma(n, vset1(-2.12194440e-4f), r);
  V p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, r * r, r + vset1(1.f));
  return vscale2(p, n);
}

// Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9 polynomial in m - 1.
inline V vlog(V x) {
  V m, e;
  vfrexp(x, m, e);
  const M small = vlt(m, vset1(0.707106781186547524f));
  e = vsel(small, e - vset1(1.f), e);
  m = vsel(small, m + m, m) - vset1(1.f);
  const V z = m * m;
  V y = vset1(7.0376836292e-2f);
  y = vfma(y, m, vset1(-1.1514610310e-1f));
  y = vfma(y, m, vset1(1.1676998740e-1f));
  y = vfma(y, m, vset1(-1.2420140846e-1f));
  y = vfma(y, m, vset1(1.4249322787e-1f));
  y = vfma(y, m, vset1(-1.6668057665e-1f));
  y = vfma(y, m, vset1(2.0000714765e-1f));
  y = vfma(y, m, vset1(-2.4999993993e-1f));
  y = vfma(y, m, vset1(3.3333331174e-1f));
  y = y * m * z;
  y = vfma(e, vset1(-2.12194440e-4f), y);
  y = vfnma(vset1(0.5f), z, y);
  V r = vfma(e, vset1(0.693359375f), m + y);
  // specials: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN
  const V inf = vset1(__builtin_inff());
  r = vsel(veq(x, vzero()), -inf, r);
  r = vsel(vlt(x, vzero()), vset1(__builtin_nanf("")), r);
  r = vsel(veq(x, inf), inf, r);
  r = vsel(vne(x, x), x, r);
  return r;
}

// log1p(x) = log(u) * x / (u - 1) with u = 1 + x: the quotient cancels the rounding of u (Goldberg 1991).
inline V vlog1p(V x) {
  const V u = x + vset1(1.f);
  const V d = u - vset1(1.f);
  V r = vlog(u) * (x / d);
  r = vsel(veq(d, vzero()), x, r);
  r = vsel(veq(u, vset1(__builtin_inff())), u, r);
  return r;
}
#endif

// Two-sided like the reference: e = e^-|x|, 1 / (1 + e) for x >= 0 and e / (1 + e) below, so sigmoid(-100)
// keeps its subnormal value instead of 1 / (1 + inf) = 0.
inline V vsigmoid(V x) {
  const V e = vexp(-vabs(x));
  const V r = vset1(1.f) / (vset1(1.f) + e);
  return vsel(vge(x, vzero()), r, e * r);
}
// log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
inline V vsoftplus(V x) { return vmax(x, vzero()) + vlog1p(vexp(-vabs(x))); }

// Lane-wise scalar fallback for ops without a vector form (tanh, expm1, pow): evaluates f in double.
template <class F>
inline V vlanes(V x, F f) {
  alignas(64) float t[W];
  vstore(t, x);
  for (int i = 0; i < W; ++i) t[i] = static_cast<float>(f(static_cast<double>(t[i])));
  return vload(t);
}
template <class F>
inline V vlanes2(V a, V b, F f) {
  alignas(64) float ta[W], tb[W];
  vstore(ta, a);
  vstore(tb, b);
  for (int i = 0; i < W; ++i) ta[i] = static_cast<float>(f(static_cast<double>(ta[i]), static_cast<double>(tb[i])));
  return vload(ta);
}
