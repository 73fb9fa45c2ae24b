// The C ABI of sampling and cross-entropy (include/fastsoftmax/fastsoftmax.h, "Sampling").
// Every argument is checked before anything is read; the outputs are written only when the
// whole call succeeds (results go to scratch first). Exceptions stop here.
#include <cmath>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch/registry.h"
#include "fastsoftmax/fastsoftmax.h"
#include "kernels/half.h"
#include "sampling.h"
#include "softmax.h"
#include "threadpool.h"

namespace {

using namespace fastsoftmax;

// [lo, hi) of `count` items of `item` bytes from p; false when they do not fit the address
// space (a size beyond PTRDIFF_MAX, or a range wrapping around the end).
bool extent(const void* p, std::uint64_t count, std::uint64_t item, std::uintptr_t* lo, std::uintptr_t* hi) {
  if (count > std::uint64_t(PTRDIFF_MAX) / item) return false;
  const std::uintptr_t b = reinterpret_cast<std::uintptr_t>(p);
  if (count * item > UINTPTR_MAX - b) return false;
  *lo = b;
  *hi = b + count * item;
  return true;
}

// The bytes of `rows` rows of n items, `stride` items apart (any sign; 0 repeats one row).
bool rows_extent(const void* p, std::size_t rows, std::size_t n, std::ptrdiff_t stride, std::size_t item,
                 std::uintptr_t* lo, std::uintptr_t* hi) {
  constexpr std::uint64_t kMax = PTRDIFF_MAX;
  if (n > kMax / item) return false;
  const std::uint64_t row_bytes = std::uint64_t(n) * item;
  const std::uint64_t mag = stride < 0 ? std::uint64_t{0} - std::uint64_t(stride) : std::uint64_t(stride);
  std::uint64_t step = 0;
  if (rows > 1) {
    if (mag > kMax / item) return false;
    step = mag * item;
  }
  if (step != 0 && rows - 1 > (kMax - row_bytes) / step) return false;
  const std::uint64_t travel = (rows - 1) * step;
  const std::uintptr_t b = reinterpret_cast<std::uintptr_t>(p);
  const std::uint64_t back = stride < 0 ? travel : 0, ahead = stride < 0 ? row_bytes : travel + row_bytes;
  if (b < back || ahead > UINTPTR_MAX - b) return false;
  *lo = b - back;
  *hi = b + ahead;
  return true;
}

bool disjoint(std::uintptr_t alo, std::uintptr_t ahi, std::uintptr_t blo, std::uintptr_t bhi) {
  return ahi <= blo || bhi <= alo;
}

template <class T>
fastsoftmax_status sample_c(const T* x, std::size_t rows, std::size_t n, std::ptrdiff_t xs, const double* temperature,
                            const std::int64_t* top_k, const double* top_p, const double* min_p,
                            const std::uint64_t* seeds, std::uint64_t seed, std::uint64_t row_offset,
                            std::int64_t* tokens, double* logprobs, int threads, std::int64_t* bad_row) noexcept {
  try {
    if (threads < 0 || threads > kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (rows == 0) return FASTSOFTMAX_OK;
    if (n == 0 || !x || !tokens) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (row_offset > UINT64_MAX - (rows - 1)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;  // counters fit 64 bits
    std::uintptr_t xlo, xhi, tlo, thi, llo = 0, lhi = 0;
    if (!rows_extent(x, rows, n, rows > 1 ? xs : 0, sizeof(T), &xlo, &xhi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (!extent(tokens, rows, sizeof(std::int64_t), &tlo, &thi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (logprobs && !extent(logprobs, rows, sizeof(double), &llo, &lhi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (!disjoint(xlo, xhi, tlo, thi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (logprobs && (!disjoint(xlo, xhi, llo, lhi) || !disjoint(tlo, thi, llo, lhi)))
      return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    // Per-row parameters (NULL: the default for every row), checked row by row.
    std::vector<double> t(rows, 1.0), p(rows, 1.0), m(rows, 0.0);
    std::vector<std::int64_t> k(rows, std::int64_t(n));
    std::vector<std::uint64_t> s(rows, seed);
    for (std::size_t r = 0; r < rows; ++r) {
      if (temperature) {
        if (!(std::isfinite(temperature[r]) && temperature[r] >= 0)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
        t[r] = temperature[r];
      }
      if (top_k) {
        if (top_k[r] < 1) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
        k[r] = std::uint64_t(top_k[r]) < n ? top_k[r] : std::int64_t(n);
      }
      if (top_p) {
        if (!(top_p[r] > 0 && top_p[r] <= 1)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
        p[r] = top_p[r];
      }
      if (min_p) {
        if (!(min_p[r] >= 0 && min_p[r] <= 1)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
        m[r] = min_p[r];
      }
      if (seeds) s[r] = seeds[r];
    }
    SampleParams sp;
    sp.temperature = t.data();
    sp.top_k = k.data();
    sp.top_p = p.data();
    sp.min_p = m.data();
    sp.seed = s.data();
    sp.row_offset = row_offset;
    sp.row_stride = rows > 1 ? xs : 0;
    std::vector<std::int64_t> tok(rows);
    std::vector<double> lp(logprobs ? rows : 0);
    int error = 0;
    const std::int64_t bad = sample_rows<T>(x, rows, n, sp, tok.data(), logprobs ? lp.data() : nullptr, threads, &error);
    if (bad >= 0) {
      if (bad_row) *bad_row = bad;
      return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    }
    for (std::size_t r = 0; r < rows; ++r) tokens[r] = tok[r];
    if (logprobs)
      for (std::size_t r = 0; r < rows; ++r) logprobs[r] = lp[r];
    return FASTSOFTMAX_OK;
  } catch (const std::bad_alloc&) {
    return FASTSOFTMAX_ERROR_OUT_OF_MEMORY;
  } catch (const std::invalid_argument&) {
    return FASTSOFTMAX_ERROR_UNSUPPORTED;
  } catch (...) {
    return FASTSOFTMAX_ERROR_INTERNAL;
  }
}

template <class T> DType dtype_c();
template <> DType dtype_c<float>() { return DType::f32; }
template <> DType dtype_c<double>() { return DType::f64; }
template <> DType dtype_c<Half>() { return DType::f16; }
template <> DType dtype_c<BFloat16>() { return DType::bf16; }


template <class T>
fastsoftmax_status cross_entropy_c(const T* x, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                                   const std::int64_t* targets, std::int64_t ignore_index, double* losses, double* sum,
                                   std::int64_t* count, int threads, std::int64_t* bad_row) noexcept {
  try {
    if (threads < 0 || threads > kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (rows > 0 && (n == 0 || !x || !targets)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    std::uintptr_t xlo = 0, xhi = 0, glo = 0, ghi = 0, olo = 0, ohi = 0;
    if (rows > 0) {
      if (!rows_extent(x, rows, n, rows > 1 ? xs : 0, sizeof(T), &xlo, &xhi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
      if (!extent(targets, rows, sizeof(std::int64_t), &glo, &ghi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
      if (losses) {
        if (!extent(losses, rows, sizeof(double), &olo, &ohi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
        if (!disjoint(olo, ohi, xlo, xhi) || !disjoint(olo, ohi, glo, ghi)) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
      }
    }
    const auto outside = [&](const void* q, std::size_t bytes) {  // a scalar output outside the arrays
      std::uintptr_t a, b;
      if (!extent(q, bytes, 1, &a, &b)) return false;
      return rows == 0 || (disjoint(a, b, xlo, xhi) && disjoint(a, b, glo, ghi) && (!losses || disjoint(a, b, olo, ohi)));
    };
    if (sum && !outside(sum, sizeof(double))) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (count && !outside(count, sizeof(std::int64_t))) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (sum && count && !disjoint(reinterpret_cast<std::uintptr_t>(sum), reinterpret_cast<std::uintptr_t>(sum) + 8,
                                  reinterpret_cast<std::uintptr_t>(count),
                                  reinterpret_cast<std::uintptr_t>(count) + 8))
      return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    for (std::size_t r = 0; r < rows; ++r) {
      const std::int64_t g = targets[r];
      if (g != ignore_index && (g < 0 || std::uint64_t(g) >= n)) {
        if (bad_row) *bad_row = std::int64_t(r);
        return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
      }
    }
    std::vector<double> loss(rows, 0.0);
    if (rows > 0) {
      const KernelEntry& k = find_kernel(active_tier(), dtype_c<T>(), Op::softmax, Algorithm::two_pass);
      std::vector<double> m(rows), e(rows), sh(rows);
      const std::int64_t shape[2] = {std::int64_t(rows), std::int64_t(n)};
      const std::int64_t strides[2] = {rows > 1 ? std::int64_t(xs) * std::int64_t(sizeof(T)) : 0,
                                       std::int64_t(sizeof(T))};
      row_stats(k, 2, shape, reinterpret_cast<const char*>(x), strides, m.data(), e.data(), sh.data(), threads);
      for (std::size_t r = 0; r < rows; ++r) {
        if (targets[r] == ignore_index) continue;
        const double lse = logsumexp_of_stats(m[r], e[r], sh[r]);
        const T* row = x + (rows > 1 ? std::ptrdiff_t(r) * xs : 0);
        loss[r] = lse - double(Storage<T>::widen(row[targets[r]]));
      }
    }
    double total = 0;
    std::int64_t kept = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      if (targets[r] == ignore_index) continue;
      total += loss[r];
      ++kept;
    }
    if (losses)
      for (std::size_t r = 0; r < rows; ++r) losses[r] = loss[r];
    if (sum) *sum = total;
    if (count) *count = kept;
    return FASTSOFTMAX_OK;
  } catch (const std::bad_alloc&) {
    return FASTSOFTMAX_ERROR_OUT_OF_MEMORY;
  } catch (const std::invalid_argument&) {
    return FASTSOFTMAX_ERROR_UNSUPPORTED;
  } catch (...) {
    return FASTSOFTMAX_ERROR_INTERNAL;
  }
}

}  // namespace

extern "C" {

#define FSM_SAMPLE_ENTRY(name, CT, T)                                                                                \
  fastsoftmax_status name(const CT* x, size_t rows, size_t n, ptrdiff_t x_row_stride, const double* temperature,  \
                          const int64_t* top_k, const double* top_p, const double* min_p, const uint64_t* seeds,   \
                          uint64_t seed, uint64_t row_offset, int64_t* tokens, double* logprobs, int threads,     \
                          int64_t* bad_row) {                                                                     \
    std::int64_t bad = -1;                                                                                        \
    const fastsoftmax_status st = sample_c(reinterpret_cast<const T*>(x), rows, n, x_row_stride, temperature,    \
                                           top_k, top_p, min_p, seeds, seed, row_offset, tokens, logprobs,       \
                                           threads, &bad);                                                        \
    if (bad_row) *bad_row = bad;                                                                                  \
    return st;                                                                                                    \
  }
FSM_SAMPLE_ENTRY(fastsoftmax_sample_f32, float, float)
FSM_SAMPLE_ENTRY(fastsoftmax_sample_f16, uint16_t, Half)
FSM_SAMPLE_ENTRY(fastsoftmax_sample_bf16, uint16_t, BFloat16)
#undef FSM_SAMPLE_ENTRY

#define FSM_CE_ENTRY(name, CT, T)                                                                                 \
  fastsoftmax_status name(const CT* x, size_t rows, size_t n, ptrdiff_t x_row_stride, const int64_t* targets,    \
                          int64_t ignore_index, double* losses, double* sum, int64_t* count, int threads,        \
                          int64_t* bad_row) {                                                                    \
    std::int64_t bad = -1;                                                                                       \
    const fastsoftmax_status st = cross_entropy_c(reinterpret_cast<const T*>(x), rows, n, x_row_stride, targets, \
                                                  ignore_index, losses, sum, count, threads, &bad);              \
    if (bad_row) *bad_row = bad;                                                                                 \
    return st;                                                                                                   \
  }
FSM_CE_ENTRY(fastsoftmax_cross_entropy_f32, float, float)
FSM_CE_ENTRY(fastsoftmax_cross_entropy_f64, double, double)
FSM_CE_ENTRY(fastsoftmax_cross_entropy_f16, uint16_t, Half)
FSM_CE_ENTRY(fastsoftmax_cross_entropy_bf16, uint16_t, BFloat16)
#undef FSM_CE_ENTRY

}  // extern "C"
