{
  "targets": [
    {
      "target_name": "nexus_cpu",
      "sources": [
        "native/addon.cc",
        "native/cpu_features.cc",
        "native/thread_pool.cc",
        "native/gemm.cc",
        "native/gemm_driver.cc",
        "native/gemm_packed.cc",
        "native/gemm_avx512.cc",
        "native/gemm_avx2.cc",
        "native/fused.cc",
        "native/elementwise.cc",
        "native/decode.cc",
        "native/fused_avx512.cc",
        "native/fused_avx2.cc",
        "native/fused_scalar.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-std=c++17", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
