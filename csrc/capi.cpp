// The C ABI of include/fastsoftmax/fastsoftmax.h over run_rows. Exceptions stop here.
#include "fastsoftmax/fastsoftmax.h"

#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <string>

#include "dispatch/registry.h"
#include "softmax.h"
#include "threadpool.h"

#ifndef FASTSOFTMAX_VERSION
#define FASTSOFTMAX_VERSION "unknown"
#endif

namespace {

using namespace fastsoftmax;

const char* algorithm_name(fastsoftmax_algorithm a) {
  switch (a) {
    case FASTSOFTMAX_ALGORITHM_AUTO: return "auto";
    case FASTSOFTMAX_ALGORITHM_TWO_PASS: return "two-pass";
    case FASTSOFTMAX_ALGORITHM_THREE_PASS_RELOAD: return "three-pass-reload";
    case FASTSOFTMAX_ALGORITHM_THREE_PASS_RECOMPUTE: return "three-pass-recompute";
    case FASTSOFTMAX_ALGORITHM_ONLINE: return "online";
  }
  return nullptr;
}

template <class T>
DType dtype_of() {
  if constexpr (std::is_same<T, float>::value) return DType::f32;
  else if constexpr (std::is_same<T, double>::value) return DType::f64;
  else if constexpr (std::is_same<T, Half>::value) return DType::f16;
  else return DType::bf16;
}

// The bytes an array's rows cover, [lo, hi), and the distance between consecutive rows.
struct Span {
  std::uintptr_t lo, hi;
  std::uint64_t step;  // |stride| in bytes; 0 for one row, whose stride is never applied
};

// The span of `rows` rows of `row_bytes` bytes from `base`, `stride` elements of `item` bytes
// apart; false where they do not fit the address space: a distance beyond PTRDIFF_MAX (also
// where the stride arithmetic would overflow) or a range that wraps around either end.
bool span_of(const void* base, std::size_t rows, std::uint64_t row_bytes, std::ptrdiff_t stride, std::size_t item,
             Span* s) {
  constexpr std::uint64_t kMax = PTRDIFF_MAX;
  const std::uint64_t mag = stride < 0 ? std::uint64_t{0} - std::uint64_t(stride) : std::uint64_t(stride);
  s->step = 0;
  if (rows > 1) {
    if (mag > kMax / item) return false;
    s->step = mag * item;
  }
  if (s->step != 0 && rows - 1 > (kMax - row_bytes) / s->step) return false;
  const std::uint64_t travel = (rows - 1) * s->step;  // from row 0 to the last row
  const std::uintptr_t b = reinterpret_cast<std::uintptr_t>(base);
  const std::uint64_t back = stride < 0 ? travel : 0, ahead = stride < 0 ? row_bytes : travel + row_bytes;
  if (b < back || ahead > UINTPTR_MAX - b) return false;
  s->lo = b - back;
  s->hi = b + ahead;
  return true;
}

// Whether a row of x shares a byte with a row of y. The rows of y are disjoint (step >=
// row_bytes, or one row); as a set they start at y.lo + j * y.step, j < rows, whatever the
// sign of the stride, and those of x at x.lo + r * x.step. For each distinct x row, the last
// y row starting before its end is the only one that can reach it (the earlier ones end
// before that one does). O(rows): only calls whose x and y ranges meet without being one
// array in place get here (x and y interleaved in one buffer, or a bad call).
bool rows_meet(const Span& x, const Span& y, std::size_t rows, std::uint64_t row_bytes) {
  const std::uintptr_t base = x.lo < y.lo ? x.lo : y.lo;  // offsets from here fit in 64 bits
  const std::uint64_t y0 = y.lo - base;
  const std::size_t x_rows = x.step == 0 ? 1 : rows;
  for (std::size_t r = 0; r < x_rows; ++r) {
    const std::uint64_t a = (x.lo - base) + r * x.step, end = a + row_bytes;  // x row r: [a, end)
    if (end <= y0) continue;
    std::uint64_t j = y.step == 0 ? 0 : (end - 1 - y0) / y.step;
    if (j > rows - 1) j = rows - 1;
    if (a < y0 + j * y.step + row_bytes) return true;
  }
  return false;
}

// Every argument is checked before anything is read or written (fastsoftmax.h, "Arguments").
template <class T>
fastsoftmax_status check(const T* x, const T* y, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                         std::ptrdiff_t ys, fastsoftmax_algorithm algorithm, int threads) {
  if (!algorithm_name(algorithm)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  if (threads < 0 || threads > kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  if (rows == 0 || n == 0) return FASTSOFTMAX_OK;  // nothing to read or write: pointers and strides unused
  if (!x || !y) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  if (n > std::size_t(PTRDIFF_MAX) / sizeof(T)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  const std::uint64_t row_bytes = n * sizeof(T);
  Span xr, yr;
  if (!span_of(x, rows, row_bytes, xs, sizeof(T), &xr) || !span_of(y, rows, row_bytes, ys, sizeof(T), &yr))
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  // Output rows must not overlap one another (input rows may: a broadcast row is fine).
  if (rows > 1 && yr.step < row_bytes) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  // x and y: one array in place, or no byte in common.
  const bool in_place = x == y && (rows == 1 || xs == ys);
  if (!in_place && xr.lo < yr.hi && yr.lo < xr.hi && rows_meet(xr, yr, rows, row_bytes))
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  return FASTSOFTMAX_OK;
}

template <class T>
fastsoftmax_status run(const char* op, const T* x, T* y, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                       std::ptrdiff_t ys, fastsoftmax_algorithm algorithm, int threads) noexcept {
  try {
    const fastsoftmax_status valid = check(x, y, rows, n, xs, ys, algorithm, threads);
    if (valid != FASTSOFTMAX_OK || rows == 0 || n == 0) return valid;
    const DType dt = dtype_of<T>();
    const std::string tier = active_isa();
    const char* resolved = algorithm == FASTSOFTMAX_ALGORITHM_AUTO ? auto_algorithm(dt, n) : algorithm_name(algorithm);
    const KernelEntry* k = find_kernel(tier, dt, op, resolved);
    if (!k) return FASTSOFTMAX_ERROR_INTERNAL;
    // Byte strides: in range (check), and 0 for a single row, whose stride is never applied.
    const auto bytes = [rows](std::ptrdiff_t s) {
      return rows > 1 ? static_cast<std::int64_t>(s) * std::int64_t(sizeof(T)) : std::int64_t{0};
    };
    const std::int64_t shape[2] = {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(n)};
    const std::int64_t x_strides[2] = {bytes(xs), std::int64_t(sizeof(T))};
    const std::int64_t y_strides[2] = {bytes(ys), std::int64_t(sizeof(T))};
    run_rows(*k, 2, shape, reinterpret_cast<const char*>(x), x_strides, reinterpret_cast<char*>(y), y_strides, threads);
    return FASTSOFTMAX_OK;
  } catch (const std::bad_alloc&) {
    return FASTSOFTMAX_ERROR_OUT_OF_MEMORY;
  } catch (const std::invalid_argument&) {
    return FASTSOFTMAX_ERROR_UNSUPPORTED;  // a bad FASTSOFTMAX_ISA
  } catch (...) {
    return FASTSOFTMAX_ERROR_INTERNAL;
  }
}

}  // namespace

static_assert(FASTSOFTMAX_MAX_THREADS == fastsoftmax::kMaxThreads, "the header and the core agree on the cap");

extern "C" {

fastsoftmax_status fastsoftmax_softmax_f32(const float* x, float* y, size_t rows, size_t n, ptrdiff_t xs,
                                           ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("softmax", x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f32(const float* x, float* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("log_softmax", x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_softmax_f64(const double* x, double* y, size_t rows, size_t n, ptrdiff_t xs,
                                           ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("softmax", x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f64(const double* x, double* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("log_softmax", x, y, rows, n, xs, ys, a, threads);
}

// 16-bit rows are passed as their bits.
fastsoftmax_status fastsoftmax_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                           ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("softmax", reinterpret_cast<const Half*>(x), reinterpret_cast<Half*>(y), rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("log_softmax", reinterpret_cast<const Half*>(x), reinterpret_cast<Half*>(y), rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                            ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("softmax", reinterpret_cast<const BFloat16*>(x), reinterpret_cast<BFloat16*>(y), rows, n, xs, ys, a,
             threads);
}
fastsoftmax_status fastsoftmax_log_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                                ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run("log_softmax", reinterpret_cast<const BFloat16*>(x), reinterpret_cast<BFloat16*>(y), rows, n, xs, ys, a,
             threads);
}

int fastsoftmax_get_num_threads(void) {
  try {
    return fastsoftmax::get_num_threads();
  } catch (...) {
    return 0;  // a malformed FASTSOFTMAX_NUM_THREADS
  }
}

fastsoftmax_status fastsoftmax_set_num_threads(int n) {
  if (n < 0 || n > fastsoftmax::kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  fastsoftmax::set_num_threads(n);
  return FASTSOFTMAX_OK;
}

const char* fastsoftmax_isa(void) {
  try {
    return fastsoftmax::active_isa().c_str();
  } catch (...) {
    return nullptr;
  }
}

const char* fastsoftmax_status_string(fastsoftmax_status s) {
  switch (s) {
    case FASTSOFTMAX_OK: return "ok";
    case FASTSOFTMAX_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case FASTSOFTMAX_ERROR_UNSUPPORTED: return "unsupported (check FASTSOFTMAX_ISA)";
    case FASTSOFTMAX_ERROR_OUT_OF_MEMORY: return "out of memory";
    case FASTSOFTMAX_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* fastsoftmax_version(void) { return FASTSOFTMAX_VERSION; }

}  // extern "C"
