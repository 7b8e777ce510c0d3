// N-API side of the decode kernels: pagedKvWrite, copyBlocks, pagedAttention and sampleTokens, each exported under
// its Kernels method name with the Kernels argument list (src/backend/types.ts, "decode"). Block ids, slots and
// query ranges come from TypeScript bookkeeping, so they are range-checked here before any pointer is formed; the
// loops are in fused_impl_decode.h (paged attention, sampling) or below (plain row copies). The packed Linear is in
// gemm.cc.
#include <cstring>
#include <string>

#include "fused_args.h"
#include "fused_kernels.h"
#include "nexus.h"

namespace nexus::fk {
namespace {

// pagedKvWrite(kCache, vCache, k, v, slots, n, hkv, dh, blockSize)
Napi::Value pagedKvWrite(const Napi::CallbackInfo& info) {
  Args a(info, "pagedKvWrite", 9);
  const int64_t n = a.size(5, "n"), hkv = a.size(6, "hkv"), dh = a.size(7, "dh"), bs = a.size(8, "blockSize");
  if (bs == 0 || hkv == 0 || dh == 0) a.fail("hkv, dh and blockSize must be positive");
  const int64_t row = a.prod({hkv, dh}), blockElems = a.prod({row, bs});
  float* kc = a.f32(0, "kCache");
  float* vc = a.f32(1, "vCache", a.length(0), "kCache's length");
  const float* k = a.f32(2, "k", a.prod({n, row}), "n * hkv * dh");
  const float* v = a.f32(3, "v", a.prod({n, row}), "n * hkv * dh");
  const int32_t* slots = a.i32(4, "slots", n, "n");
  const int64_t numBlocks = a.length(0) / blockElems;
  a.checkSlots(slots, n, numBlocks * bs);
  for (int64_t i = 0; i < n; ++i) {
    if (slots[i] < 0) continue;
    const int64_t blk = slots[i] / bs, r = slots[i] % bs;
    for (int64_t g = 0; g < hkv; ++g) {
      const int64_t src = (i * hkv + g) * dh;
      float* kt = kc + (blk * hkv + g) * dh * bs + r;  // keys transposed within a block: [Dh, blockSize]
      for (int64_t d = 0; d < dh; ++d) kt[d * bs] = k[src + d];
      std::memcpy(vc + ((blk * hkv + g) * bs + r) * dh, v + src, sizeof(float) * dh);
    }
  }
  return a.env().Undefined();
}

// copyBlocks(cache, src, dst, n, blockElems)
Napi::Value copyBlocks(const Napi::CallbackInfo& info) {
  Args a(info, "copyBlocks", 5);
  const int64_t n = a.size(3, "n"), be = a.size(4, "blockElems");
  float* cache = a.f32(0, "cache");
  const int32_t* src = a.i32(1, "src", n, "n");
  const int32_t* dst = a.i32(2, "dst", n, "n");
  if (be == 0) return a.env().Undefined();
  const int64_t numBlocks = a.length(0) / be;
  a.checkIndices(src, n, numBlocks, "src");
  a.checkIndices(dst, n, numBlocks, "dst");
  for (int64_t i = 0; i < n; ++i) std::memmove(cache + dst[i] * be, cache + src[i] * be, sizeof(float) * be);
  return a.env().Undefined();
}

// pagedAttention(out, q, kCache, vCache, blockTables, contextLens, queryStarts, numSeqs, h, hkv, dh, blockSize,
//                maxBlocks, scale)
Napi::Value pagedAttention(const Napi::CallbackInfo& info) {
  Args a(info, "pagedAttention", 14);
  PagedShape sh{a.size(7, "numSeqs"), a.size(8, "h"),          a.size(9, "hkv"),
                a.size(10, "dh"),     a.size(11, "blockSize"), a.size(12, "maxBlocks"),
                static_cast<float>(a.num(13, "scale"))};
  if (sh.hkv == 0 || sh.h % sh.hkv != 0)
    a.fail("h (" + std::to_string(sh.h) + ") must be a positive multiple of hkv (" + std::to_string(sh.hkv) + ")");
  if (sh.blockSize == 0 || sh.dh == 0) a.fail("dh and blockSize must be positive");
  if (!(sh.scale > 0.f) || !std::isfinite(sh.scale)) a.fail("scale must be finite and positive");
  const int32_t* qs = a.i32(6, "queryStarts", sh.numSeqs + 1, "numSeqs + 1");
  const int32_t* ctx = a.i32(5, "contextLens", sh.numSeqs, "numSeqs");
  const int32_t* tables = a.i32(4, "blockTables", a.prod({sh.numSeqs, sh.maxBlocks}), "numSeqs * maxBlocks");
  const int64_t blockElems = a.prod({sh.hkv, sh.blockSize, sh.dh});
  const float* kc = a.f32(2, "kCache");
  const float* vc = a.f32(3, "vCache", a.length(2), "kCache's length");
  const int64_t numBlocks = a.length(2) / blockElems;
  if (qs[0] < 0) a.fail("queryStarts[0] must be >= 0");
  for (int64_t s = 0; s < sh.numSeqs; ++s) {
    const int64_t qn = static_cast<int64_t>(qs[s + 1]) - qs[s], c = ctx[s];
    if (qn < 0) a.fail("queryStarts must not decrease (sequence " + std::to_string(s) + ")");
    if (qn > 0 && c < qn)
      a.fail("contextLens[" + std::to_string(s) + "] = " + std::to_string(c) + " is below its " + std::to_string(qn) +
             " query rows");
    const int64_t used = (c + sh.blockSize - 1) / sh.blockSize;
    if (used > sh.maxBlocks)
      a.fail("sequence " + std::to_string(s) + " needs " + std::to_string(used) + " blocks, maxBlocks is " +
             std::to_string(sh.maxBlocks));
    if (qn > 0) a.checkIndices(tables + s * sh.maxBlocks, used, numBlocks, "blockTables");
  }
  const int64_t rows = qs[sh.numSeqs], qElems = a.prod({rows, sh.h, sh.dh});
  float* out = a.f32(0, "out", qElems, "queryStarts[numSeqs] * h * dh");
  const float* q = a.f32(1, "q", qElems, "queryStarts[numSeqs] * h * dh");
  table().pagedAttention(out, q, kc, vc, tables, ctx, qs, sh);
  return a.env().Undefined();
}

// sampleTokens(ids, logprobs, logits, temperature, topK, topP, minP, uniform, rows, v)
Napi::Value sampleTokens(const Napi::CallbackInfo& info) {
  Args a(info, "sampleTokens", 10);
  const int64_t rows = a.size(8, "rows"), v = a.size(9, "v");
  if (v == 0 && rows > 0) a.fail("v must be positive");
  int32_t* ids = a.i32(0, "ids", rows, "rows");
  float* lp = a.f32(1, "logprobs", rows, "rows");
  const float* logits = a.f32(2, "logits", a.prod({rows, v}), "rows * v");
  const float* t = a.f32(3, "temperature", rows, "rows");
  const int32_t* k = a.i32(4, "topK", rows, "rows");
  const float* p = a.f32(5, "topP", rows, "rows");
  const float* m = a.f32(6, "minP", rows, "rows");
  const float* u = a.f32(7, "uniform", rows, "rows");
  table().sampleTokens(ids, lp, logits, t, k, p, m, u, rows, v);
  return a.env().Undefined();
}

}  // namespace
}  // namespace nexus::fk

namespace nexus {

void registerDecode(Napi::Env env, Napi::Object exports) {
  exports.Set("pagedKvWrite", Napi::Function::New(env, fk::pagedKvWrite, "pagedKvWrite"));
  exports.Set("copyBlocks", Napi::Function::New(env, fk::copyBlocks, "copyBlocks"));
  exports.Set("pagedAttention", Napi::Function::New(env, fk::pagedAttention, "pagedAttention"));
  exports.Set("sampleTokens", Napi::Function::New(env, fk::sampleTokens, "sampleTokens"));
}

}  // namespace nexus
