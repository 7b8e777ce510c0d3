// Standard headers every ISA build of the fused kernels needs, included *before* the ISA's
// `#pragma GCC target` so library inline functions keep the default target (no AVX-512 code can leak
// into a comdat function that the scalar build also uses).
#pragma once
#include <immintrin.h>
#include <omp.h>

#include "thread_pool.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>
