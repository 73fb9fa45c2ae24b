// The backward passes each tier provides (kernels/backward.h), as a table of plain function
// pointers: what crosses from an ISA file to backward.cpp.
#pragma once
#include <cstddef>

#include "kernels/half.h"

namespace fastsoftmax {

// S: the storage type (float, double, Half, BFloat16); T: the type it is computed in.
// Every function works on [0, n) of its arrays alone; dx may be y or g (the same element
// is read before it is written), no other overlap.
template <class S>
struct BackwardPrimitives {
  using T = compute_t<S>;
  T (*dot)(std::size_t n, const S* g, const S* y);  // sum of g[i] * y[i]
  T (*sum)(std::size_t n, const S* g);              // sum of g[i]
  // dx = y * (g - s): softmax's backward, s = sum of g * y over the row.
  void (*softmax_dx)(std::size_t n, const S* y, const S* g, S* dx, T s, bool stream);
  // dx = g - e^y * s: log-softmax's backward (y the log-probabilities), s = sum of g.
  void (*log_softmax_dx)(std::size_t n, const S* y, const S* g, S* dx, T s, bool stream);
  // The memory-only pattern of the backward of a row (the roofline): read y and g (log:
  // g alone) for the row sum, then read both again and write dx. Returns 0.
  double (*pattern)(std::size_t n, const S* y, const S* g, S* dx, bool log);
};

}  // namespace fastsoftmax
