// The fused/elementwise kernel table built for AVX2 + FMA (8 lanes).
// Only the target and lane count differ from the other two builds; the kernels are in fused_impl_*.h.
// Called only after simdLevel() has checked the CPU (see table() in fused.cc).
#include "fused_prelude.h"

#pragma GCC target("avx2,fma")
#define NEXUS_VEC 256
#define NEXUS_TABLE_FN tableAvx2
#define NEXUS_TABLE_NAME "avx2"
#include "fused_instance.h"
