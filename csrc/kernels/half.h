// Half-precision storage types. The kernels read and write them and compute in float32:
// each load widens to float32 in registers, each store rounds to nearest even. The scalar
// conversions here are portable C++ (no F16C): the scalar tier and the exact path use them.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace fastsoftmax {

struct Half {  // IEEE 754 binary16 (NumPy's float16)
  std::uint16_t bits;
};
struct BFloat16 {  // bfloat16: the upper 16 bits of a float32 (ml_dtypes.bfloat16)
  std::uint16_t bits;
};

// The type a storage type is computed in.
template <class S>
struct ComputeOf {
  using type = S;
};
template <>
struct ComputeOf<Half> {
  using type = float;
};
template <>
struct ComputeOf<BFloat16> {
  using type = float;
};
template <class S>
using compute_t = typename ComputeOf<S>::type;

// The code below is compiled into every tier's file with that tier's flags: internal
// linkage keeps the linker from merging, say, an AVX-512 copy into the baseline code.
namespace {

// Rounds v to nearest even in a 16-bit binary format with kMant fraction bits and
// exponents in [kEmin, kEmax] (normal numbers), with gradual underflow, overflow to inf and
// NaN kept quiet. One rounding from F, so no double rounding from a wider type.
template <int kMant, int kEmin, int kEmax, class F>
std::uint16_t round_to_bits(F v) {
  const unsigned sign = std::signbit(v) ? 0x8000u : 0u;
  const unsigned inf = ((1u << (15 - kMant)) - 1u) << kMant;
  if (v != v) return static_cast<std::uint16_t>(sign | inf | (1u << (kMant - 1)));
  const F a = std::fabs(v);
  if (a < std::ldexp(F(1), kEmin)) {  // subnormal: a multiple of 2^(kEmin - kMant); may round up to the smallest normal
    const F q = std::nearbyint(std::ldexp(a, kMant - kEmin));
    return static_cast<std::uint16_t>(sign | static_cast<unsigned>(q));
  }
  if (!(a <= std::numeric_limits<F>::max())) return static_cast<std::uint16_t>(sign | inf);
  int e;
  std::frexp(a, &e);
  e -= 1;  // a = 1.f * 2^e
  F q = std::nearbyint(std::ldexp(a, kMant - e));  // in [2^kMant, 2^(kMant+1)]
  if (q == std::ldexp(F(1), kMant + 1)) {
    q = std::ldexp(F(1), kMant);
    ++e;
  }
  if (e > kEmax) return static_cast<std::uint16_t>(sign | inf);
  const unsigned biased = static_cast<unsigned>(e - kEmin + 1);
  return static_cast<std::uint16_t>(sign | (biased << kMant) | (static_cast<unsigned>(q) - (1u << kMant)));
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const unsigned exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0x1F) {  // inf / NaN: payload kept, NaN made quiet (as vcvtph2ps)
    const std::uint32_t bits = sign | 0x7F800000u | (std::uint32_t(mant) << 13) | (mant ? 0x00400000u : 0u);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  const float mag = exp == 0 ? std::ldexp(float(mant), -24) : std::ldexp(float(mant | 0x400u), int(exp) - 25);
  return sign ? -mag : mag;
}

inline float bfloat16_to_float(std::uint16_t b) {
  const std::uint32_t bits = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <class F>
std::uint16_t half_from(F v) {
  return round_to_bits<10, -14, 15>(v);
}
template <class F>
std::uint16_t bfloat16_from(F v) {
  return round_to_bits<7, -126, 127>(v);
}

// Widening a stored value to long double and rounding back (the exact path, and the
// scalar glue of rows.h).
template <class S>
struct Storage {
  static long double widen(S v) { return v; }
  static S narrow(long double v) { return static_cast<S>(v); }
};
template <>
struct Storage<Half> {
  static long double widen(Half v) { return half_to_float(v.bits); }
  static Half narrow(long double v) { return {half_from(v)}; }
};
template <>
struct Storage<BFloat16> {
  static long double widen(BFloat16 v) { return bfloat16_to_float(v.bits); }
  static BFloat16 narrow(long double v) { return {bfloat16_from(v)}; }
};

}  // namespace

}  // namespace fastsoftmax
