// The scalar tier: the chunk primitives and memory patterns instantiated over vec_scalar.h.
// Built without ISA flags: runs on any CPU.
#include "vec_scalar.h"
#define FASTSOFTMAX_TIER scalar
#include "kernels/kernels.inc"
#include "kernels/passes.h"
#include "kernels/backward.h"

namespace fastsoftmax {
namespace scalar {
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_DTYPE)
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_BACKWARD)
}  // namespace scalar
}  // namespace fastsoftmax
