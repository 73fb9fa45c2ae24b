// The C ABI of include/fastsoftmax/fastsoftmax.h over run_rows. Exceptions stop here.
#include "fastsoftmax/fastsoftmax.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <string>

#include "dispatch/registry.h"
#include "select_kernel.h"
#include "softmax.h"
#include "threadpool.h"

#ifndef FASTSOFTMAX_VERSION
#define FASTSOFTMAX_VERSION "unknown"
#endif

namespace {

using namespace fastsoftmax;

// fastsoftmax_algorithm numbers kernels.inc's algorithms from 1 in its order; 0 is "auto".
static_assert(FASTSOFTMAX_ALGORITHM_TWO_PASS == 1 + int(Algorithm::two_pass) &&
                  FASTSOFTMAX_ALGORITHM_THREE_PASS_RELOAD == 1 + int(Algorithm::three_pass_reload) &&
                  FASTSOFTMAX_ALGORITHM_THREE_PASS_RECOMPUTE == 1 + int(Algorithm::three_pass_recompute) &&
                  FASTSOFTMAX_ALGORITHM_ONLINE == 1 + int(Algorithm::online) && kAlgorithms == 4,
              "fastsoftmax.h's fastsoftmax_algorithm follows kernels.inc");
bool algorithm_choice(fastsoftmax_algorithm a, AlgorithmChoice* choice) {
  const int i = static_cast<int>(a);
  if (i < 0 || i > kAlgorithms) return false;
  *choice = i == FASTSOFTMAX_ALGORITHM_AUTO ? AlgorithmChoice() : AlgorithmChoice(Algorithm(i - 1));
  return true;
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

// Whether a row of x shares a byte with a row of y; `unknown` (refused like `yes`) where
// deciding would list more than kMaxRowsListed rows.
enum class Meet { no, yes, unknown };
constexpr std::uint64_t kMaxRowsListed = std::uint64_t{1} << 20;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// The rows of each array, `row_bytes` long, start at lo + i * step, i < rows, as a set
// whatever the sign of the stride (step 0: one distinct row); y's rows are disjoint (checked
// before). Offsets are taken from the lower of the two lo, so they fit in 63 bits: the
// ranges meet, and each is at most PTRDIFF_MAX bytes long.
//  - Same step (x and y rows taking turns in one buffer, the usual case): row r of x and
//    row j of y start d + (r - j) * step apart, and only the two r - j around -d / step
//    can bring that within row_bytes. O(1).
//  - Different steps: the rows of one array that lie within reach of the other's range are
//    listed (of the two lists, the shorter); for each, the other array's last row starting
//    before its end is the one that reaches furthest (all rows have the same length), so it
//    is the only one to compare with. Exact up to kMaxRowsListed rows.
Meet rows_meet(const Span& x, const Span& y, std::size_t rows, std::uint64_t row_bytes) {
  const std::uintptr_t base = x.lo < y.lo ? x.lo : y.lo;
  const std::uint64_t x0 = x.lo - base, y0 = y.lo - base, last_row = rows - 1;
  if (x.step == y.step && x.step != 0) {
    const std::int64_t d = static_cast<std::int64_t>(x0) - static_cast<std::int64_t>(y0);
    const std::int64_t step = static_cast<std::int64_t>(x.step), q = floor_div(-d, step);
    for (const std::int64_t k : {q, q + 1}) {  // d + q * step in (-step, 0], d + (q + 1) * step in (0, step]
      const std::int64_t gap = d + k * step;
      const std::uint64_t k_abs = k < 0 ? std::uint64_t{0} - std::uint64_t(k) : std::uint64_t(k);
      const std::uint64_t gap_abs = gap < 0 ? std::uint64_t{0} - std::uint64_t(gap) : std::uint64_t(gap);
      if (k_abs <= last_row && gap_abs < row_bytes) return Meet::yes;
    }
    return Meet::no;
  }
  struct Rows {
    std::uint64_t first_byte, step;
  };
  // The rows i of `a` (first..last) whose bytes come within [lo, hi); false: none.
  const auto within = [&](const Rows& a, std::uint64_t lo, std::uint64_t hi, std::uint64_t* first,
                          std::uint64_t* last) {
    if (hi <= a.first_byte) return false;  // every row of a starts at or past hi
    if (a.first_byte + row_bytes > lo) {
      *first = 0;
    } else {  // the first row ending past lo, if any
      if (a.step == 0) return false;
      *first = (lo - row_bytes + 1 - a.first_byte + a.step - 1) / a.step;
    }
    *last = a.step == 0 ? 0 : std::min(last_row, (hi - 1 - a.first_byte) / a.step);
    return *first <= *last;
  };
  const Rows xr{x0, x.step}, yr{y0, y.step};
  std::uint64_t xf, xl, yf, yl;
  const bool xs_near = within(xr, y0, y.hi - base, &xf, &xl), ys_near = within(yr, x0, x.hi - base, &yf, &yl);
  if (!xs_near || !ys_near) return Meet::no;
  const bool list_x = xl - xf <= yl - yf;
  const Rows& a = list_x ? xr : yr;
  const Rows& b = list_x ? yr : xr;
  const std::uint64_t first = list_x ? xf : yf, last = list_x ? xl : yl;
  if (last - first >= kMaxRowsListed) return Meet::unknown;
  const std::uint64_t b_last = b.step == 0 ? 0 : last_row;
  for (std::uint64_t i = first; i <= last; ++i) {
    const std::uint64_t start = a.first_byte + i * a.step, end = start + row_bytes;
    if (end <= b.first_byte) continue;
    const std::uint64_t j = b.step == 0 ? 0 : std::min(b_last, (end - 1 - b.first_byte) / b.step);
    if (start < b.first_byte + j * b.step + row_bytes) return Meet::yes;
  }
  return Meet::no;
}

// Every argument is checked before anything is read or written (fastsoftmax.h, "Arguments").
template <class T>
fastsoftmax_status check(const T* x, const T* y, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                         std::ptrdiff_t ys, fastsoftmax_algorithm algorithm, int threads) {
  AlgorithmChoice choice;
  if (!algorithm_choice(algorithm, &choice)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
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
  if (!in_place && xr.lo < yr.hi && yr.lo < xr.hi && rows_meet(xr, yr, rows, row_bytes) != Meet::no)
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  return FASTSOFTMAX_OK;
}

template <class T>
fastsoftmax_status run(Op op, const T* x, T* y, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                       std::ptrdiff_t ys, fastsoftmax_algorithm algorithm, int threads) noexcept {
  try {
    const fastsoftmax_status valid = check(x, y, rows, n, xs, ys, algorithm, threads);
    if (valid != FASTSOFTMAX_OK || rows == 0 || n == 0) return valid;
    AlgorithmChoice choice;
    algorithm_choice(algorithm, &choice);  // valid: check
    TierRefusal refused;
    const KernelEntry* k = select_kernel(nullptr, dtype_of<T>(), op, choice, n, &refused, rows);
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
  return run(Op::softmax, x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f32(const float* x, float* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::log_softmax, x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_softmax_f64(const double* x, double* y, size_t rows, size_t n, ptrdiff_t xs,
                                           ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::softmax, x, y, rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f64(const double* x, double* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::log_softmax, x, y, rows, n, xs, ys, a, threads);
}

// 16-bit rows are passed as their bits.
fastsoftmax_status fastsoftmax_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                           ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::softmax, reinterpret_cast<const Half*>(x), reinterpret_cast<Half*>(y), rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_log_softmax_f16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                               ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::log_softmax, reinterpret_cast<const Half*>(x), reinterpret_cast<Half*>(y), rows, n, xs, ys, a, threads);
}
fastsoftmax_status fastsoftmax_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                            ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::softmax, reinterpret_cast<const BFloat16*>(x), reinterpret_cast<BFloat16*>(y), rows, n, xs, ys, a,
             threads);
}
fastsoftmax_status fastsoftmax_log_softmax_bf16(const uint16_t* x, uint16_t* y, size_t rows, size_t n, ptrdiff_t xs,
                                                ptrdiff_t ys, fastsoftmax_algorithm a, int threads) {
  return run(Op::log_softmax, reinterpret_cast<const BFloat16*>(x), reinterpret_cast<BFloat16*>(y), rows, n, xs, ys, a,
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

namespace {
static_assert(FASTSOFTMAX_FLOAT32 == int(fastsoftmax::DType::f32) && FASTSOFTMAX_FLOAT64 == int(fastsoftmax::DType::f64) &&
                  FASTSOFTMAX_FLOAT16 == int(fastsoftmax::DType::f16) &&
                  FASTSOFTMAX_BFLOAT16 == int(fastsoftmax::DType::bf16) && fastsoftmax::kDTypes == 4,
              "fastsoftmax.h's fastsoftmax_dtype follows kernels.inc");
bool dtype_of_c(fastsoftmax_dtype d, fastsoftmax::DType* out) {
  switch (d) {
    case FASTSOFTMAX_FLOAT32: *out = fastsoftmax::DType::f32; return true;
    case FASTSOFTMAX_FLOAT64: *out = fastsoftmax::DType::f64; return true;
    case FASTSOFTMAX_FLOAT16: *out = fastsoftmax::DType::f16; return true;
    case FASTSOFTMAX_BFLOAT16: *out = fastsoftmax::DType::bf16; return true;
  }
  return false;
}
}  // namespace

fastsoftmax_status fastsoftmax_set_auto_reload_limit(fastsoftmax_dtype dtype, int64_t bytes) {
  fastsoftmax::DType d;
  if (!dtype_of_c(dtype, &d)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  fastsoftmax::set_auto_reload_limit(d, bytes);
  return FASTSOFTMAX_OK;
}

int64_t fastsoftmax_auto_reload_limit(fastsoftmax_dtype dtype) {
  fastsoftmax::DType d;
  if (!dtype_of_c(dtype, &d)) return -1;
  const std::size_t b = fastsoftmax::auto_reload_limit(d);
  return b > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(b);
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
