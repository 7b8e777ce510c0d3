// N-API side of the fused kernels: attention (+ backward), softmax / logSoftmax, tokenLogprobs (+ backward),
// rmsNorm (+ backward), rope, swiglu (+ backward) and adamw, each exported under its Kernels method name
// with the Kernels argument list (src/backend/types.ts). It checks argument types, sizes and lengths, then
// calls the kernel table of the CPU's ISA (fused_kernels.h); the loops themselves are in fused_impl_*.h.
#include <string>

#include "fused_args.h"
#include "fused_kernels.h"
#include "nexus.h"

namespace nexus::fk {

const Table& table() {
  static const Table& t = []() -> const Table& {
    switch (simdLevel()) {
      case SimdLevel::Avx512: return tableAvx512();
      case SimdLevel::Avx2: return tableAvx2();
      default: return tableScalar();
    }
  }();
  return t;
}

namespace {

// softmax / logSoftmax(out, x, rows, n)
Napi::Value softmaxImpl(const Napi::CallbackInfo& info, const char* name, bool log) {
  Args a(info, name, 4);
  const int64_t rows = a.size(2, "rows"), n = a.size(3, "n"), rn = a.prod({rows, n});
  float* out = a.f32(0, "out", rn, "rows * n");
  const float* x = a.f32(1, "x", rn, "rows * n");
  if (rn == 0) return a.env().Undefined();  // n = 0 with any number of rows: nothing to do
  table().softmax(out, x, rows, n, log);
  return a.env().Undefined();
}
Napi::Value softmax(const Napi::CallbackInfo& info) { return softmaxImpl(info, "softmax", false); }
Napi::Value logSoftmax(const Napi::CallbackInfo& info) { return softmaxImpl(info, "logSoftmax", true); }

// tokenLogprobs(out, lse, logits, targets, rows, v)
Napi::Value tokenLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs", 6);
  const int64_t rows = a.size(4, "rows"), v = a.size(5, "v"), rv = a.prod({rows, v});
  float* out = a.f32(0, "out", rows, "rows");
  float* lse = a.f32(1, "lse", rows, "rows");
  const float* logits = a.f32(2, "logits", rv, "rows * v");
  const int32_t* targets = a.i32(3, "targets", rows, "rows");
  a.checkIndices(targets, rows, v, "targets");
  table().tokenLogprobs(out, lse, logits, targets, rows, v);
  return a.env().Undefined();
}

// tokenLogprobsBackward(dlogits, dout, logits, lse, targets, rows, v)
Napi::Value tokenLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobsBackward", 7);
  const int64_t rows = a.size(5, "rows"), v = a.size(6, "v"), rv = a.prod({rows, v});
  float* dlogits = a.f32(0, "dlogits", rv, "rows * v");
  const float* dout = a.f32(1, "dout", rows, "rows");
  const float* logits = a.f32(2, "logits", rv, "rows * v");
  const float* lse = a.f32(3, "lse", rows, "rows");
  const int32_t* targets = a.i32(4, "targets", rows, "rows");
  a.checkIndices(targets, rows, v, "targets");
  table().tokenLogprobsBackward(dlogits, dout, logits, lse, targets, rows, v);
  return a.env().Undefined();
}

// rmsNorm(y, rstd, x, w, rows, d, eps)
Napi::Value rmsNorm(const Napi::CallbackInfo& info) {
  Args a(info, "rmsNorm", 7);
  const int64_t rows = a.size(4, "rows"), d = a.size(5, "d"), rd = a.prod({rows, d});
  table().rmsNorm(a.f32(0, "y", rd, "rows * d"), a.f32(1, "rstd", rows, "rows"), a.f32(2, "x", rd, "rows * d"),
                  a.f32(3, "w", d, "d"), rows, d, a.num(6, "eps"));
  return a.env().Undefined();
}

// rmsNormBackward(dx, dw, dy, x, w, rstd, rows, d)
Napi::Value rmsNormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsNormBackward", 8);
  const int64_t rows = a.size(6, "rows"), d = a.size(7, "d"), rd = a.prod({rows, d});
  table().rmsNormBackward(a.f32(0, "dx", rd, "rows * d"), a.f32(1, "dw", d, "d"), a.f32(2, "dy", rd, "rows * d"),
                          a.f32(3, "x", rd, "rows * d"), a.f32(4, "w", d, "d"), a.f32(5, "rstd", rows, "rows"), rows,
                          d);
  return a.env().Undefined();
}

// rope(out, x, cos, sin, b, h, t, dh, inverse)
Napi::Value rope(const Napi::CallbackInfo& info) {
  Args a(info, "rope", 9);
  const int64_t b = a.size(4, "b"), h = a.size(5, "h"), t = a.size(6, "t"), dh = a.size(7, "dh");
  if (dh % 2 != 0) a.fail("dh must be even, got " + std::to_string(dh));
  const int64_t nx = a.prod({b, h, t, dh}), nc = a.prod({b, t, dh / 2});
  if (nx == 0) {  // still type-check the arrays, then do nothing (no loop over the nonzero dims)
    a.f32(0, "out"), a.f32(1, "x"), a.f32(2, "cos"), a.f32(3, "sin");
    return a.env().Undefined();
  }
  table().rope(a.f32(0, "out", nx, "b * h * t * dh"), a.f32(1, "x", nx, "b * h * t * dh"),
               a.f32(2, "cos", nc, "b * t * dh / 2"), a.f32(3, "sin", nc, "b * t * dh / 2"), b, h, t, dh, a.flag(8));
  return a.env().Undefined();
}

// Reads b, h, hkv, t, s, dh, scale, causal starting at argument `at`.
AttnShape attnShape(const Args& a, size_t at) {
  AttnShape sh{a.size(at, "b"),  a.size(at + 1, "h"), a.size(at + 2, "hkv"), a.size(at + 3, "t"),
               a.size(at + 4, "s"), a.size(at + 5, "dh"), 0, static_cast<float>(a.num(at + 6, "scale")),
               a.flag(at + 7)};
  sh.sCap = sh.s;
  if (sh.hkv == 0 || sh.h % sh.hkv != 0)
    a.fail("h (" + std::to_string(sh.h) + ") must be a positive multiple of hkv (" + std::to_string(sh.hkv) + ")");
  if (!(sh.scale > 0.f) || !std::isfinite(sh.scale)) a.fail("scale must be finite and positive");
  // dh = 0 would make every array empty while the loops still ran over b * h * t * s
  if (sh.dh == 0) a.fail("dh must be at least 1");
  return sh;
}

// attention(out, lse, q, k, v, keyMask, b, h, hkv, t, s, dh, scale, causal, sCap = s)
Napi::Value attention(const Napi::CallbackInfo& info) {
  Args a(info, "attention", 14);
  AttnShape sh = attnShape(a, 6);
  if (info.Length() > 14 && !info[14].IsUndefined()) sh.sCap = a.size(14, "sCap");
  if (sh.sCap < sh.s) a.fail("sCap (" + std::to_string(sh.sCap) + ") must be at least s (" + std::to_string(sh.s) + ")");
  const int64_t nq = a.prod({sh.b, sh.h, sh.t, sh.dh}), nkv = a.prod({sh.b, sh.hkv, sh.sCap, sh.dh});
  const int64_t nl = a.prod({sh.b, sh.h, sh.t}), nm = a.prod({sh.b, sh.s});
  table().attention(a.f32(0, "out", nq, "b * h * t * dh"), a.f32(1, "lse", nl, "b * h * t"),
                    a.f32(2, "q", nq, "b * h * t * dh"), a.f32(3, "k", nkv, "b * hkv * sCap * dh"),
                    a.f32(4, "v", nkv, "b * hkv * sCap * dh"), a.f32OrNull(5, "keyMask", nm, "b * s"), sh);
  return a.env().Undefined();
}

// attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, keyMask, b, h, hkv, t, s, dh, scale, causal)
Napi::Value attentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward", 18);
  const AttnShape sh = attnShape(a, 10);
  const int64_t nq = a.prod({sh.b, sh.h, sh.t, sh.dh}), nkv = a.prod({sh.b, sh.hkv, sh.s, sh.dh});
  const int64_t nl = a.prod({sh.b, sh.h, sh.t}), nm = a.prod({sh.b, sh.s});
  const char* qs = "b * h * t * dh";
  const char* ks = "b * hkv * s * dh";
  table().attentionBackward(a.f32(0, "dq", nq, qs), a.f32(1, "dk", nkv, ks), a.f32(2, "dv", nkv, ks),
                            a.f32(3, "dout", nq, qs), a.f32(4, "q", nq, qs), a.f32(5, "k", nkv, ks),
                            a.f32(6, "v", nkv, ks), a.f32(7, "out", nq, qs), a.f32(8, "lse", nl, "b * h * t"),
                            a.f32OrNull(9, "keyMask", nm, "b * s"), sh);
  return a.env().Undefined();
}

// swiglu(out, gate, up): n = out.length, as in the reference
Napi::Value swiglu(const Napi::CallbackInfo& info) {
  Args a(info, "swiglu", 3);
  float* out = a.f32(0, "out");
  const int64_t n = a.length(0);
  table().swiglu(out, a.f32(1, "gate", n, "out.length"), a.f32(2, "up", n, "out.length"), n);
  return a.env().Undefined();
}

// swigluBackward(dgate, dup, dout, gate, up): n = dout.length
Napi::Value swigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward", 5);
  const float* dout = a.f32(2, "dout");
  const int64_t n = a.length(2);
  const char* w = "dout.length";
  table().swigluBackward(a.f32(0, "dgate", n, w), a.f32(1, "dup", n, w), dout, a.f32(3, "gate", n, w),
                         a.f32(4, "up", n, w), n);
  return a.env().Undefined();
}

// adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2): in place over p.length
Napi::Value adamw(const Napi::CallbackInfo& info) {
  Args a(info, "adamw", 11);
  float* p = a.f32(0, "p");
  const int64_t n = a.length(0);
  const AdamWParams hp{a.num(4, "lr"),          a.num(5, "beta1"), a.num(6, "beta2"), a.num(7, "eps"),
                       a.num(8, "weightDecay"), a.num(9, "bc1"),   a.num(10, "bc2")};
  table().adamw(p, a.f32(1, "g", n, "p.length"), a.f32(2, "m", n, "p.length"), a.f32(3, "v", n, "p.length"), n, hp);
  return a.env().Undefined();
}

}  // namespace
}  // namespace nexus::fk

namespace nexus {

void registerFused(Napi::Env env, Napi::Object exports) {
  using namespace fk;
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"softmax", softmax},
      {"logSoftmax", logSoftmax},
      {"tokenLogprobs", tokenLogprobs},
      {"tokenLogprobsBackward", tokenLogprobsBackward},
      {"rmsNorm", rmsNorm},
      {"rmsNormBackward", rmsNormBackward},
      {"rope", rope},
      {"attention", attention},
      {"attentionBackward", attentionBackward},
      {"swiglu", swiglu},
      {"swigluBackward", swigluBackward},
      {"adamw", adamw},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  exports.Set("fusedSimd", Napi::String::New(env, table().name));
}

}  // namespace nexus
