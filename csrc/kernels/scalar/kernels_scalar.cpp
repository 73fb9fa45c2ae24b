// The scalar tier: the chunk primitives and memory patterns instantiated over vec_scalar.h.
// Built without ISA flags: runs on any CPU.
#include "vec_scalar.h"
#define FASTSOFTMAX_TIER scalar
#include "kernels/kernels.inc"
#include "kernels/passes.h"

namespace fastsoftmax {
namespace scalar {
FASTSOFTMAX_DEFINE_PRIMITIVES()
FASTSOFTMAX_FOR_EACH_PATTERN(FASTSOFTMAX_DEFINE_PATTERN)
}  // namespace scalar
}  // namespace fastsoftmax
