// The C ABI of the backward passes (fastsoftmax.h, "Backward") over backward_rows.
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "backward.h"
#include "dispatch/registry.h"
#include "fastsoftmax/fastsoftmax.h"
#include "threadpool.h"

namespace {

using namespace fastsoftmax;

// [lo, hi) of `bytes` bytes from p; false when they wrap around the address space.
bool range_of(const void* p, std::uint64_t bytes, std::uintptr_t* lo, std::uintptr_t* hi) {
  *lo = reinterpret_cast<std::uintptr_t>(p);
  if (bytes > UINTPTR_MAX - *lo) return false;
  *hi = *lo + bytes;
  return true;
}

// Every argument is checked before anything is read or written.
fastsoftmax_status check(const void* y, const void* g, const void* dx, std::size_t rows, std::size_t n,
                         std::size_t item, int threads) {
  if (threads < 0 || threads > kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  if (rows == 0 || n == 0) return FASTSOFTMAX_OK;
  if (!y || !g || !dx) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  if (n > std::size_t(PTRDIFF_MAX) / item || rows > std::size_t(PTRDIFF_MAX) / item / n)
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  const std::uint64_t bytes = std::uint64_t(rows) * n * item;
  std::uintptr_t ylo, yhi, glo, ghi, dlo, dhi;
  if (!range_of(y, bytes, &ylo, &yhi) || !range_of(g, bytes, &glo, &ghi) || !range_of(dx, bytes, &dlo, &dhi))
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  // dx: y itself, g itself, or apart from both (y and g are only read: they may overlap).
  const auto meet = [](std::uintptr_t a0, std::uintptr_t a1, std::uintptr_t b0, std::uintptr_t b1) {
    return a0 < b1 && b0 < a1;
  };
  if ((dx != y && meet(dlo, dhi, ylo, yhi)) || (dx != g && meet(dlo, dhi, glo, ghi)))
    return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
  return FASTSOFTMAX_OK;
}

fastsoftmax_status run(DType d, std::size_t item, bool log, const void* y, const void* g, void* dx, std::size_t rows,
                       std::size_t n, int threads) noexcept {
  try {
    const fastsoftmax_status valid = check(y, g, dx, rows, n, item, threads);
    if (valid != FASTSOFTMAX_OK || rows == 0 || n == 0) return valid;
    backward_rows(active_tier(), d, log, rows, n, y, g, dx, threads);
    return FASTSOFTMAX_OK;
  } catch (const std::bad_alloc&) {
    return FASTSOFTMAX_ERROR_OUT_OF_MEMORY;
  } catch (const std::invalid_argument&) {
    return FASTSOFTMAX_ERROR_UNSUPPORTED;  // a bad FASTSOFTMAX_ISA or FASTSOFTMAX_NUM_THREADS
  } catch (...) {
    return FASTSOFTMAX_ERROR_INTERNAL;
  }
}

}  // namespace

extern "C" {

#define FSM_BACKWARD_ENTRY(name, ctype, dtype, log)                                                       \
  fastsoftmax_status name(const ctype* y, const ctype* g, ctype* dx, size_t rows, size_t n, int threads) { \
    return run(dtype, sizeof(ctype), log, y, g, dx, rows, n, threads);                                    \
  }
FSM_BACKWARD_ENTRY(fastsoftmax_softmax_backward_f32, float, DType::f32, false)
FSM_BACKWARD_ENTRY(fastsoftmax_log_softmax_backward_f32, float, DType::f32, true)
FSM_BACKWARD_ENTRY(fastsoftmax_softmax_backward_f64, double, DType::f64, false)
FSM_BACKWARD_ENTRY(fastsoftmax_log_softmax_backward_f64, double, DType::f64, true)
FSM_BACKWARD_ENTRY(fastsoftmax_softmax_backward_f16, uint16_t, DType::f16, false)
FSM_BACKWARD_ENTRY(fastsoftmax_log_softmax_backward_f16, uint16_t, DType::f16, true)
FSM_BACKWARD_ENTRY(fastsoftmax_softmax_backward_bf16, uint16_t, DType::bf16, false)
FSM_BACKWARD_ENTRY(fastsoftmax_log_softmax_backward_bf16, uint16_t, DType::bf16, true)
#undef FSM_BACKWARD_ENTRY

}  // extern "C"
