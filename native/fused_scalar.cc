// The fused/elementwise kernel table built for plain scalar code (1 lane, double libm for exp/log).
// Only the target and lane count differ from the other two builds; the kernels are in fused_impl_*.h.
// Called only after simdLevel() has checked the CPU (see table() in fused.cc).
#include "fused_prelude.h"


#define NEXUS_VEC 1
#define NEXUS_TABLE_FN tableScalar
#define NEXUS_TABLE_NAME "scalar"
#include "fused_instance.h"
