// N-API side of the elementwise, reduction and indexing kernels: unary, binary, where, sum, max, logsumexp,
// copyStrided, copyToStrided, gather, scatterAdd, indexSelect, indexAdd, sort, under their Kernels method names and
// argument lists.
// SIMD math goes through the per-ISA table (fused_kernels.h); the pure data movement (copies, gathers) is
// plain C++ here. Broadcast layouts are coalesced here so the table only sees the few dims that matter.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fused_args.h"
#include "fused_kernels.h"
#include "nexus.h"
#include "thread_pool.h"

namespace nexus::fk {
namespace {

constexpr int64_t kParallelMin = 131072;  // elements below which copies stay on the calling thread

// Same order as UNARY_OPS / BINARY_OPS in src/backend/types.ts and the enums in fused_kernels.h.
const char* const kUnaryNames[] = {"neg",      "exp",        "log",       "log1p",      "expm1",     "sqrt",
                                   "rsqrt",    "abs",        "sign",      "sigmoid",    "tanh",      "relu",
                                   "silu",     "softplus",   "logSigmoid", "log1mexp",  "square",    "reciprocal",
                                   "powScalar", "clamp",     "addScalar", "mulScalar",  "gtScalar",  "siluGrad"};
const char* const kBinaryNames[] = {"add", "sub", "mul", "div", "pow", "minimum", "maximum", "gt", "ge", "eq"};
static_assert(sizeof(kUnaryNames) / sizeof(kUnaryNames[0]) == static_cast<size_t>(Unary::Count));
static_assert(sizeof(kBinaryNames) / sizeof(kBinaryNames[0]) == static_cast<size_t>(Binary::Count));

template <size_t N>
int opIndex(const Args& a, const char* const (&names)[N], const char* kind) {
  if (!a[0].IsString()) a.typeFail(std::string(kind) + " op must be a string");
  const std::string op = a[0].As<Napi::String>().Utf8Value();
  for (size_t i = 0; i < N; ++i)
    if (op == names[i]) return static_cast<int>(i);
  a.fail("unknown " + std::string(kind) + " op '" + op + "'");
}

std::vector<int64_t> intArray(const Args& a, Napi::Value v, const char* name) {
  if (!v.IsArray()) a.typeFail(std::string(name) + " must be an array of integers");
  const Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const Napi::Value e = arr.Get(i);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (d != std::floor(d) || std::fabs(d) > 9.0e15) a.fail(std::string(name) + " must hold integers");
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

// Drops size-1 dims and merges neighbours that are contiguous in every operand (strides[k] lists one
// stride vector per operand; out is always contiguous), so [B, T, D] + [D] becomes [B*T, D] with b strides (0, 1).
int coalesce(std::vector<int64_t>& shape, std::vector<std::vector<int64_t>*> strides) {
  std::vector<int64_t> s;
  std::vector<std::vector<int64_t>> st(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s.empty();
    for (size_t k = 0; k < strides.size() && merge; ++k) merge = st[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      s.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) st[k].back() = (*strides[k])[d];
    } else {
      s.push_back(shape[d]);
      for (size_t k = 0; k < strides.size(); ++k) st[k].push_back((*strides[k])[d]);
    }
  }
  shape = s;
  for (size_t k = 0; k < strides.size(); ++k) *strides[k] = st[k];
  return static_cast<int>(s.size());
}

// Elements [lo, hi] an operand with these strides reaches from `offset`; throws when outside [0, len).
// 128-bit sums: shapes and strides are each below 2^53, so (shape - 1) * stride summed over kMaxDims + 2
// dims cannot wrap (a stride of 2^52 over 2049 rows is 2^63, which int64 arithmetic would turn negative).
void checkReach(const Args& a, const char* name, const std::vector<int64_t>& shape, const std::vector<int64_t>& st,
                int64_t offset, int64_t len) {
  __int128 lo = offset, hi = offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return;  // nothing is read
    (st[d] < 0 ? lo : hi) += static_cast<__int128>(shape[d] - 1) * st[d];
  }
  if (lo < 0 || hi >= len) {
    auto str = [](__int128 v) {
      if (v > INT64_MAX) return std::string("above 2^63");
      if (v < INT64_MIN) return std::string("below -2^63");
      return std::to_string(static_cast<int64_t>(v));
    };
    a.fail(std::string(name) + " is read at elements [" + str(lo) + ", " + str(hi) + "] but has " + std::to_string(len));
  }
}

// unary(op, out, x, p0, p1): n = x.length
Napi::Value unary(const Napi::CallbackInfo& info) {
  Args a(info, "unary", 5);
  const auto op = static_cast<Unary>(opIndex(a, kUnaryNames, "unary"));
  const float* x = a.f32(2, "x");
  const int64_t n = a.length(2);
  table().unary(op, a.f32(1, "out", n, "x.length"), x, n, a.num(3, "p0"), a.num(4, "p1"));
  return a.env().Undefined();
}

// binary(op, out, a, b, {outShape, aStrides, bStrides}): same-length and scalar fast paths as the reference,
// otherwise the coalesced layout.
Napi::Value binary(const Napi::CallbackInfo& info) {
  Args a(info, "binary", 5);
  const auto op = static_cast<Binary>(opIndex(a, kBinaryNames, "binary"));
  float* out = a.f32(1, "out");
  const float* x = a.f32(2, "a");
  const float* y = a.f32(3, "b");
  const int64_t n = a.length(1), na = a.length(2), nb = a.length(3);
  int64_t one[1] = {n}, unit[1] = {1}, zero[1] = {0};
  if (na == n && nb == n) return table().binary(op, out, x, y, 1, one, unit, unit), a.env().Undefined();
  if (na == n && nb == 1) return table().binary(op, out, x, y, 1, one, unit, zero), a.env().Undefined();
  if (na == 1 && nb == n) return table().binary(op, out, x, y, 1, one, zero, unit), a.env().Undefined();
  if (!a[4].IsObject()) a.typeFail("layout must be an object {outShape, aStrides, bStrides}");
  const Napi::Object layout = a[4].As<Napi::Object>();
  std::vector<int64_t> shape = intArray(a, layout.Get("outShape"), "layout.outShape");
  std::vector<int64_t> as = intArray(a, layout.Get("aStrides"), "layout.aStrides");
  std::vector<int64_t> bs = intArray(a, layout.Get("bStrides"), "layout.bStrides");
  if (as.size() != shape.size() || bs.size() != shape.size()) a.fail("layout strides and outShape differ in rank");
  for (int64_t s : shape)
    if (s < 0) a.fail("layout.outShape has a negative size");
  int64_t total = 1;
  for (int64_t s : shape) total = a.prod({total, s});
  if (total != n) a.fail("out has " + std::to_string(n) + " elements, layout.outShape has " + std::to_string(total));
  checkReach(a, "a", shape, as, 0, na);
  checkReach(a, "b", shape, bs, 0, nb);
  const int nd = coalesce(shape, {&as, &bs});
  if (nd > kMaxDims) a.fail("more than " + std::to_string(kMaxDims) + " non-contiguous dims");
  if (n > 0) table().binary(op, out, x, y, nd, shape.data(), as.data(), bs.data());
  return a.env().Undefined();
}

// where(out, cond, a, b): n = out.length
Napi::Value where(const Napi::CallbackInfo& info) {
  Args a(info, "where", 4);
  float* out = a.f32(0, "out");
  const int64_t n = a.length(0);
  table().where(out, a.f32(1, "cond", n, "out.length"), a.f32(2, "a", n, "out.length"), a.f32(3, "b", n, "out.length"),
                n);
  return a.env().Undefined();
}

// Reductions over x [outer, n, inner]: (out, x, outer, n, inner) with x at argument `xi`.
struct Reduce {
  int64_t outer, n, inner, nx, no;
};
Reduce reduceSizes(const Args& a, size_t at) {
  Reduce r{a.size(at, "outer"), a.size(at + 1, "n"), a.size(at + 2, "inner"), 0, 0};
  r.nx = a.prod({r.outer, r.n, r.inner});
  r.no = a.prod({r.outer, r.inner});
  return r;
}

Napi::Value sum(const Napi::CallbackInfo& info) {
  Args a(info, "sum", 5);
  const Reduce r = reduceSizes(a, 2);
  float* out = a.f32(0, "out", r.no, "outer * inner");
  const float* x = a.f32(1, "x", r.nx, "outer * n * inner");
  if (r.no == 0) return a.env().Undefined();  // no output: outer or inner is 0 (the other may be anything)
  table().sum(out, x, r.outer, r.n, r.inner);
  return a.env().Undefined();
}

Napi::Value logsumexp(const Napi::CallbackInfo& info) {
  Args a(info, "logsumexp", 5);
  const Reduce r = reduceSizes(a, 2);
  float* out = a.f32(0, "out", r.no, "outer * inner");
  const float* x = a.f32(1, "x", r.nx, "outer * n * inner");
  if (r.no == 0) return a.env().Undefined();
  table().logsumexp(out, x, r.outer, r.n, r.inner);
  return a.env().Undefined();
}

// max(out, idx, x, outer, n, inner): first maximal index; a NaN wins over numbers and the first NaN is kept.
Napi::Value max(const Napi::CallbackInfo& info) {
  Args a(info, "max", 6);
  const Reduce r = reduceSizes(a, 3);
  float* out = a.f32(0, "out", r.no, "outer * inner");
  int32_t* idx = a.i32(1, "idx", r.no, "outer * inner");
  const float* x = a.f32(2, "x", r.nx, "outer * n * inner");
  if (r.no == 0) return a.env().Undefined();
  const int64_t inner = r.inner, n = r.n;
  pool::forRange(r.outer, r.nx >= kParallelMin && r.outer > 1, [&](int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    float* bo = out + o * inner;
    int32_t* io = idx + o * inner;
    std::fill(bo, bo + inner, -INFINITY);
    std::fill(io, io + inner, 0);
    for (int64_t j = 0; j < n; ++j) {
      const float* row = x + (o * n + j) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const float v = row[i];
        if (v > bo[i] || (v != v && bo[i] == bo[i])) {
          bo[i] = v;
          io[i] = static_cast<int32_t>(j);
        }
      }
    }
  }
  });
  return a.env().Undefined();
}

// copyStrided(out, x, shape, strides, offset): 4-byte elements moved as bits, so Float32Array and Int32Array
// share one path. Fast paths after coalescing: contiguous rows (memcpy), broadcast rows (fill) and a 2-D
// transpose (last two dims with unit stride on the second-to-last) done in 32 x 32 tiles.
Napi::Value copyStrided(const Napi::CallbackInfo& info) {
  Args a(info, "copyStrided", 5);
  auto type = [&](size_t i) {
    return a[i].IsTypedArray() ? a[i].As<Napi::TypedArray>().TypedArrayType() : napi_uint8_clamped_array;
  };
  if (type(0) != type(1) || (type(0) != napi_float32_array && type(0) != napi_int32_array))
    a.typeFail("out and x must both be Float32Array or both Int32Array");
  auto data = [&](size_t i) {
    const Napi::TypedArray t = a[i].As<Napi::TypedArray>();
    return reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  };
  uint32_t* out = data(0);
  const uint32_t* x = data(1);
  std::vector<int64_t> shape = intArray(a, a[2], "shape");
  std::vector<int64_t> st = intArray(a, a[3], "strides");
  const int64_t offset = a.size(4, "offset");
  if (st.size() != shape.size()) a.fail("shape and strides differ in rank");
  int64_t total = 1;
  for (int64_t s : shape) {
    if (s < 0) a.fail("shape has a negative size");
    total = a.prod({total, s});
  }
  const int64_t nOut = a.length(0);
  if (shape.empty()) {
    if (nOut > 0) {
      if (offset >= a.length(1)) a.fail("offset is past the end of x");
      out[0] = x[offset];
    }
    return a.env().Undefined();
  }
  if (nOut < total) a.fail("out has " + std::to_string(nOut) + " elements, shape needs " + std::to_string(total));
  checkReach(a, "x", shape, st, offset, a.length(1));
  if (total == 0) return a.env().Undefined();
  const int nd = coalesce(shape, {&st});
  if (nd == 0) {
    out[0] = x[offset];
    return a.env().Undefined();
  }
  const int64_t len = shape[nd - 1], ls = st[nd - 1];
  const bool transpose = nd >= 2 && st[nd - 2] == 1 && ls != 1;
  // rows: every dim but the last (or the last two for the transpose, whose blocks are [rows2, len])
  const int outerDims = transpose ? nd - 2 : nd - 1;
  const int64_t rows2 = transpose ? shape[nd - 2] : 1, block = rows2 * len;
  int64_t rows = 1;
  for (int d = 0; d < outerDims; ++d) rows *= shape[d];
  pool::forRange(rows, total >= kParallelMin && rows > 1, [&](int64_t r0, int64_t r1) {
    int64_t idx[kMaxDims + 2] = {0};
    int64_t xo = offset, rem = r0;
    for (int d = outerDims - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      xo += idx[d] * st[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      uint32_t* o = out + r * block;
      const uint32_t* xs = x + xo;
      if (transpose) {
        // o [rows2, len] from xs with strides (1, ls): reads run down columns, writes along rows
        for (int64_t a0 = 0; a0 < rows2; a0 += 32) {
          for (int64_t b0 = 0; b0 < len; b0 += 32) {
            const int64_t a1 = std::min(rows2, a0 + 32), b1 = std::min(len, b0 + 32);
            for (int64_t i = a0; i < a1; ++i)
              for (int64_t j = b0; j < b1; ++j) o[i * len + j] = xs[i + j * ls];
          }
        }
      } else if (ls == 1) {
        std::memcpy(o, xs, static_cast<size_t>(len) * 4);
      } else if (ls == 0) {
        std::fill(o, o + len, xs[0]);
      } else {
        for (int64_t j = 0; j < len; ++j) o[j] = xs[j * ls];
      }
      for (int d = outerDims - 1; d >= 0; --d) {
        xo += st[d];
        if (++idx[d] < shape[d]) break;
        xo -= st[d] * shape[d];
        idx[d] = 0;
      }
    }
  });
  return a.env().Undefined();
}

// copyToStrided(out, x, shape, outStrides, outOffset): the converse of copyStrided (x contiguous, out strided);
// concat and in-place cache writes. Rows along the last dim are memcpy'd when its out stride is 1.
Napi::Value copyToStrided(const Napi::CallbackInfo& info) {
  Args a(info, "copyToStrided", 5);
  auto type = [&](size_t i) {
    return a[i].IsTypedArray() ? a[i].As<Napi::TypedArray>().TypedArrayType() : napi_uint8_clamped_array;
  };
  if (type(0) != type(1) || (type(0) != napi_float32_array && type(0) != napi_int32_array))
    a.typeFail("out and x must both be Float32Array or both Int32Array");
  auto data = [&](size_t i) {
    const Napi::TypedArray t = a[i].As<Napi::TypedArray>();
    return reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  };
  uint32_t* out = data(0);
  const uint32_t* x = data(1);
  std::vector<int64_t> shape = intArray(a, a[2], "shape");
  std::vector<int64_t> st = intArray(a, a[3], "outStrides");
  const int64_t offset = a.size(4, "outOffset");
  if (st.size() != shape.size()) a.fail("shape and outStrides differ in rank");
  int64_t total = 1;
  for (int64_t s : shape) {
    if (s < 0) a.fail("shape has a negative size");
    total = a.prod({total, s});
  }
  if (a.length(1) < total) a.fail("x has " + std::to_string(a.length(1)) + " elements, shape needs " + std::to_string(total));
  if (shape.empty()) {
    if (offset >= a.length(0)) a.fail("outOffset is past the end of out");
    out[offset] = x[0];
    return a.env().Undefined();
  }
  checkReach(a, "out", shape, st, offset, a.length(0));
  if (total == 0) return a.env().Undefined();
  const int nd = static_cast<int>(shape.size());
  const int64_t len = shape[nd - 1], ls = st[nd - 1];
  const int64_t rows = total / len;
  pool::forRange(rows, total >= kParallelMin && rows > 1, [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(nd, 0);
    int64_t oo = offset, rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      oo += idx[d] * st[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      const uint32_t* xs = x + r * len;
      if (ls == 1) std::memcpy(out + oo, xs, static_cast<size_t>(len) * 4);
      else
        for (int64_t j = 0; j < len; ++j) out[oo + j * ls] = xs[j];
      for (int d = nd - 2; d >= 0; --d) {
        oo += st[d];
        if (++idx[d] < shape[d]) break;
        oo -= st[d] * shape[d];
        idx[d] = 0;
      }
    }
  });
  return a.env().Undefined();
}

// sort(values, indices, x, outer, n, inner, descending): stable along n, NaN last in both directions (as `ref`).
Napi::Value sort(const Napi::CallbackInfo& info) {
  Args a(info, "sort", 7);
  const int64_t outer = a.size(3, "outer"), n = a.size(4, "n"), inner = a.size(5, "inner");
  const int64_t total = a.prod({outer, n, inner});
  float* values = a.f32(0, "values", total, "outer * n * inner");
  int32_t* indices = a.i32(1, "indices", total, "outer * n * inner");
  const float* x = a.f32(2, "x", total, "outer * n * inner");
  const bool descending = a.flag(6);
  if (n > 2147483647) a.fail("n does not fit an Int32Array index");
  if (total == 0) return a.env().Undefined();  // n = 0: nothing to sort (outer * inner may be anything)
  pool::forRange(outer * inner, total >= kParallelMin && outer * inner > 1, [&](int64_t s0, int64_t s1) {
    std::vector<int32_t> order(static_cast<size_t>(n));
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t o = s / inner, i = s % inner;
      const float* base = x + o * n * inner + i;
      for (int64_t j = 0; j < n; ++j) order[j] = static_cast<int32_t>(j);
      std::stable_sort(order.begin(), order.end(), [&](int32_t p, int32_t q) {
        const float u = base[p * inner], w = base[q * inner];
        if (std::isnan(u)) return false;
        if (std::isnan(w)) return true;
        return descending ? u > w : u < w;
      });
      for (int64_t j = 0; j < n; ++j) {
        values[(o * n + j) * inner + i] = base[order[j] * inner];
        indices[(o * n + j) * inner + i] = order[j];
      }
    }
  });
  return a.env().Undefined();
}

// gather(out, x, idx, outer, nIn, nIdx, inner)
Napi::Value gather(const Napi::CallbackInfo& info) {
  Args a(info, "gather", 7);
  const int64_t outer = a.size(3, "outer"), nIn = a.size(4, "nIn"), nIdx = a.size(5, "nIdx"), inner = a.size(6, "inner");
  const int64_t no = a.prod({outer, nIdx, inner});
  float* out = a.f32(0, "out", no, "outer * nIdx * inner");
  const float* x = a.f32(1, "x", a.prod({outer, nIn, inner}), "outer * nIn * inner");
  const int32_t* idx = a.i32(2, "idx", no, "outer * nIdx * inner");
  if (no == 0) return a.env().Undefined();  // nothing gathered: do not loop over the other dims
  a.checkIndices(idx, no, nIn, "idx");
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < nIdx; ++j)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t p = (o * nIdx + j) * inner + i;
        out[p] = x[(o * nIn + idx[p]) * inner + i];
      }
  return a.env().Undefined();
}

// scatterAdd(out, src, idx, outer, nOut, nIdx, inner): serial, so duplicate indices add in order
Napi::Value scatterAdd(const Napi::CallbackInfo& info) {
  Args a(info, "scatterAdd", 7);
  const int64_t outer = a.size(3, "outer"), nOut = a.size(4, "nOut"), nIdx = a.size(5, "nIdx"), inner = a.size(6, "inner");
  const int64_t ns = a.prod({outer, nIdx, inner});
  float* out = a.f32(0, "out", a.prod({outer, nOut, inner}), "outer * nOut * inner");
  const float* src = a.f32(1, "src", ns, "outer * nIdx * inner");
  const int32_t* idx = a.i32(2, "idx", ns, "outer * nIdx * inner");
  if (ns == 0) return a.env().Undefined();
  a.checkIndices(idx, ns, nOut, "idx");
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < nIdx; ++j)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t p = (o * nIdx + j) * inner + i;
        out[(o * nOut + idx[p]) * inner + i] += src[p];
      }
  return a.env().Undefined();
}

// indexSelect(out, table, ids, n, d): row copies
Napi::Value indexSelect(const Napi::CallbackInfo& info) {
  Args a(info, "indexSelect", 5);
  const int64_t n = a.size(3, "n"), d = a.size(4, "d");
  float* out = a.f32(0, "out", a.prod({n, d}), "n * d");
  const float* tbl = a.f32(1, "table");
  const int32_t* ids = a.i32(2, "ids", n, "n");
  if (d > 0) a.checkIndices(ids, n, a.length(1) / d, "ids");
  pool::forRange(n, n * d >= kParallelMin, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::memcpy(out + i * d, tbl + ids[i] * d, static_cast<size_t>(d) * 4);
  });
  return a.env().Undefined();
}

// indexAdd(table, src, ids, n, d): threads split the columns, so duplicate ids never race and every
// element still adds its rows in order (the same sums as the serial reference, on any thread)
Napi::Value indexAdd(const Napi::CallbackInfo& info) {
  Args a(info, "indexAdd", 5);
  const int64_t n = a.size(3, "n"), d = a.size(4, "d");
  float* tbl = a.f32(0, "table");
  const float* src = a.f32(1, "src", a.prod({n, d}), "n * d");
  const int32_t* ids = a.i32(2, "ids", n, "n");
  if (d > 0) a.checkIndices(ids, n, a.length(0) / d, "ids");
  pool::forRange(d, n * d >= kParallelMin && d >= 64, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; ++i) {
      float* dst = tbl + ids[i] * d;
      const float* s = src + i * d;
      for (int64_t j = c0; j < c1; ++j) dst[j] += s[j];
    }
  }, 16);
  return a.env().Undefined();
}

}  // namespace
}  // namespace nexus::fk

namespace nexus {

void registerElementwise(Napi::Env env, Napi::Object exports) {
  using namespace fk;
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"unary", unary},       {"binary", binary},         {"where", where},           {"sum", sum},
      {"max", max},           {"logsumexp", logsumexp},   {"copyStrided", copyStrided}, {"gather", gather},
      {"scatterAdd", scatterAdd}, {"indexSelect", indexSelect}, {"indexAdd", indexAdd}, {"copyToStrided", copyToStrided},
      {"sort", sort},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace nexus
