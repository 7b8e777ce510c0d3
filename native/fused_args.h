// Argument readers for the N-API wrappers in fused.cc and elementwise.cc. Every error is tagged with the
// kernel and says expected vs got ("[cpu rmsNorm] x has 10 elements, needs 12 (rows * d)"). They check
// only what is cheap: types, integer sizes, array lengths. Shapes and broadcasting are TypeScript's job.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "nexus.h"

namespace nexus::fk {

// No array holds more elements than this (2^53: every size a double carries exactly); sizes and element
// offsets are checked against it in 128-bit arithmetic, so no range check can wrap around.
constexpr int64_t kMaxElements = int64_t{1} << 53;

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel, size_t count) : info_(info), kernel_(kernel) {
    if (info.Length() < count)
      fail("expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
  }

  Napi::Env env() const { return info_.Env(); }
  const Napi::Value operator[](size_t i) const { return info_[i]; }

  [[noreturn]] void fail(const std::string& msg) const { throw Napi::RangeError::New(env(), tag() + msg); }
  [[noreturn]] void typeFail(const std::string& msg) const { throw Napi::TypeError::New(env(), tag() + msg); }

  bool isFloat32(size_t i) const { return isTyped(i, napi_float32_array); }

  // A Float32Array with at least `need` elements; `what` names the size in the message.
  float* f32(size_t i, const char* name, int64_t need = 0, const char* what = "") const {
    if (!isFloat32(i)) typeFail(std::string(name) + " must be a Float32Array");
    checkLength(i, name, need, what);
    return info_[i].As<Napi::Float32Array>().Data();
  }
  // null (or undefined) -> nullptr, else as f32()
  const float* f32OrNull(size_t i, const char* name, int64_t need, const char* what) const {
    if (info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return f32(i, name, need, what);
  }
  int32_t* i32(size_t i, const char* name, int64_t need = 0, const char* what = "") const {
    if (!isTyped(i, napi_int32_array)) typeFail(std::string(name) + " must be an Int32Array");
    checkLength(i, name, need, what);
    return info_[i].As<Napi::Int32Array>().Data();
  }
  int64_t length(size_t i) const { return static_cast<int64_t>(lengthOf(info_[i])); }

  // A non-negative integer size.
  int64_t size(size_t i, const char* name) const {
    const double d = num(i, name);
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15)
      fail(std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
    return static_cast<int64_t>(d);
  }
  double num(size_t i, const char* name) const {
    if (!info_[i].IsNumber()) typeFail(std::string(name) + " must be a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  bool flag(size_t i) const { return info_[i].ToBoolean().Value(); }

  // Product of sizes, failing instead of overflowing (a zero anywhere makes it 0, whatever the others are).
  int64_t prod(std::initializer_list<int64_t> xs) const {
    for (int64_t x : xs)
      if (x == 0) return 0;
    int64_t p = 1;
    for (int64_t x : xs) {
      if (__builtin_mul_overflow(p, x, &p) || p > kMaxElements) fail("sizes overflow");
    }
    return p;
  }

  // Every slots[i] is negative (skip) or below bound.
  void checkSlots(const int32_t* slots, int64_t n, int64_t bound) const {
    for (int64_t i = 0; i < n; ++i) {
      if (slots[i] >= bound)
        fail("slots[" + std::to_string(i) + "] = " + std::to_string(slots[i]) + " is past the cache's " +
             std::to_string(bound) + " rows");
    }
  }

  // Every ids[i] lies in [0, bound).
  void checkIndices(const int32_t* ids, int64_t n, int64_t bound, const char* name) const {
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= bound)
        fail(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside [0, " +
             std::to_string(bound) + ")");
    }
  }

 private:
  std::string tag() const { return std::string("[cpu ") + kernel_ + "] "; }
  bool isTyped(size_t i, napi_typedarray_type t) const {
    return info_[i].IsTypedArray() && info_[i].As<Napi::TypedArray>().TypedArrayType() == t;
  }
  void checkLength(size_t i, const char* name, int64_t need, const char* what) const {
    const int64_t have = length(i);
    if (have < need)
      fail(std::string(name) + " has " + std::to_string(have) + " elements, needs " + std::to_string(need) +
           (*what ? std::string(" (") + what + ")" : std::string()));
  }

  const Napi::CallbackInfo& info_;
  const char* kernel_;
};

}  // namespace nexus::fk
