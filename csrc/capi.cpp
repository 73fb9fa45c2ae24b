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

template <class T>
fastsoftmax_status run(const char* op, const T* x, T* y, std::size_t rows, std::size_t n, std::ptrdiff_t xs,
                       std::ptrdiff_t ys, fastsoftmax_algorithm algorithm, int threads) noexcept {
  try {
    if (rows == 0 || n == 0) return FASTSOFTMAX_OK;
    const char* alg = algorithm_name(algorithm);
    if (!x || !y || !alg) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    if (threads < 0 || threads > kMaxThreads) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    // Output rows must not overlap one another (reading rows may: a broadcast input is fine).
    if (rows > 1 && static_cast<std::size_t>(ys < 0 ? -ys : ys) < n) return FASTSOFTMAX_ERROR_INVALID_ARGUMENT;
    const DType dt = dtype_of<T>();
    const std::string tier = active_isa();
    const char* resolved = algorithm == FASTSOFTMAX_ALGORITHM_AUTO ? auto_algorithm(dt, n) : alg;
    const KernelEntry* k = find_kernel(tier, dt, op, resolved);
    if (!k) return FASTSOFTMAX_ERROR_INTERNAL;
    const std::int64_t shape[2] = {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(n)};
    const std::int64_t x_strides[2] = {static_cast<std::int64_t>(xs) * std::int64_t(sizeof(T)), std::int64_t(sizeof(T))};
    const std::int64_t y_strides[2] = {static_cast<std::int64_t>(ys) * std::int64_t(sizeof(T)), std::int64_t(sizeof(T))};
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
