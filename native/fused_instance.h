// The body of one ISA's kernel table: fused_avx512.cc, fused_avx2.cc and fused_scalar.cc each set
// NEXUS_VEC and NEXUS_TABLE_FN, open their `#pragma GCC target` and include this file once.
// Everything lands in an anonymous namespace, so the three builds never share (ODR-merge) a function.
#include "fused_kernels.h"

namespace nexus::fk {
namespace {
#include "fused_vec.h"
#include "fused_impl_elementwise.h"
#include "fused_impl_rows.h"
#include "fused_impl_attention.h"
#include "fused_impl_decode.h"
}  // namespace

const Table& NEXUS_TABLE_FN() {
  static const Table t = {
      NEXUS_TABLE_NAME,
      unaryKernel,
      binaryKernel,
      whereKernel,
      sumKernel,
      logsumexpKernel,
      softmaxKernel,
      tokenLogprobsKernel,
      tokenLogprobsBackwardKernel,
      rmsNormKernel,
      rmsNormBackwardKernel,
      ropeKernel,
      swigluKernel,
      swigluBackwardKernel,
      adamwKernel,
      attentionKernel,
      attentionBackwardKernel,
      pagedAttentionKernel,
      sampleTokensKernel,
  };
  return t;
}

}  // namespace nexus::fk
