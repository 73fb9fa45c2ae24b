#include "softmax.h"

#include <cstdlib>
#include <cstring>
#include <vector>

namespace fastsoftmax {
namespace {

template <class T>
void run_rows_typed(void (*kernel)(std::size_t, const T*, T*), int ndim, const std::int64_t* shape,
                    const char* x, const std::int64_t* xs, char* y, const std::int64_t* ys) {
  const std::size_t n = ndim ? static_cast<std::size_t>(shape[ndim - 1]) : 1;
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  if (n == 0 || rows == 0) return;
  const std::int64_t x_step = ndim ? xs[ndim - 1] : sizeof(T);
  const std::int64_t y_step = ndim ? ys[ndim - 1] : sizeof(T);
  const bool x_contig = x_step == std::int64_t(sizeof(T));
  const bool y_contig = y_step == std::int64_t(sizeof(T));
  std::vector<T> buffer;
  if (!y_contig) buffer.resize(n);

  std::vector<std::int64_t> index(ndim > 1 ? ndim - 1 : 0, 0);
  const char* xr = x;
  char* yr = y;
  for (std::size_t r = 0; r < rows; ++r) {
    if (x_contig && y_contig) {
      kernel(n, reinterpret_cast<const T*>(xr), reinterpret_cast<T*>(yr));
    } else {
      // Gather the strided input row into the output row when that is contiguous, else into
      // the buffer; compute in place there; scatter to a strided output row.
      T* work = y_contig ? reinterpret_cast<T*>(yr) : buffer.data();
      const T* src = reinterpret_cast<const T*>(xr);
      if (!x_contig) {
        for (std::size_t i = 0; i < n; ++i) std::memcpy(&work[i], xr + std::int64_t(i) * x_step, sizeof(T));
        src = work;
      }
      kernel(n, src, work);
      if (!y_contig)
        for (std::size_t i = 0; i < n; ++i) std::memcpy(yr + std::int64_t(i) * y_step, &work[i], sizeof(T));
    }
    // Advance the odometer over the outer axes.
    for (int d = ndim - 2; d >= 0; --d) {
      xr += xs[d];
      yr += ys[d];
      if (++index[d] < shape[d]) break;
      xr -= xs[d] * shape[d];
      yr -= ys[d] * shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace

void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* xs, char* y, const std::int64_t* ys) {
  if (k.dtype == DType::f32)
    run_rows_typed<float>(reinterpret_cast<KernelF32>(k.fn), ndim, shape, x, xs, y, ys);
  else
    run_rows_typed<double>(reinterpret_cast<KernelF64>(k.fn), ndim, shape, x, xs, y, ys);
}

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

}  // namespace fastsoftmax
