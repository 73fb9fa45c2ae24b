// The backward of softmax and log-softmax over contiguous rows, threaded, over the
// tiers' backward passes (kernels/backward.h). No intrinsics.
#pragma once
#include <cstddef>
#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// For `rows` contiguous rows of n elements of dtype d, given y (softmax's output, or
// log_softmax's when log) and g (the gradient of the loss with respect to y):
//   softmax:     dx = y * (g - sum_row(g * y))
//   log_softmax: dx = g - exp(y) * sum_row(g)
// dx may be y or g (the same memory) but must not overlap them otherwise (the caller
// checks). tier: one this CPU runs (the caller checks). Rows longer than
// kChunk (2^16) are summed chunk by chunk, the chunks' sums added in double in chunk
// order; so the result is bitwise the same for any thread count. threads as for
// run_rows (0: the default budget). Throws std::bad_alloc before writing anything.
void backward_rows(Tier tier, DType d, bool log, std::size_t rows, std::size_t n, const void* y, const void* g,
                   void* dx, int threads);

// The memory-only pattern of the backward of one row of n elements (the harness's roofline):
// the same reads and writes with trivial arithmetic (log: log-softmax's, whose sum reads g alone).
void backward_pattern(Tier tier, DType d, bool log, std::size_t n, const void* y, const void* g, void* dx);

}  // namespace fastsoftmax
