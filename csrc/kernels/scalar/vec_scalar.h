// Portable one-lane "vector" type: the scalar tier. Plain C++, no intrinsics, so it
// compiles on any target. The algorithms in passes.h see the same interface as the
// SIMD tiers; only lane count and instructions differ.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/half.h"
#include <cstring>

namespace fastsoftmax {
namespace scalar {

template <class Scalar>
struct Vec {
  using T = Scalar;
  using reg = T;
  using mask = bool;
  static constexpr std::size_t N = 1;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return v; }
  static reg loadu(const T* p) { return *p; }
  static void storeu(T* p, reg v) { *p = v; }
  static void stream(T* p, reg v) { *p = v; }
  static void prefetch(const void*) {}
  static void stream_fence() {}
  // One lane: a tail never has 0 < k < N, but the interface is kept uniform.
  static mask tail_mask(std::size_t k) { return k > 0; }
  static reg load_tail(const T* p, mask m) { return m ? *p : T(0); }
  static void store_tail(T* p, reg v, mask m) { if (m) *p = v; }

  // 16-bit storage (float16, bfloat16; used with T = float): portable conversions.
  static reg load16(const Half* p) { return half_to_float(p->bits); }
  static reg load16(const BFloat16* p) { return bfloat16_to_float(p->bits); }
  static void store16(Half* p, reg v) { p->bits = half_from(v); }
  static void store16(BFloat16* p, reg v) { p->bits = bfloat16_from(v); }
  static void stream16(Half* p, reg v) { store16(p, v); }
  static void stream16(BFloat16* p, reg v) { store16(p, v); }

  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  // float: the product of two floats is exact in double, so this is a fused multiply-add
  // up to a double rounding (< 0.5 ulp + 2^-29 ulp) without calling libm's fmaf.
  // double: std::fma (hardware through glibc's ifunc where the CPU has FMA).
  static reg fmadd(reg a, reg b, reg c) {
    if constexpr (sizeof(T) == 4) return static_cast<float>(double(a) * double(b) + double(c));
    else return std::fma(a, b, c);
  }
  // NaN-tolerant like x86 max/min: the second operand wins when either is NaN.
  static reg max(reg a, reg b) { return a > b ? a : b; }
  static reg min(reg a, reg b) { return a < b ? a : b; }
  // Nearest-even by the 1.5*2^(mantissa bits) bias: exact for |a| < 2^22 (float) / 2^51
  // (double), which the clamped fast path guarantees (|n| < 2^18); NaN and inf pass through.
  // (libm's nearbyint saves and restores the FP environment: ~20x slower.)
  static reg round(reg a) {
    constexpr T bias = sizeof(T) == 4 ? T(0x1.8p23) : T(0x1.8p52);
    return (a + bias) - bias;  // not folded: no -ffast-math anywhere
  }
  static reg select(mask m, reg a, reg b) { return m ? a : b; }

  static mask mask_none() { return false; }
  static mask mask_or(mask a, mask b) { return a || b; }
  static bool mask_any(mask m) { return m; }
  // True where !(x <= limit): NaN, +inf, or above the limit.
  static mask above_or_nan(reg x, reg limit) { return !(x <= limit); }

  // m * 2^d for integer-valued d <= 0; d below the smallest normal exponent gives 0,
  // as the AVX2 tier does, so the tiers agree bit for bit on normal outputs.
  static reg scale(reg m, reg d) { return m * pow2(d); }
  static reg scale_add(reg m, reg d, reg acc) { return acc + m * pow2(d); }  // acc + m*2^d
  static reg pow2(reg d) {
    if constexpr (sizeof(T) == 4) {
      if (!(d > -127.0f)) return 0.0f;
      const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(d) + 127) << 23;
      float r;
      std::memcpy(&r, &bits, sizeof r);
      return r;
    } else {
      if (!(d > -1023.0)) return 0.0;
      const std::uint64_t bits = static_cast<std::uint64_t>(static_cast<std::int64_t>(d) + 1023) << 52;
      double r;
      std::memcpy(&r, &bits, sizeof r);
      return r;
    }
  }

  static T reduce_add(reg a) { return a; }
  static T reduce_max(reg a) { return a; }
};

}  // namespace scalar
}  // namespace fastsoftmax
