// The neon tier: the chunk primitives and memory patterns instantiated over vec_neon.h.
// Built only for AArch64 (see CMakeLists.txt), with no extra flags: Advanced SIMD is baseline.
#include "vec_neon.h"
#define FASTSOFTMAX_TIER neon
#include "kernels/kernels.inc"
#include "kernels/passes.h"
#include "kernels/backward.h"

namespace fastsoftmax {
namespace neon {
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_DTYPE)
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_BACKWARD)
}  // namespace neon
}  // namespace fastsoftmax
