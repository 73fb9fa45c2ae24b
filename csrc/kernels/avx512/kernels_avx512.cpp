// The avx512 tier: every kernel of kernels.inc instantiated over vec_avx512.h.
// The only file built with AVX512 flags (see CMakeLists.txt).
#include "vec_avx512.h"
#define FASTSOFTMAX_TIER avx512
#include "kernels/kernels.inc"
#include "kernels/passes.h"

namespace fastsoftmax {
namespace avx512 {
FASTSOFTMAX_FOR_EACH_VARIANT(FASTSOFTMAX_DEFINE_KERNEL)
FASTSOFTMAX_FOR_EACH_PATTERN(FASTSOFTMAX_DEFINE_PATTERN)
}  // namespace avx512
}  // namespace fastsoftmax
