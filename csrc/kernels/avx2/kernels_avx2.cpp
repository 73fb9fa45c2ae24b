// The avx2 tier: the chunk primitives and memory patterns instantiated over vec_avx2.h.
// The only file built with AVX2 flags (see CMakeLists.txt).
#include "vec_avx2.h"
#define FASTSOFTMAX_TIER avx2
#include "kernels/kernels.inc"
#include "kernels/passes.h"
#include "kernels/backward.h"

namespace fastsoftmax {
namespace avx2 {
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_DTYPE)
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_BACKWARD)
}  // namespace avx2
}  // namespace fastsoftmax
