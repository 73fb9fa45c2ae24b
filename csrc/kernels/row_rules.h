// The bitwise-identity rules of the row path, as the code that keeps them. A result does
// not depend on the thread count, on how the array lies in memory, on whether rows run in
// batches or one by one, or on the call path; every choice that could change it goes
// through the functions below, and the code that makes the choice names its rule here.
// Included through rows.h, which the includer has given its namespace (backward.cpp
// includes it alone, as generic::, for its chunks and floating-point mode).
//
// - Threads: a row's chunks depend on its length alone (kChunk, chunk_count), and their
//   statistics merge in chunk order (max_in_chunk_order, sum_in_chunk_order,
//   merge_pair_chunks, merge_online_chunks): splitting rows or chunks over threads only
//   changes which thread runs a chunk. Every thread that runs rows or chunks sets the same
//   floating-point mode (FlushDenormals, below).
// - Layouts (row_walk.h, RowLayout): the row kernels see every row as n contiguous
//   elements (gathered and tiled rows are copied first); the column kernel reproduces
//   their summation order lane by lane (columns.h) and ends with the same scalar glue
//   (sum_in_chunk_order, three_pass_constant).
// - Batches: RowRunner::rows runs up to kRowBatch rows phase by phase through the same
//   steps as one row (three_pass_fast, sum_in_chunk_order, three_pass_constant).
// - Tables: softmax with 16-bit storage runs over Primitives::softmax on every path
//   (softmax.cpp, run_rows_typed).
#pragma once
#ifndef FASTSOFTMAX_ROWS_NS
#error "define FASTSOFTMAX_ROWS_NS (the namespace for this copy) before including row_rules.h"
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#if defined(FASTSOFTMAX_X86)
#include <xmmintrin.h>  // _mm_getcsr/_mm_setcsr: SSE, part of the x86-64 baseline
#endif

#include "kernels/primitives.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

// Flush-to-zero and denormals-are-zero while a task runs (MXCSR is per thread; restored
// on exit), on every thread that runs rows or chunks, so that they all compute alike
// (the threads rule above). Subnormal results -- outputs below ~1e-38 (f32), tiny contributions when
// pass 1 rescales -- otherwise take microcode assists of ~100 cycles each on Intel
// (docs/results.md, "Design measurements"). Only outputs below the smallest normal number
// change (to 0); the AVX2 exponent-bit 2^d already flushes there.
class FlushDenormals {
 public:
#if defined(FASTSOFTMAX_X86)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// Rows longer than this are computed as chunks of this many elements whose statistics
// are merged in chunk order.
constexpr std::size_t kChunk = std::size_t{1} << 16;

// The chunks of an n-long row: a function of n alone, never of the thread count.
constexpr std::size_t chunk_count(std::size_t n) { return (n + kChunk - 1) / kChunk; }

// Contiguous one-chunk rows handed to RowRunner::rows at once by the row walk.
constexpr int kRowBatch = 4;

// The row's max from its chunks' maxima, in chunk order from -inf (a NaN maximum is
// skipped here; the range check has caught it).
template <class T>
T max_in_chunk_order(const T* mu, std::size_t chunks) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::size_t c = 0; c < chunks; ++c) m = std::max(m, mu[c]);
  return m;
}

// The row's sum of e^(x - mu) from its chunks' sums, in double, in chunk order (a
// one-chunk row, a batched row and a column all go through it).
template <class T>
double sum_in_chunk_order(const T* sigma, std::size_t chunks) {
  double sum = 0;
  for (std::size_t c = 0; c < chunks; ++c) sum += double(sigma[c]);
  return sum;
}

// Whether a three-pass row stays on the fast path: no chunk needed the exact path, and
// its max is at least -kHigh.
template <class T>
bool three_pass_fast(bool any_bad, T mu) {
  return !(any_bad || !(mu >= -FastRange<T>::kHigh));
}

// The constant of three-pass's last pass, from the row's max and its sum of e^(x - mu) in
// double: 1/sum (softmax); log(sum) (log_softmax, reload: the middle row holds x - mu); or
// mu + log(sum) (log_softmax, recompute). Shared by the row runner and the column kernel.
template <class T>
T three_pass_constant(bool log, bool reload, T mu, double sum) {
  if (!log) return static_cast<T>(1.0 / sum);
  return reload ? static_cast<T>(std::log(sum)) : static_cast<T>(double(mu) + std::log(sum));
}

// Two-pass: the chunks' pairs (sum = m * 2^e) merged exactly, rescaled by powers of two in
// chunk order: *sum relative to 2^*e_max.
template <class T>
void merge_pair_chunks(const T* m, const T* e, std::size_t chunks, double* sum_out, double* e_out) {
  double e_max = -std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < chunks; ++c) e_max = std::max(e_max, double(e[c]));
  double sum = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    const double d = double(e[c]) - e_max;
    // A NaN (from a NaN or +inf input) must survive any rescaling, even to nothing.
    if (m[c] != m[c] || d != d) sum = std::numeric_limits<double>::quiet_NaN();
    else if (d >= -2000.0) sum += std::ldexp(double(m[c]), static_cast<int>(d));
  }
  *sum_out = sum;
  *e_out = e_max;
}

// Online: the chunks' (max, sum of e^(x - max)) merged in chunk order: *sum relative to
// e^*mu_out.
template <class T>
void merge_online_chunks(const T* mu, const T* sigma, std::size_t chunks, double* mu_out, double* sum_out) {
  double mu_max = -std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < chunks; ++c) mu_max = std::max(mu_max, double(mu[c]));
  double sum = 0;
  for (std::size_t c = 0; c < chunks; ++c) sum += double(sigma[c]) * std::exp(double(mu[c]) - mu_max);
  *mu_out = mu_max;
  *sum_out = sum;
}

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
