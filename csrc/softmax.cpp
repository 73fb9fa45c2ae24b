#include "softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "threadpool.h"

#define FASTSOFTMAX_ROWS_NS generic
#include "kernels/rows.h"

namespace fastsoftmax {

std::size_t streaming_threshold_bytes() {
  // Stream an output row once input plus output exceed the last-level cache (DESIGN §6:
  // non-temporal stores are several times slower while the data would still fit).
  // FASTSOFTMAX_STREAM_MIN_BYTES overrides it, for measuring the crossover.
  static const std::size_t threshold = [] {
    if (const char* env = std::getenv("FASTSOFTMAX_STREAM_MIN_BYTES")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') return static_cast<std::size_t>(v);
    }
    const CacheSizes& c = cache_sizes();
    const std::size_t llc = c.l3 ? c.l3 : c.l2 ? c.l2 : (std::size_t{32} << 20);
    return llc / 2;
  }();
  return threshold;
}

// Rule: in cache the exp arithmetic is the limit and three-pass reload (one exp per
// element) wins; once input plus output spill out of the L2 the memory traffic is the
// limit and two-pass (2R+1W instead of 3R+2W) wins.
const char* auto_algorithm(DType dtype, std::size_t row_length) {
  const std::size_t itemsize = dtype == DType::f32 ? 4 : 8;
  std::size_t l2 = cache_sizes().l2;
  if (l2 == 0) l2 = 1u << 20;
  return 2 * row_length * itemsize <= l2 ? "three-pass-reload" : "two-pass";
}

namespace {

// Below this many elements in a call, threads cost more than they save (measured: see
// README, "Threads").
constexpr std::size_t kMinParallelElements = std::size_t{1} << 17;

template <class T>
void run_rows_typed(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                    const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  if (n == 0 || rows == 0) return;
  const Primitives<T>& p = *static_cast<const Primitives<T>*>(k.prims);
  const RowsJob job{k.op_id, k.algorithm_id, ndim, shape, x, xs, y, ys, n * sizeof(T) >= streaming_threshold_bytes()};

  if (threads <= 0) threads = get_num_threads();
  if (rows * n < kMinParallelElements) threads = 1;
  // Short rows: whole rows per thread, the per-row work inside the tier. Long rows: one row
  // at a time, its chunks spread over the threads (or, with many long rows, whole rows per
  // thread). Either way each row is computed the same way, whatever the thread count.
  if (n <= generic::kChunk) {
    const std::size_t tasks = std::min(rows, std::size_t(threads) * 4);
    return parallel_for(tasks, threads, [&](std::size_t t) { p.rows(job, rows * t / tasks, rows * (t + 1) / tasks); });
  }
  const bool by_rows = rows >= std::size_t(2 * threads);
  const int chunk_threads = by_rows ? 1 : threads;
  const auto chunks = [chunk_threads](std::size_t count, auto& f) {
    parallel_for(count, chunk_threads, [&](std::size_t c) {
      generic::FlushDenormals ftz;
      f(c);
    });
  };
  using Runner = generic::RowRunner<T, Primitives<T>, decltype(chunks)>;
  const Runner runner(p, chunks, job.op, job.algorithm, n, job.stream);
  const auto rows_of = [&](std::size_t r0, std::size_t r1) {
    generic::FlushDenormals ftz;
    generic::for_rows<T>(job, r0, r1, [&](const T* xr, T* yr) { runner.row(xr, yr); });
  };
  if (by_rows && threads > 1)
    return parallel_for(rows, threads, [&](std::size_t r) { rows_of(r, r + 1); });
  rows_of(0, rows);
}

// Stats or from-stats over every row, rows spread over threads, long rows' chunks too.
template <class T, class Fn>
void for_each_row_with_runner(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                              const std::int64_t* xs, char* y, const std::int64_t* ys, int threads, Fn&& fn) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  if (n == 0 || rows == 0) return;
  const Primitives<T>& p = *static_cast<const Primitives<T>*>(k.prims);
  if (threads <= 0) threads = get_num_threads();
  if (rows * n < kMinParallelElements) threads = 1;
  const bool by_rows = rows >= std::size_t(2 * threads) || n <= generic::kChunk;
  const int chunk_threads = by_rows ? 1 : threads;
  const auto chunks = [chunk_threads](std::size_t count, auto& f) {
    parallel_for(count, chunk_threads, [&](std::size_t c) {
      generic::FlushDenormals ftz;
      f(c);
    });
  };
  using Runner = generic::RowRunner<T, Primitives<T>, decltype(chunks)>;
  const Runner runner(p, chunks, k.op_id, Algorithm::two_pass, n, n * sizeof(T) >= streaming_threshold_bytes());
  // y may be null (statistics only): then a strided row is gathered into a buffer.
  const std::int64_t* y_strides = y ? ys : xs;
  auto rows_of = [&](std::size_t r0, std::size_t r1) {
    generic::FlushDenormals ftz;
    std::vector<T> buffer;
    for (std::size_t r = r0; r < r1; ++r) {
      std::int64_t xo = 0, yo = 0;
      for (std::size_t rest = r, d = std::size_t(ndim - 1); d-- > 0;) {
        const std::int64_t i = static_cast<std::int64_t>(rest % std::size_t(shape[d]));
        rest /= std::size_t(shape[d]);
        xo += i * xs[d];
        yo += i * y_strides[d];
      }
      const std::int64_t x_step = xs[ndim - 1];
      const T* xr = reinterpret_cast<const T*>(x + xo);
      if (x_step != std::int64_t(sizeof(T))) {  // gather a strided row
        buffer.resize(n);
        for (std::size_t i = 0; i < n; ++i) std::memcpy(&buffer[i], x + xo + std::int64_t(i) * x_step, sizeof(T));
        xr = buffer.data();
      }
      if (!y) {
        fn(runner, r, xr, static_cast<T*>(nullptr));
        continue;
      }
      const std::int64_t y_step = ys[ndim - 1];
      if (y_step == std::int64_t(sizeof(T))) {
        fn(runner, r, xr, reinterpret_cast<T*>(y + yo));
      } else {
        std::vector<T> out(n);
        fn(runner, r, xr, out.data());
        for (std::size_t i = 0; i < n; ++i) std::memcpy(y + yo + std::int64_t(i) * y_step, &out[i], sizeof(T));
      }
    }
  };
  if (by_rows && threads > 1) {
    const std::size_t tasks = std::min(rows, std::size_t(threads) * 4);
    return parallel_for(tasks, threads, [&](std::size_t t) { rows_of(rows * t / tasks, rows * (t + 1) / tasks); });
  }
  rows_of(0, rows);
}

}  // namespace

void row_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x, const std::int64_t* xs,
               double* m, double* e, int threads) {
  if (ndim < 1) return;
  auto fn = [&](const auto& runner, std::size_t r, const auto* xr, auto*) { runner.stats(xr, &m[r], &e[r]); };
  if (k.dtype == DType::f32)
    for_each_row_with_runner<float>(k, ndim, shape, x, xs, nullptr, nullptr, threads, fn);
  else
    for_each_row_with_runner<double>(k, ndim, shape, x, xs, nullptr, nullptr, threads, fn);
}

void rows_from_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                     const std::int64_t* xs, char* y, const std::int64_t* ys, const double* m, const double* e,
                     int threads) {
  if (ndim < 1) return;
  auto fn = [&](const auto& runner, std::size_t r, const auto* xr, auto* yr) { runner.from_stats(xr, yr, m[r], e[r]); };
  if (k.dtype == DType::f32)
    for_each_row_with_runner<float>(k, ndim, shape, x, xs, y, ys, threads, fn);
  else
    for_each_row_with_runner<double>(k, ndim, shape, x, xs, y, ys, threads, fn);
}

void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  if (ndim < 1) return;
  if (k.dtype == DType::f32)
    run_rows_typed<float>(k, ndim, shape, x, xs, y, ys, threads);
  else
    run_rows_typed<double>(k, ndim, shape, x, xs, y, ys, threads);
}

}  // namespace fastsoftmax
