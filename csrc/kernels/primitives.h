// The chunk primitives each tier provides (see passes.h), as a table of plain function
// pointers: the only thing that crosses from an ISA file to the rest of the library.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/half.h"
#include "kernels/kernels.inc"
#include "kernels/kinds.h"

namespace fastsoftmax {

// Every row of an ndim-dimensional array (ndim >= 1) whose LAST axis is the row; byte
// strides, any sign; x and y may be the same array.
struct RowsJob {
  Op op;
  Algorithm algorithm;
  int ndim;
  const std::int64_t* shape;
  const char* x;
  const std::int64_t* x_strides;
  char* y;
  const std::int64_t* y_strides;
  bool stream;  // non-temporal stores for the final pass (rows too big for the cache)
  // Jobs too big for the cache, where the rows come from memory: batches of short rows
  // prefetch the next batch's rows (RowRunner::rows), the column kernel and lean_reload
  // stream y, and so do rows whose last pass reads x (stream_rows_of).
  bool prefetch_rows = false;
};

// The fast path's range (see passes.h): rows whose max lies in [-kHigh, kHigh] -- for the
// two-pass statistics, whose max exponent lies in [kMinRowExponent, kMaxRowExponent] --
// and that hold no NaN or +inf. Other rows take exact_row.
template <class T>
struct FastRange;
template <>
struct FastRange<float> {
  static constexpr float kHigh = 65536.0f;
  static constexpr float kMinRowExponent = -94000.0f;
  static constexpr float kMaxRowExponent = 94000.0f;
};
template <>
struct FastRange<double> {
  static constexpr double kHigh = 1048576.0;
  static constexpr double kMinRowExponent = -1500000.0;
  static constexpr double kMaxRowExponent = 1500000.0;
};

// S: the storage type (float, double, Half, BFloat16); T: the type it is computed in.
template <class S>
struct Primitives {
  using T = compute_t<S>;
  // Pass-1 statistics of x[0..n).
  void (*pair_sum)(std::size_t n, const S* x, T* m, T* e);          // sum = m * 2^e
  void (*online_sum)(std::size_t n, const S* x, T* mu, T* sigma);   // sum = sigma * e^mu
  bool (*max)(std::size_t n, const S* x, T* mu);                    // true: needs the exact path
  T (*sum_exp)(std::size_t n, const S* x, T mu);                    // sum of e^(x - mu)
  // Three-pass reload keeps its intermediate row w in the compute type: in y itself when
  // S == T (the paper's algorithm), else in a float32 buffer, so that half-precision
  // outputs are rounded once.
  T (*store_exp)(std::size_t n, const S* x, T* w, T mu);            // w = e^(x - mu); sum
  T (*store_shifted)(std::size_t n, const S* x, T* w, T mu);        // w = x - mu; sum of e^(x - mu)
  // Final passes; stream: non-temporal stores (the row does not fit in cache).
  void (*write_pair)(std::size_t n, const S* x, S* y, T inv_m, T e, bool stream);   // y = e^x / (m 2^e)
  void (*write_exp_scaled)(std::size_t n, const S* x, S* y, T mu, T inv, bool stream);  // y = e^(x-mu) inv
  void (*write_sub)(std::size_t n, const S* x, S* y, T c, bool stream);            // y = x - c
  void (*reload_scale)(std::size_t n, const T* w, S* y, T inv, bool stream);       // y = w * inv
  void (*reload_sub)(std::size_t n, const T* w, S* y, T c, bool stream);           // y = w - c
  // Rows outside the fast path's range, with SciPy's semantics (long double).
  void (*exact_row)(std::size_t n, const S* x, S* y, bool log);
  // Rows [r0, r1) of a job whose rows are short (one chunk): the whole per-row algorithm
  // inside the tier, so that no call crosses between SSE and AVX code per row. scratch:
  // rows_scratch_bytes(job) bytes, 64-byte aligned, for this thread alone (null if 0).
  void (*rows)(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch);
  std::size_t (*rows_scratch_bytes)(const RowsJob& job);
  // The table op softmax runs over: for float16/bfloat16, the same passes with an exp
  // accurate to a 16-bit result (passes.h, Exp16); else this table. The statistics API
  // (row_stats, rows_from_stats) and log-softmax use this table itself.
  const Primitives* softmax;
};

// The memory-only patterns of one dtype (kernels.inc): double fn(n, const S* x, S* y).
using PatternFn = double (*)(std::size_t n, const void* x, void* y);
struct PatternTable {
#define FASTSOFTMAX_PATTERN_FIELD(pat, pat_name) PatternFn pat;
  FASTSOFTMAX_FOR_EACH_PATTERN(FASTSOFTMAX_PATTERN_FIELD)
#undef FASTSOFTMAX_PATTERN_FIELD
};

}  // namespace fastsoftmax
