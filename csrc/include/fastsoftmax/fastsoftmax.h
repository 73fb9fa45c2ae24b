/* fastsoftmax C API: softmax and log-softmax over rows, for embedding in C and C++.
 *
 * A plain C ABI: no C++ types cross it, no exceptions escape it (every call returns a
 * status code). Calls are thread-safe and may run concurrently from any number of threads.
 *
 * Layout: `rows` rows of `n` contiguous elements; row r of x starts at x + r * x_row_stride,
 * row r of y at y + r * y_row_stride (strides in ELEMENTS, may be negative; with one row they
 * are not used). Results are bitwise the same for any thread count.
 *
 * Arguments. Every call checks all of its arguments before it reads or writes anything, and
 * returns FASTSOFTMAX_ERROR_INVALID_ARGUMENT, having touched nothing, for:
 *   - an algorithm that is not one of fastsoftmax_algorithm's values, or a thread count
 *     outside [0, FASTSOFTMAX_MAX_THREADS] (also when the call is empty);
 *   - x or y NULL, unless rows or n is 0 (an empty call reads and writes nothing and uses
 *     neither the pointers nor the strides);
 *   - rows that do not fit the address space: n times the element size, or the distance from
 *     the first to the last byte of x's (or y's) rows, beyond PTRDIFF_MAX; or rows that
 *     would wrap around the end or the start of the address space;
 *   - output rows that overlap each other: rows > 1 and |y_row_stride| < n;
 *   - x and y that share a byte, except in place: y == x with the same stride (or one row).
 *     Exact, except that x and y with different row strides whose ranges interleave over
 *     more than 2^20 rows are refused without a row-by-row check.
 * Input rows may overlap each other (x_row_stride = 0 repeats one row). What these checks
 * cannot see is whether the memory they describe is yours: that is the caller's to ensure.
 */
#ifndef FASTSOFTMAX_FASTSOFTMAX_H_
#define FASTSOFTMAX_FASTSOFTMAX_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define FASTSOFTMAX_API __declspec(dllexport)
#else
#define FASTSOFTMAX_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fastsoftmax_status {
  FASTSOFTMAX_OK = 0,
  FASTSOFTMAX_ERROR_INVALID_ARGUMENT = 1, /* "Arguments" above, set_num_threads below; nothing changed */
  FASTSOFTMAX_ERROR_UNSUPPORTED = 2,      /* FASTSOFTMAX_ISA names an unknown tier, or FASTSOFTMAX_NUM_THREADS is malformed */
  FASTSOFTMAX_ERROR_OUT_OF_MEMORY = 3,
  FASTSOFTMAX_ERROR_INTERNAL = 4
} fastsoftmax_status;

typedef enum fastsoftmax_algorithm {
  FASTSOFTMAX_ALGORITHM_AUTO = 0, /* by row length and row count against the cache sizes */
  FASTSOFTMAX_ALGORITHM_TWO_PASS = 1,
  FASTSOFTMAX_ALGORITHM_THREE_PASS_RELOAD = 2,
  FASTSOFTMAX_ALGORITHM_THREE_PASS_RECOMPUTE = 3,
  FASTSOFTMAX_ALGORITHM_ONLINE = 4
} fastsoftmax_algorithm;

/* threads: 0 for the default (fastsoftmax_get_num_threads()), else at most that many threads
 * (1 to FASTSOFTMAX_MAX_THREADS; a negative or larger count is FASTSOFTMAX_ERROR_INVALID_ARGUMENT).
 * A call uses fewer threads when its work would not pay for waking them. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_f32(const float* x, float* y, size_t rows, size_t n,
                                                           ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                           fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_f32(const float* x, float* y, size_t rows, size_t n,
                                                               ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                               fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_f64(const double* x, double* y, size_t rows, size_t n,
                                                           ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                           fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_f64(const double* x, double* y, size_t rows, size_t n,
                                                               ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                               fastsoftmax_algorithm algorithm, int threads);

/* float16 (IEEE binary16) and bfloat16 rows, passed as their 16-bit patterns: each value is
 * widened to float32 in registers, computed in float32 and rounded to nearest even once. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n,
                                                           ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                           fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n,
                                                               ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                               fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n,
                                                            ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                            fastsoftmax_algorithm algorithm, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n,
                                                                ptrdiff_t x_row_stride, ptrdiff_t y_row_stride,
                                                                fastsoftmax_algorithm algorithm, int threads);

/* Backward. For `rows` contiguous rows of n elements, y the forward's output and g the
 * gradient of a loss with respect to y, dx (the gradient with respect to the input):
 *   softmax:     dx = y * (g - sum_row(g * y))
 *   log-softmax: dx = g - exp(y) * sum_row(g)      (y = log_softmax(x))
 * computed in the storage type (16-bit types in float32, rounded once), bitwise the same
 * for any thread count. Checked before anything is read or written, else
 * FASTSOFTMAX_ERROR_INVALID_ARGUMENT: threads outside [0, FASTSOFTMAX_MAX_THREADS]; a NULL
 * pointer unless rows or n is 0; rows * n elements beyond PTRDIFF_MAX bytes or wrapping
 * around the address space; dx sharing a byte with y or g unless it is y or g itself
 * (in place). 16-bit types are passed as their bits. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_backward_f32(const float* y, const float* g, float* dx,
                                                                    size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_backward_f32(const float* y, const float* g, float* dx,
                                                                        size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_backward_f64(const double* y, const double* g, double* dx,
                                                                    size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_backward_f64(const double* y, const double* g, double* dx,
                                                                        size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_backward_f16(const uint16_t* y, const uint16_t* g,
                                                                    uint16_t* dx, size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_backward_f16(const uint16_t* y, const uint16_t* g,
                                                                        uint16_t* dx, size_t rows, size_t n,
                                                                        int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_softmax_backward_bf16(const uint16_t* y, const uint16_t* g,
                                                                     uint16_t* dx, size_t rows, size_t n, int threads);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_log_softmax_backward_bf16(const uint16_t* y, const uint16_t* g,
                                                                         uint16_t* dx, size_t rows, size_t n,
                                                                         int threads);

#define FASTSOFTMAX_MAX_THREADS 1024
/* Sampling (docs/sampling.md: the semantics of fastsoftmax.sample, exactly). One token per
 * row of `rows` rows of `n` logits, row r at x + r * x_row_stride (elements, any sign; 0
 * repeats one row). Per-row parameters are arrays of `rows` values, or NULL for the
 * default of every row: temperature 1 (>= 0, finite; 0 greedy), top_k disabled (>= 1; >= n
 * disables), top_p 1 (in (0, 1]), min_p 0 (in [0, 1]); seeds NULL: every row uses `seed`.
 * Row r draws with Philox counter row_offset + r (row_offset + rows - 1 <= UINT64_MAX). tokens
 * (rows values) receives the tokens,
 * logprobs (rows values, or NULL) their log-probabilities. Returns
 * FASTSOFTMAX_ERROR_INVALID_ARGUMENT, having written nothing to tokens or logprobs, for: a
 * bad parameter value, row_offset + rows - 1 beyond UINT64_MAX, n == 0 (with rows > 0), x
 * or tokens NULL, rows that do not fit the
 * address space (sizes overflow-checked), outputs that share a byte with x or each other,
 * threads outside [0, FASTSOFTMAX_MAX_THREADS], or a row of logits with NaN, +inf or all
 * -inf. bad_row (or NULL) receives the lowest such row of logits, else -1. rows == 0 does
 * nothing. The tokens do not depend on the thread count, tier or batch split. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_sample_f32(const float* x, size_t rows, size_t n, ptrdiff_t x_row_stride,
                                                          const double* temperature, const int64_t* top_k,
                                                          const double* top_p, const double* min_p,
                                                          const uint64_t* seeds, uint64_t seed, uint64_t row_offset,
                                                          int64_t* tokens, double* logprobs, int threads,
                                                          int64_t* bad_row);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_sample_f16(const uint16_t* x, size_t rows, size_t n,
                                                          ptrdiff_t x_row_stride, const double* temperature,
                                                          const int64_t* top_k, const double* top_p,
                                                          const double* min_p, const uint64_t* seeds, uint64_t seed,
                                                          uint64_t row_offset, int64_t* tokens, double* logprobs,
                                                          int threads, int64_t* bad_row);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_sample_bf16(const uint16_t* x, size_t rows, size_t n,
                                                           ptrdiff_t x_row_stride, const double* temperature,
                                                           const int64_t* top_k, const double* top_p,
                                                           const double* min_p, const uint64_t* seeds, uint64_t seed,
                                                           uint64_t row_offset, int64_t* tokens, double* logprobs,
                                                           int threads, int64_t* bad_row);
/* Cross-entropy: per row logsumexp(row) - row[targets[r]] in float64 (PyTorch's semantics).
 * targets[r] == ignore_index: the row is left out (its loss is 0, and it counts in neither
 * *sum nor *count). losses (rows values), sum and count may each be NULL; mean = *sum /
 * *count (NaN when *count is 0, as PyTorch). A target outside [0, n) that is not
 * ignore_index is FASTSOFTMAX_ERROR_INVALID_ARGUMENT with its row in *bad_row, nothing
 * written; so are NULL x or targets (rows > 0), n == 0, sizes that do not fit, outputs that
 * share a byte with an input or each other, and a bad thread count. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_cross_entropy_f32(const float* x, size_t rows, size_t n,
                                                                 ptrdiff_t x_row_stride, const int64_t* targets,
                                                                 int64_t ignore_index, double* losses, double* sum,
                                                                 int64_t* count, int threads, int64_t* bad_row);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_cross_entropy_f64(const double* x, size_t rows, size_t n,
                                                                 ptrdiff_t x_row_stride, const int64_t* targets,
                                                                 int64_t ignore_index, double* losses, double* sum,
                                                                 int64_t* count, int threads, int64_t* bad_row);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_cross_entropy_f16(const uint16_t* x, size_t rows, size_t n,
                                                                 ptrdiff_t x_row_stride, const int64_t* targets,
                                                                 int64_t ignore_index, double* losses, double* sum,
                                                                 int64_t* count, int threads, int64_t* bad_row);
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_cross_entropy_bf16(const uint16_t* x, size_t rows, size_t n,
                                                                  ptrdiff_t x_row_stride, const int64_t* targets,
                                                                  int64_t ignore_index, double* losses, double* sum,
                                                                  int64_t* count, int threads, int64_t* bad_row);

/* Threads used when a call passes threads = 0: what fastsoftmax_set_num_threads set, else
 * FASTSOFTMAX_NUM_THREADS, else OMP_NUM_THREADS (a malformed value is ignored), else the
 * smaller of the CPUs in this process's affinity mask and its cgroup CPU quota (rounded
 * up). A malformed FASTSOFTMAX_NUM_THREADS (not an integer from 1 to
 * FASTSOFTMAX_MAX_THREADS) makes this return 0 and calls with threads = 0 fail with
 * FASTSOFTMAX_ERROR_UNSUPPORTED. */
FASTSOFTMAX_API int fastsoftmax_get_num_threads(void);
/* n = 0 restores the default; n outside [0, FASTSOFTMAX_MAX_THREADS] is
 * FASTSOFTMAX_ERROR_INVALID_ARGUMENT and changes nothing. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_set_num_threads(int n);

typedef enum fastsoftmax_dtype {
  FASTSOFTMAX_FLOAT32 = 0,
  FASTSOFTMAX_FLOAT64 = 1,
  FASTSOFTMAX_FLOAT16 = 2,
  FASTSOFTMAX_BFLOAT16 = 3
} fastsoftmax_dtype;

/* FASTSOFTMAX_ALGORITHM_AUTO runs three-pass reload on rows of at most this many input bytes
 * and two-pass on longer rows (and, where AVX-512 runs at full width, on batches of float32 or
 * float64 rows of at least 16384 elements whose input plus output exceed half the last-level
 * cache: README, "auto"). The built-in limit is the L2 size (float64: 4 x L2);
 * `fastsoftmax-bench --tune` measures this machine's own crossover and writes it, per dtype,
 * to a profile that Python reads at import (its "reload_limit_bytes"); an embedder sets it
 * here. Process-wide. bytes < 0 restores the built-in limit; an unknown dtype is
 * FASTSOFTMAX_ERROR_INVALID_ARGUMENT. fastsoftmax_auto_reload_limit returns -1 for an unknown dtype. */
FASTSOFTMAX_API fastsoftmax_status fastsoftmax_set_auto_reload_limit(fastsoftmax_dtype dtype, int64_t bytes);
FASTSOFTMAX_API int64_t fastsoftmax_auto_reload_limit(fastsoftmax_dtype dtype);

/* The instruction-set tier in use ("avx512", "avx2" or "scalar"), or NULL when
 * FASTSOFTMAX_ISA is invalid. */
FASTSOFTMAX_API const char* fastsoftmax_isa(void);
FASTSOFTMAX_API const char* fastsoftmax_status_string(fastsoftmax_status status);
FASTSOFTMAX_API const char* fastsoftmax_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTSOFTMAX_FASTSOFTMAX_H_ */
