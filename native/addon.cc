// N-API entry point of the `cpu` backend: collects the registrations of every kernel file.
#include "nexus.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("simdLevel", Napi::String::New(env, nexus::simdLevelName(nexus::simdLevel())));
  exports.Set("numThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), nexus::numThreads());
  }));
  nexus::registerGemm(env, exports);
  nexus::registerFused(env, exports);
  nexus::registerElementwise(env, exports);
  nexus::registerDecode(env, exports);
  return exports;
}

NODE_API_MODULE(nexus_cpu, Init)
