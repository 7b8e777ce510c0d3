// Scaled dot-product attention forward and backward written against V, after FlashAttention-2 (Dao 2023):
// blocks of query rows stream over blocks of keys with an online softmax, so no [T, S] matrix is ever stored.
// Differences: the G query heads that share a kv head are merged into one [G*T, Dh] row set (GQA reads each
// K/V block once per group); the backward runs one (batch, kv head) group per thread, so dK/dV need no atomics,
// and it recomputes P from the saved lse; decode (<= 4 query rows per group) skips the blocking and reads K rows
// in place; k/v may be a KV cache's storage (sCap rows per group, the first S used). Included by
// fused_instance.h; the N-API side is fused.cc.

constexpr int64_t kBr = 64;   // query rows per block
constexpr int64_t kBc = 128;  // keys per block, a multiple of W for every ISA
#if NEXUS_VEC == 512
constexpr int kMR = 6, kNV = 4;  // 24 zmm accumulators + 4 B vectors + 1 broadcast
#elif NEXUS_VEC == 256
constexpr int kMR = 6, kNV = 2;  // 12 ymm accumulators + 2 + 1 of 16 registers
#else
constexpr int kMR = 4, kNV = 4;
#endif

inline int64_t roundUp(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

// Per-thread scratch that survives calls (OpenMP keeps its threads), so decode steps do not hit malloc/mmap.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[8];
  std::vector<float>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

// C[MR x NV*W] (+)= sum_k A(i, k) B[k*ldb + j]: A(i, k) = A[i*sar + k*sac] is broadcast, B rows are vectors.
// The two A strides let one kernel compute P V, Q K^T (K stored transposed) and P^T dO (P read transposed).
template <int MR, int NV>
inline void microTile(float* C, int64_t ldc, const float* A, int64_t sar, int64_t sac, const float* B, int64_t ldb,
                      int64_t kd, bool acc) {
  V c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) c[i][j] = acc ? vload(C + i * ldc + j * W) : vzero();
  for (int64_t k = 0; k < kd; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = vload(B + k * ldb + j * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const V a = vset1(A[i * sar + k * sac]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) c[i][j] = vfma(a, b[j], c[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) vstore(C + i * ldc + j * W, c[i][j]);
}

template <int MR>
inline void gemmRows(float* C, int64_t ldc, const float* A, int64_t sar, int64_t sac, const float* B, int64_t ldb,
                     int64_t n, int64_t kd, bool acc) {
  int64_t j = 0;
  for (; j + kNV * W <= n; j += kNV * W) microTile<MR, kNV>(C + j, ldc, A, sar, sac, B + j, ldb, kd, acc);
  switch ((n - j) / W) {  // n is a multiple of W
    case 1: microTile<MR, 1>(C + j, ldc, A, sar, sac, B + j, ldb, kd, acc); break;
    case 2: microTile<MR, 2>(C + j, ldc, A, sar, sac, B + j, ldb, kd, acc); break;
    case 3: microTile<MR, 3>(C + j, ldc, A, sar, sac, B + j, ldb, kd, acc); break;
    default: break;
  }
}

// C [m, n] (+)= A [m, kd] B [kd, n]; n a multiple of W, C rows ldc apart.
void smallGemm(float* C, int64_t ldc, const float* A, int64_t sar, int64_t sac, const float* B, int64_t ldb,
               int64_t m, int64_t n, int64_t kd, bool acc) {
  int64_t i = 0;
  for (; i + kMR <= m; i += kMR) gemmRows<kMR>(C + i * ldc, ldc, A + i * sar, sar, sac, B, ldb, n, kd, acc);
  float* c = C + i * ldc;
  const float* a = A + i * sar;
  switch (m - i) {
    case 1: gemmRows<1>(c, ldc, a, sar, sac, B, ldb, n, kd, acc); break;
    case 2: gemmRows<2>(c, ldc, a, sar, sac, B, ldb, n, kd, acc); break;
    case 3: gemmRows<3>(c, ldc, a, sar, sac, B, ldb, n, kd, acc); break;
    case 4: gemmRows<4>(c, ldc, a, sar, sac, B, ldb, n, kd, acc); break;
    case 5: gemmRows<5>(c, ldc, a, sar, sac, B, ldb, n, kd, acc); break;
    default: break;
  }
}

// xt [dh, sp] = x [s, dh] transposed, zero in columns s..sp: 8 x 8 register transposes, scalar edges.
// (A plain column walk was most of a decode step's time, and a third of the training backward's.)
void transposeKeys(float* xt, const float* x, int64_t s, int64_t sp, int64_t dh) {
  int64_t j0 = 0;
#if NEXUS_VEC != 1
  for (; j0 + 8 <= s; j0 += 8) {
    int64_t d0 = 0;
    for (; d0 + 8 <= dh; d0 += 8) transpose8x8(x + j0 * dh + d0, dh, xt + d0 * sp + j0, sp);
    for (int64_t d = d0; d < dh; ++d)
      for (int64_t j = j0; j < j0 + 8; ++j) xt[d * sp + j] = x[j * dh + d];
  }
#endif
  for (int64_t d = 0; d < dh; ++d)
    for (int64_t j = j0; j < s; ++j) xt[d * sp + j] = x[j * dh + d];
  for (int64_t d = 0; d < dh; ++d) std::fill(xt + d * sp + s, xt + (d + 1) * sp, 0.f);
}

// dst [rows, dhp] = src [rows, dh] with zero padding columns.
void padRows(float* dst, const float* src, int64_t rows, int64_t dh, int64_t dhp) {
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(src + r * dh, src + (r + 1) * dh, dst + r * dhp);
    std::fill(dst + r * dhp + dh, dst + (r + 1) * dhp, 0.f);
  }
}

// bias[j] = 0 for keys that may be attended, -inf for keyMask zeros and the padding up to sp.
void keyBias(float* bias, const float* keyMask, int64_t s, int64_t sp) {
  for (int64_t j = 0; j < sp; ++j) bias[j] = j < s && (keyMask == nullptr || keyMask[j] != 0.f) ? 0.f : -__builtin_inff();
}

// Decode: a few query rows per (batch, kv head) group. Scores are row dot products against K as stored, so the
// cache is read once instead of transposed (and padded) every step.
void attentionFewRows(float* out, float* lse, const float* q, const float* k, const float* v, const float* keyMask,
                      const fk::AttnShape& sh) {
  const int64_t Hkv = sh.hkv, T = sh.t, S = sh.s, Dh = sh.dh, SC = sh.sCap, R = sh.h / Hkv * T;
  const float ninf = -__builtin_inff();
  parallelFor(sh.b * Hkv, R * S * Dh * 2, [&](int64_t g0, int64_t g1) {
    float* sc = scratch(3, roundUp(S, W) + W);
    for (int64_t g = g0; g < g1; ++g) {
      const float* kg = k + g * SC * Dh;
      const float* vg = v + g * SC * Dh;
      const float* mk = keyMask == nullptr ? nullptr : keyMask + (g / Hkv) * S;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t row = g * R + r;
        const float* qr = q + row * Dh;
        float* orow = out + row * Dh;
        const int64_t n = std::min(S, sh.causal ? r % T + S - T + 1 : S);  // keys [0, n) may be visible
        float mx = ninf;
        for (int64_t j = 0; j < n; ++j) {
          sc[j] = mk != nullptr && mk[j] == 0.f ? ninf : rowDot(qr, kg + j * Dh, Dh) * sh.scale;
          mx = std::max(mx, sc[j]);
        }
        std::fill(orow, orow + Dh, 0.f);
        if (n <= 0 || mx == ninf) {
          lse[row] = ninf;
          continue;
        }
        const int64_t np = roundUp(n, W);
        std::fill(sc + n, sc + np, ninf);
        const V mv = vset1(mx);
        V sum = vzero();
        for (int64_t c = 0; c < np; c += W) {
          const V p = vexp(vload(sc + c) - mv);
          vstore(sc + c, p);
          sum = sum + p;
        }
        const float l = vsum(sum);
        for (int64_t j = 0; j < n; ++j) {
          const float p = sc[j];
          if (p == 0.f) continue;
          const float* vr = vg + j * Dh;
          for (int64_t d = 0; d < Dh; ++d) orow[d] += p * vr[d];
        }
        const float inv = 1.f / l;
        for (int64_t d = 0; d < Dh; ++d) orow[d] *= inv;
        lse[row] = static_cast<float>(mx + std::log(static_cast<double>(l)));
      }
    }
  }, 1);
}

void attentionKernel(float* out, float* lse, const float* q, const float* k, const float* v, const float* keyMask,
                     const fk::AttnShape& sh) {
  const int64_t B = sh.b, H = sh.h, Hkv = sh.hkv, T = sh.t, S = sh.s, Dh = sh.dh, SC = sh.sCap;
  if (B * H * T == 0) return;
  const int64_t G = H / Hkv, R = G * T, DhP = roundUp(Dh, W), Sp = roundUp(S, kBc), nrb = (R + kBr - 1) / kBr;
  if (R <= 4) return attentionFewRows(out, lse, q, k, v, keyMask, sh);
  const bool padded = DhP != Dh;
  const float ninf = -__builtin_inff();
  const V scale = vset1(sh.scale);
  parallelFor(B * Hkv * nrb, std::min(R, kBr) * S * Dh, [&](int64_t i0, int64_t i1) {
    float* kt = scratch(0, Dh * Sp);       // K^T of the group, [Dh, Sp]
    float* vp = scratch(1, S * DhP);       // V with padded rows when Dh % W != 0
    float* bias = scratch(2, Sp);          // additive key mask
    float* sb = scratch(3, kBr * kBc);     // scores, then probabilities, of one block
    float* o = scratch(4, kBr * DhP);      // unnormalised output rows
    float m[kBr], l[kBr];
    int64_t lim[kBr];
    int64_t cur = -1;
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t g = item / nrb, r0 = (item % nrb) * kBr, nr = std::min(kBr, R - r0);
      const int64_t row0 = g * R + r0;  // group g's rows are rows [g*R, (g+1)*R) of [B*H*T]
      if (g != cur) {
        cur = g;
        transposeKeys(kt, k + g * SC * Dh, S, Sp, Dh);
        keyBias(bias, keyMask == nullptr ? nullptr : keyMask + (g / Hkv) * S, S, Sp);
        if (padded) padRows(vp, v + g * SC * Dh, S, Dh, DhP);
      }
      const float* vb = padded ? vp : v + g * SC * Dh;
      int64_t maxLim = -1;
      for (int64_t i = 0; i < nr; ++i) {
        lim[i] = sh.causal ? (r0 + i) % T + S - T : S - 1;  // last key row i may see
        maxLim = std::max(maxLim, lim[i]);
        m[i] = ninf;
        l[i] = 0.f;
      }
      std::fill(o, o + nr * DhP, 0.f);
      for (int64_t j0 = 0; j0 < S && j0 <= maxLim; j0 += kBc) {
        const int64_t nk = std::min({kBc, S - j0, maxLim - j0 + 1}), ns = roundUp(nk, W);
        smallGemm(sb, kBc, q + row0 * Dh, Dh, 1, kt + j0, Sp, nr, ns, Dh, false);
        for (int64_t i = 0; i < nr; ++i) {
          float* srow = sb + i * kBc;
          for (int64_t j = std::max<int64_t>(lim[i] - j0 + 1, 0); j < ns; ++j) srow[j] = ninf;  // causal cut
          V mv = vset1(ninf);
          for (int64_t c = 0; c < ns; c += W) {
            const V t = vfma(vload(srow + c), scale, vload(bias + j0 + c));
            vstore(srow + c, t);
            mv = vmax(t, mv);
          }
          const float mnew = std::max(m[i], vhmax(mv));
          if (mnew == ninf) {  // nothing visible yet: P = 0, state unchanged
            std::fill(srow, srow + ns, 0.f);
            continue;
          }
          const float alpha = std::exp(m[i] - mnew);
          const V mn = vset1(mnew);
          V s = vzero();
          for (int64_t c = 0; c < ns; c += W) {
            const V p = vexp(vload(srow + c) - mn);
            vstore(srow + c, p);
            s = s + p;
          }
          l[i] = l[i] * alpha + vsum(s);
          m[i] = mnew;
          if (alpha != 1.f) {
            const V av = vset1(alpha);
            for (int64_t c = 0; c < DhP; c += W) vstore(o + i * DhP + c, vload(o + i * DhP + c) * av);
          }
        }
        smallGemm(o, DhP, sb, kBc, 1, vb + j0 * DhP, DhP, nr, DhP, nk, true);
      }
      for (int64_t i = 0; i < nr; ++i) {
        float* orow = out + (row0 + i) * Dh;
        if (l[i] > 0.f) {
          lse[row0 + i] = static_cast<float>(m[i] + std::log(static_cast<double>(l[i])));
          const float inv = 1.f / l[i];
          for (int64_t d = 0; d < Dh; ++d) orow[d] = o[i * DhP + d] * inv;
        } else {
          lse[row0 + i] = ninf;
          std::fill(orow, orow + Dh, 0.f);
        }
      }
    }
  }, 1);
}

void attentionBackwardKernel(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                             const float* v, const float* out, const float* lse, const float* keyMask,
                             const fk::AttnShape& sh) {
  const int64_t B = sh.b, H = sh.h, Hkv = sh.hkv, T = sh.t, S = sh.s, Dh = sh.dh;
  const int64_t G = H / Hkv, R = G * T, DhP = roundUp(Dh, W), Sp = roundUp(S, kBc), nrb = (R + kBr - 1) / kBr;
  const bool padded = DhP != Dh;
  const float ninf = -__builtin_inff();
  const V scale = vset1(sh.scale);
  if (B * H * T == 0) {  // no query rows: every key gets a zero gradient
    std::fill(dk, dk + B * Hkv * S * Dh, 0.f);
    std::fill(dv, dv + B * Hkv * S * Dh, 0.f);
    return;
  }
  parallelFor(B * Hkv, R * S * Dh * 5, [&](int64_t g0, int64_t g1) {
    float* kt = scratch(0, Dh * Sp);   // K^T [Dh, Sp] for S = Q K^T
    float* vt = scratch(1, Dh * Sp);   // V^T [Dh, Sp] for dP = dO V^T
    float* bias = scratch(2, Sp);
    float* pb = scratch(3, kBr * kBc);   // P of one block
    float* dsb = scratch(4, kBr * kBc);  // dP, then dS, of one block
    float* dkb = scratch(5, kBc * DhP);  // dK and dV of one key block, accumulated over all rows
    float* dvb = scratch(6, kBc * DhP);
    // per-row D = dO . O, lse (+inf where the row saw no key, so P = 0) and causal limit; padded Q, dO, K, dQ
    float* rowf = scratch(7, R * 2 + (padded ? 3 * R * DhP + S * DhP : 0));
    float* dvec = rowf;
    float* lseu = rowf + R;
    float* qp = rowf + 2 * R;
    float* dop = qp + R * DhP;
    float* dqp = dop + R * DhP;
    float* kp = dqp + R * DhP;
    std::vector<int64_t> rbMax(nrb);
    for (int64_t g = g0; g < g1; ++g) {
      const float* qg = q + g * R * Dh;
      const float* dog = dout + g * R * Dh;
      const float* kg = k + g * S * Dh;
      transposeKeys(kt, kg, S, Sp, Dh);
      transposeKeys(vt, v + g * S * Dh, S, Sp, Dh);
      keyBias(bias, keyMask == nullptr ? nullptr : keyMask + (g / Hkv) * S, S, Sp);
      const float *qa = qg, *doa = dog, *ka = kg;
      float* dqa = dq + g * R * Dh;
      if (padded) {
        padRows(qp, qg, R, Dh, DhP);
        padRows(dop, dog, R, Dh, DhP);
        padRows(kp, kg, S, Dh, DhP);
        qa = qp, doa = dop, ka = kp, dqa = dqp;
      }
      std::fill(dqa, dqa + R * DhP, 0.f);
      for (int64_t r = 0; r < R; ++r) {
        dvec[r] = rowDot(dog + r * Dh, out + (g * R + r) * Dh, Dh);
        const float l = lse[g * R + r];
        lseu[r] = l == ninf ? __builtin_inff() : l;
      }
      auto limOf = [&](int64_t r) { return sh.causal ? r % T + S - T : S - 1; };
      for (int64_t rb = 0; rb < nrb; ++rb) {
        rbMax[rb] = -1;
        for (int64_t r = rb * kBr; r < std::min(R, (rb + 1) * kBr); ++r) rbMax[rb] = std::max(rbMax[rb], limOf(r));
      }
      for (int64_t j0 = 0; j0 < S; j0 += kBc) {
        const int64_t nk = std::min(kBc, S - j0);
        std::fill(dkb, dkb + nk * DhP, 0.f);
        std::fill(dvb, dvb + nk * DhP, 0.f);
        for (int64_t rb = 0; rb < nrb; ++rb) {
          if (rbMax[rb] < j0) continue;  // causal: the whole block is masked
          const int64_t r0 = rb * kBr, nr = std::min(kBr, R - r0);
          const int64_t nv = std::min(nk, rbMax[rb] - j0 + 1), ns = roundUp(nv, W);
          smallGemm(pb, kBc, qa + r0 * DhP, DhP, 1, kt + j0, Sp, nr, ns, Dh, false);
          smallGemm(dsb, kBc, doa + r0 * DhP, DhP, 1, vt + j0, Sp, nr, ns, Dh, false);
          for (int64_t i = 0; i < nr; ++i) {
            float* prow = pb + i * kBc;
            float* drow = dsb + i * kBc;
            for (int64_t j = std::max<int64_t>(limOf(r0 + i) - j0 + 1, 0); j < ns; ++j) prow[j] = ninf;
            const V nl = vset1(-lseu[r0 + i]), dd = vset1(dvec[r0 + i]);
            for (int64_t c = 0; c < ns; c += W) {
              const V p = vexp(vfma(vload(prow + c), scale, vload(bias + j0 + c)) + nl);
              vstore(prow + c, p);
              vstore(drow + c, p * (vload(drow + c) - dd) * scale);
            }
          }
          // dV += P^T dO, dK += dS^T Q (A read transposed), dQ += dS K
          smallGemm(dvb, DhP, pb, 1, kBc, doa + r0 * DhP, DhP, nv, DhP, nr, true);
          smallGemm(dkb, DhP, dsb, 1, kBc, qa + r0 * DhP, DhP, nv, DhP, nr, true);
          smallGemm(dqa + r0 * DhP, DhP, dsb, kBc, 1, ka + j0 * DhP, DhP, nr, DhP, nv, true);
        }
        float* dkg = dk + (g * S + j0) * Dh;
        float* dvg = dv + (g * S + j0) * Dh;
        for (int64_t j = 0; j < nk; ++j) {
          std::copy(dkb + j * DhP, dkb + j * DhP + Dh, dkg + j * Dh);
          std::copy(dvb + j * DhP, dvb + j * DhP + Dh, dvg + j * Dh);
        }
      }
      if (padded) {
        for (int64_t r = 0; r < R; ++r) std::copy(dqp + r * DhP, dqp + r * DhP + Dh, dq + (g * R + r) * Dh);
      }
    }
  }, 1);
}
