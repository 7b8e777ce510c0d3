// Decode kernels written against V: paged attention over block tables (Kernels.pagedAttention) and batched
// sampling with HF's filters (Kernels.sampleTokens; src/backend/ref_decode.ts is the definition).
// Cache layout: keys [numBlocks, Hkv, Dh, blockSize] (transposed within a block), values [numBlocks, Hkv, blockSize, Dh].
// Paged attention: sequences with a few query rows per kv head (decode) run one (sequence, kv head) item per
// thread, reading each cached key and value block once for all G query heads of the group; longer query chunks
// (prefill) gather their keys into a dense scratch and run the blocked attentionKernel (fused_impl_attention.h),
// whose causal rule "query t sees keys <= t + S - T" is exactly the paged one. Included by fused_instance.h.

constexpr int64_t kPagedFewRows = 16;  // query rows per (sequence, kv head) served by the direct loop

// Scratch for the prefill gather, apart from scratch()'s slots (attentionKernel uses those on every thread).
float* decodeScratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[4];
  std::vector<float>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

// One (sequence, kv head) item with R = G * qn query rows: scores against every visible key, softmax, P V.
// Keys are stored transposed per block ([Dh, blockSize]), so a block's scores for one query row are blockSize-wide
// vector FMAs over d, with no horizontal sums; each V row is read once for all R rows.
void pagedGroup(float* out, const float* q, const float* kc, const float* vc, const int32_t* table, int64_t ctx,
                int64_t q0, int64_t qn, int64_t g, const fk::PagedShape& sh, float* sc) {
  const int64_t H = sh.h, Hkv = sh.hkv, Dh = sh.dh, BS = sh.blockSize, G = H / Hkv, R = G * qn;
  const int64_t sp = roundUp(ctx, W) + W;  // score row stride
  const float ninf = -__builtin_inff();
  // row r = i * G + hh: query token q0 + i, head g * G + hh
  auto qrow = [&](int64_t r) { return q + ((q0 + r / G) * H + g * G + r % G) * Dh; };
  const V scale = vset1(sh.scale);
  for (int64_t j0 = 0; j0 < ctx; j0 += BS) {
    const int64_t nb = std::min(BS, ctx - j0);
    const float* kt = kc + (table[j0 / BS] * Hkv + g) * Dh * BS;  // [Dh, BS]
    for (int64_t r = 0; r < R; ++r) {
      const float* qr = qrow(r);
      float* s = sc + r * sp + j0;
      for (int64_t c = 0; c < nb; c += W) {
        const int64_t w = std::min<int64_t>(W, nb - c);
        V acc0 = vzero(), acc1 = vzero();
        int64_t d = 0;
        for (; d + 2 <= Dh; d += 2) {
          acc0 = vfma(vset1(qr[d]), vloadn(kt + d * BS + c, w), acc0);
          acc1 = vfma(vset1(qr[d + 1]), vloadn(kt + (d + 1) * BS + c, w), acc1);
        }
        if (d < Dh) acc0 = vfma(vset1(qr[d]), vloadn(kt + d * BS + c, w), acc0);
        vstoren(s + c, (acc0 + acc1) * scale, w);
      }
    }
  }
  float* o = sc + R * sp;  // [R, Dh] accumulators
  std::fill(o, o + R * Dh, 0.f);
  float linv[kPagedFewRows];
  for (int64_t r = 0; r < R; ++r) {
    float* s = sc + r * sp;
    const int64_t n = ctx - qn + r / G + 1;  // keys [0, n) visible; later ones get probability 0
    const int64_t np = roundUp(ctx, W);
    std::fill(s + n, s + np, ninf);
    V mv = vset1(ninf);
    for (int64_t c = 0; c < np; c += W) mv = vmax(vload(s + c), mv);
    const V m = vset1(vhmax(mv));
    V sum = vzero();
    for (int64_t c = 0; c < np; c += W) {
      const V p = vexp(vload(s + c) - m);
      vstore(s + c, p);
      sum = sum + p;
    }
    linv[r] = 1.f / vsum(sum);
  }
  for (int64_t j0 = 0; j0 < ctx; j0 += BS) {
    const int64_t nb = std::min(BS, ctx - j0);
    const float* vb = vc + (table[j0 / BS] * Hkv + g) * BS * Dh;
    for (int64_t jj = 0; jj < nb; ++jj) {
      const float* vr = vb + jj * Dh;
      for (int64_t r = 0; r < R; ++r) {
        const float p = sc[r * sp + j0 + jj];
        if (p == 0.f) continue;  // masked (exp(-inf)) or underflowed
        float* orow = o + r * Dh;
        const V pv = vset1(p);
        int64_t d = 0;
        for (; d + W <= Dh; d += W) vstore(orow + d, vfma(pv, vload(vr + d), vload(orow + d)));
        if (d < Dh) vstoren(orow + d, vfma(pv, vloadn(vr + d, Dh - d), vloadn(orow + d, Dh - d)), Dh - d);
      }
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    float* dst = out + ((q0 + r / G) * H + g * G + r % G) * Dh;
    for (int64_t d = 0; d < Dh; ++d) dst[d] = o[r * Dh + d] * linv[r];
  }
}

void pagedAttentionKernel(float* out, const float* q, const float* kc, const float* vc, const int32_t* tables,
                          const int32_t* ctxLens, const int32_t* qStarts, const fk::PagedShape& sh) {
  const int64_t H = sh.h, Hkv = sh.hkv, Dh = sh.dh, BS = sh.blockSize, G = H / Hkv;
  std::vector<int64_t> few, many;  // sequences by path
  int64_t maxCtx = 0, work = 0;
  for (int64_t s = 0; s < sh.numSeqs; ++s) {
    const int64_t qn = qStarts[s + 1] - qStarts[s];
    if (qn <= 0) continue;
    (G * qn <= kPagedFewRows ? few : many).push_back(s);
    maxCtx = std::max<int64_t>(maxCtx, ctxLens[s]);
    work += G * qn * ctxLens[s] * Dh * 2;
  }
  const int64_t items = static_cast<int64_t>(few.size()) * Hkv;
  parallelFor(items, items > 0 ? work / std::max<int64_t>(items, 1) + 1 : 0, [&](int64_t i0, int64_t i1) {
    float* sc = scratch(3, kPagedFewRows * (roundUp(maxCtx, W) + W + Dh));
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t s = few[it / Hkv], g = it % Hkv;
      pagedGroup(out, q, kc, vc, tables + s * sh.maxBlocks, ctxLens[s], qStarts[s], qStarts[s + 1] - qStarts[s], g,
                 sh, sc);
    }
  }, 1);
  for (const int64_t s : many) {
    const int64_t q0 = qStarts[s], qn = qStarts[s + 1] - q0, ctx = ctxLens[s];
    float* kd = decodeScratch(0, Hkv * ctx * Dh);  // [Hkv, ctx, Dh]
    float* vd = decodeScratch(1, Hkv * ctx * Dh);
    float* qd = decodeScratch(2, (H * qn * Dh) * 2 + H * qn);  // q [H, qn, Dh], out, lse
    float* od = qd + H * qn * Dh;
    float* lse = od + H * qn * Dh;
    const int32_t* table = tables + s * sh.maxBlocks;
    for (int64_t g = 0; g < Hkv; ++g)
      for (int64_t j0 = 0; j0 < ctx; j0 += BS) {
        const int64_t nb = std::min(BS, ctx - j0), at = (table[j0 / BS] * Hkv + g) * BS * Dh;
        float* kdst = kd + (g * ctx + j0) * Dh;
        for (int64_t jj = 0; jj < nb; ++jj)
          for (int64_t d = 0; d < Dh; ++d) kdst[jj * Dh + d] = kc[at + d * BS + jj];  // [Dh, BS] -> rows
        std::copy(vc + at, vc + at + nb * Dh, vd + (g * ctx + j0) * Dh);
      }
    for (int64_t i = 0; i < qn; ++i)
      for (int64_t h = 0; h < H; ++h) std::copy_n(q + ((q0 + i) * H + h) * Dh, Dh, qd + (h * qn + i) * Dh);
    const fk::AttnShape ash{1, H, Hkv, qn, ctx, Dh, ctx, sh.scale, true};
    attentionKernel(od, lse, qd, kd, vd, nullptr, ash);
    for (int64_t i = 0; i < qn; ++i)
      for (int64_t h = 0; h < H; ++h) std::copy_n(od + (h * qn + i) * Dh, Dh, out + ((q0 + i) * H + h) * Dh);
  }
}

// ---- sampling ----

// Greedy: the first maximal logit, with log_softmax at temperature 1.
void sampleGreedy(const float* x, int64_t v, int32_t& id, float& logprob) {
  int64_t best = 0;
  for (int64_t j = 1; j < v; ++j)
    if (x[j] > x[best]) best = j;
  const float mx = x[best];
  double z = 0;
  for (int64_t j0 = 0; j0 < v; j0 += kRowBlock) {
    const int64_t j1 = std::min(v, j0 + kRowBlock);
    V s = vzero();
    int64_t j = j0;
    for (; j + W <= j1; j += W) s = s + vexp(vload(x + j) - vset1(mx));
    float tail = 0.f;
    for (; j < j1; ++j) tail += std::exp(x[j] - mx);
    z += static_cast<double>(vsum(s)) + tail;
  }
  id = static_cast<int32_t>(best);
  logprob = static_cast<float>(-std::log(z));
}

// One sampled row; p (v floats) and idx (v ints) are scratch. See Kernels.sampleTokens / ref_decode.ts sampleRow.
void sampleOne(const float* x, int64_t v, float temp, int32_t topK, float topP, float minP, float u, int32_t& id,
               float& logprob, float* p, int32_t* idx) {
  const float invT = 1.f / temp;
  V mv = vset1(-__builtin_inff());
  int64_t j = 0;
  for (; j + W <= v; j += W) mv = vmax(vload(x + j) * vset1(invT), mv);
  float mx = vhmax(mv);
  for (; j < v; ++j) mx = std::max(mx, x[j] * invT);
  const V m = vset1(mx), it = vset1(invT);
  double z = 0;
  for (int64_t j0 = 0; j0 < v; j0 += kRowBlock) {  // blocks summed in double (a 150k vocabulary stays accurate)
    const int64_t j1 = std::min(v, j0 + kRowBlock);
    V s = vzero();
    int64_t jj = j0;
    for (; jj + W <= j1; jj += W) {
      const V e = vexp(vload(x + jj) * it - m);
      vstore(p + jj, e);
      s = s + e;
    }
    float tail = 0.f;
    for (; jj < j1; ++jj) tail += p[jj] = std::exp(x[jj] * invT - mx);
    z += static_cast<double>(vsum(s)) + tail;
  }
  const bool useK = topK > 0 && topK < v;
  int64_t n = useK ? topK : v;  // kept prefix of the (p desc, id asc) order
  if (useK || topP < 1.f || minP > 0.f) {
    for (int64_t i = 0; i < v; ++i) idx[i] = static_cast<int32_t>(i);
    auto before = [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
    int64_t sorted = 0;
    auto sortTo = [&](int64_t c) {  // the first c of idx in order (partial sorts grow 4x)
      c = std::min(c, v);
      if (c <= sorted) return;
      std::partial_sort(idx + sorted, idx + c, idx + v, before);
      sorted = c;
    };
    sortTo(useK ? n : std::min<int64_t>(v, 64));
    if (topP < 1.f) {
      double kept = 0;  // mass of the top-k (normalised by z below), or all of it
      if (useK) for (int64_t r = 0; r < n; ++r) kept += p[idx[r]];
      else kept = z;
      const double target = static_cast<double>(topP) * kept;
      double pre = p[idx[0]];
      int64_t r = 1;
      for (; r < n; ++r) {  // rank r stays while the mass above it is below topP of the kept mass
        if (r >= sorted) sortTo(sorted * 4);
        if (pre >= target) break;
        pre += p[idx[r]];
      }
      n = r;
    }
    if (minP > 0.f) {
      const float floor = minP * p[idx[0]];
      int64_t r = 1;
      for (; r < n; ++r) {
        if (r >= sorted) sortTo(sorted * 4);
        if (p[idx[r]] < floor) break;
      }
      n = r;
    }
  }
  double r = static_cast<double>(u);
  int64_t pick = -1;
  if (n == v) {
    r *= z;
    for (int64_t jj = 0; jj < v; ++jj) {
      pick = jj;
      r -= p[jj];
      if (r < 0) break;
    }
  } else {
    std::sort(idx, idx + n);  // walk the kept tokens in id order
    double total = 0;
    for (int64_t k = 0; k < n; ++k) total += p[idx[k]];
    r *= total;
    for (int64_t k = 0; k < n; ++k) {
      pick = idx[k];
      r -= p[idx[k]];
      if (r < 0) break;
    }
  }
  id = static_cast<int32_t>(pick);
  logprob = static_cast<float>(static_cast<double>(x[pick] * invT - mx) - std::log(z));
}

void sampleTokensKernel(int32_t* ids, float* logprobs, const float* logits, const float* temperature,
                        const int32_t* topK, const float* topP, const float* minP, const float* uniform, int64_t rows,
                        int64_t v) {
  parallelFor(rows, v * 16, [&](int64_t r0, int64_t r1) {
    float* p = scratch(5, v);
    int32_t* idx = reinterpret_cast<int32_t*>(scratch(6, v));
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = logits + r * v;
      if (!(temperature[r] > 0.f)) sampleGreedy(x, v, ids[r], logprobs[r]);
      else sampleOne(x, v, temperature[r], topK[r], topP[r], minP[r], uniform[r], ids[r], logprobs[r], p, idx);
    }
  }, 1);
}
