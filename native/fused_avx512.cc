// The fused/elementwise kernel table built for AVX-512 (16 lanes).
// Only the target and lane count differ from the other two builds; the kernels are in fused_impl_*.h.
// Called only after simdLevel() has checked the CPU (see table() in fused.cc).
#include "fused_prelude.h"

// GCC 12 flags _mm512_undefined_ps inside its own reduce intrinsics as maybe-uninitialized (a false positive)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#define NEXUS_VEC 512
#define NEXUS_TABLE_FN tableAvx512
#define NEXUS_TABLE_NAME "avx512"
#include "fused_instance.h"
