// Row/axis/stride handling and the "auto" rule, over the kernel table. No intrinsics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// Runs a row kernel over every row of an ndim-dimensional array whose LAST axis is the
// row. Strides are in bytes and may be negative or zero-free; x and y may be the same
// array (in place). Rows that are not contiguous go through a per-call row buffer.
void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* x_strides, char* y, const std::int64_t* y_strides);

// The algorithm "auto" resolves to for rows of this length (see the rule in softmax.cpp).
const char* auto_algorithm(DType dtype, std::size_t row_length);

}  // namespace fastsoftmax
