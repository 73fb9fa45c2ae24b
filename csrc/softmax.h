// Row/axis/stride handling and the "auto" rule, over the kernel table. No intrinsics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// Runs kernel k over every row of an ndim-dimensional array (ndim >= 1) whose LAST axis is
// the row. Strides are in bytes and may be negative or zero; x and y may be the same array
// (in place). Rows that are not contiguous go through a per-thread row buffer. threads <= 0:
// get_num_threads(). The result does not depend on the thread count. Throws std::bad_alloc
// when the scratch memory of the call's threads cannot be had -- before writing anything
// (all of it is allocated first); row_stats and rows_from_stats likewise.
void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* x_strides, char* y, const std::int64_t* y_strides, int threads);

// Two-pass statistics of every row (C order over the outer axes): sum of e^x =
// m * 2^e * e^shift; shift = 0 but for finite rows outside the fast range, which have
// shift = max, e = 0 (kernels/exact.h). k: any kernel of the wanted tier and dtype. See
// RowRunner::stats for non-finite rows.
void row_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x, const std::int64_t* xs,
               double* m, double* e, double* shift, int threads);
// log(m * 2^e * e^shift) in float64, the logsumexp of a row from its statistics: ln 2 split
// as fdlibm's log, so that e * kLn2Hi is exact for |e| < 2^21 (every fast-range row); m = 0,
// e = -inf gives -inf, m = inf gives inf, NaN gives NaN. Every logsumexp of the package
// (Python's, the small-call path, cross-entropy) forms it here, so they agree bit for bit.
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
double logsumexp_of_stats(double m, double e, double shift);

// Pass 2 of every row from (possibly merged) statistics; k.op_id picks softmax or log_softmax.
void rows_from_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                     const std::int64_t* xs, char* y, const std::int64_t* ys, const double* m, const double* e,
                     const double* shift, int threads);

// Output rows of at least this many bytes are written with non-temporal stores.
std::size_t streaming_threshold_bytes();

// The two algorithms "auto" chooses between: one for rows that fit the cache (one exp per
// element), one for rows beyond it (the least memory traffic). fastsoftmax-bench --tune
// measures the crossover between them (_core.auto_algorithms()).
constexpr Algorithm kAutoInCache = Algorithm::three_pass_reload;
constexpr Algorithm kAutoBeyondCache = Algorithm::two_pass;

// The algorithm "auto" resolves to for a job of `rows` rows of this length, whatever their
// layout (so that views and non-last axes get the C-order call's bits): kAutoInCache for rows of at most
// auto_reload_limit(dtype) input bytes, kAutoBeyondCache beyond; and kAutoBeyondCache for
// a batch of long float32/float64 rows in a job beyond the cache (long_rows_beyond_cache).
// The rule is in softmax.cpp.
Algorithm auto_algorithm(DType dtype, std::size_t row_length, std::size_t rows = 1);
// Whether that last case applies.
bool long_rows_beyond_cache(DType dtype, std::size_t row_length, std::size_t rows);
std::size_t auto_reload_limit(DType dtype);
// The rule's limit from the cache sizes, and whether a profile replaced it.
std::size_t builtin_reload_limit(DType dtype);
bool auto_reload_limit_is_set(DType dtype);
// A machine profile's limit for dtype (process-wide); bytes < 0 restores the built-in rule.
void set_auto_reload_limit(DType dtype, std::int64_t bytes);

// Rows (and chunks of long rows) of at least this many elements are read with software
// prefetch (kernels/loops.h); elements < 0 restores the built-in 2^16, SIZE_MAX turns
// prefetch off. Process-wide; results do not depend on it.
std::size_t prefetch_min_elements();
void set_prefetch_min_elements(std::int64_t elements);

// The thread planner's cost model per element is the fast end of the machines measured,
// times this machine's factor (>= 1): one thread's time for the active tier's three-pass
// reload over a float32 row in cache against that fast end, measured once per process at
// the first call that asks for threads. set_cost_scale fixes it (tests, measurements);
// negative restores the measured factor. Results do not depend on it.
double cost_scale();
void set_cost_scale(double scale);

// The threads argument of the last run_rows call of this thread (0: the default); lets the
// tests check that every API path passes threads= down.
int last_requested_threads();

}  // namespace fastsoftmax
