// The avx512 tier: the chunk primitives and memory patterns instantiated over vec_avx512.h.
// The only file built with AVX512 flags (see CMakeLists.txt).
#include "vec_avx512.h"
#define FASTSOFTMAX_TIER avx512
#include "kernels/kernels.inc"
#include "kernels/passes.h"
#include "kernels/backward.h"

namespace fastsoftmax {
namespace avx512 {
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_DTYPE)
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_BACKWARD)
}  // namespace avx512
}  // namespace fastsoftmax
