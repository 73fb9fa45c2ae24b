// AArch64 Advanced SIMD (NEON) vector types (4 x f32, 2 x f64). Included only by
// kernels_neon.cpp. NEON, FMA (FMLA) and the float16 <-> float32 conversions (FCVTL/FCVTN)
// are all baseline ARMv8-A, so the tier needs no flags and no run-time check; it still lives
// in namespace fastsoftmax::neon like the x86 tiers, one file per ISA.
#pragma once
#include <arm_neon.h>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/half.h"

namespace fastsoftmax {
namespace neon {

template <class Scalar>
struct Vec;

template <>
struct Vec<float> {
  using T = float;
  using reg = float32x4_t;
  using mask = uint32x4_t;  // all-ones lanes where true
  static constexpr std::size_t N = 4;
  // 32 registers: 4 accumulators (x2 states in the grouped pair pass) keep 8 exps in
  // flight, enough for the 4-cycle FMLA latency on 2 (Neoverse N1) to 4 (V1) pipes.
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return vdupq_n_f32(v); }
  static reg loadu(const T* p) { return vld1q_f32(p); }
  static void storeu(T* p, reg v) { vst1q_f32(p, v); }
  // No non-temporal store intrinsic in ACLE (STNP is a pair store hint only): plain stores.
  static void stream(T* p, reg v) { vst1q_f32(p, v); }
  static void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }
  static void stream_fence() {}
  static mask tail_mask(std::size_t k) {
    const uint32x4_t lane = {0, 1, 2, 3};
    return vcltq_u32(lane, vdupq_n_u32(static_cast<std::uint32_t>(k)));
  }
  // No masked loads: a tail mask is a prefix of k lanes (tail_mask), and its lanes are
  // 0 or -1, so -sum(lanes) = k; only those k elements are touched.
  static std::size_t mask_count(mask m) {
    return static_cast<std::size_t>(-static_cast<std::int64_t>(vaddvq_s32(vreinterpretq_s32_u32(m))));
  }
  static reg load_tail(const T* p, mask m) {
    T buf[N] = {};
    std::memcpy(buf, p, mask_count(m) * sizeof(T));
    return vld1q_f32(buf);
  }
  static void store_tail(T* p, reg v, mask m) {
    T buf[N];
    vst1q_f32(buf, v);
    std::memcpy(p, buf, mask_count(m) * sizeof(T));
  }

  // 16-bit storage (loops.h's Io): float16 with FCVTL/FCVTN (round to nearest even under
  // the default FPCR), bfloat16 by shifts.
  static reg load16(const Half* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p))));
  }
  static reg load16(const BFloat16* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p)), 16));
  }
  static uint16x4_t to_half(reg v) { return vreinterpret_u16_f16(vcvt_f16_f32(v)); }
  // Round to nearest even on the bits, as the x86 tiers: add 0x7FFF plus the lowest kept
  // bit, keep the upper half. NaN keeps its upper bits, made quiet (the carry could
  // otherwise make it inf).
  static uint16x4_t to_bfloat16(reg v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint16x4_t rounded = vshrn_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7FFF))), 16);
    const uint16x4_t quiet = vorr_u16(vshrn_n_u32(u, 16), vdup_n_u16(0x40));
    const uint16x4_t nan = vmovn_u32(vmvnq_u32(vceqq_f32(v, v)));
    return vbsl_u16(nan, quiet, rounded);
  }
  static void store16(Half* p, reg v) { vst1_u16(reinterpret_cast<std::uint16_t*>(p), to_half(v)); }
  static void store16(BFloat16* p, reg v) { vst1_u16(reinterpret_cast<std::uint16_t*>(p), to_bfloat16(v)); }
  static void stream16(Half* p, reg v) { store16(p, v); }
  static void stream16(BFloat16* p, reg v) { store16(p, v); }

  static reg add(reg a, reg b) { return vaddq_f32(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f32(a, b); }
  static reg mul(reg a, reg b) { return vmulq_f32(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return vfmaq_f32(c, a, b); }  // a*b + c, one rounding
  // x86 semantics (the second operand when either is NaN), which passes.h is written
  // against: one FCMGT + BSL. FMAX would differ (it returns the NaN whichever side) and
  // in how it orders -0 and +0.
  static reg max(reg a, reg b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static reg min(reg a, reg b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
  static reg round(reg a) { return vrndnq_f32(a); }  // FRINTN: nearest even, NaN/inf pass
  static reg select(mask m, reg a, reg b) { return vbslq_f32(m, a, b); }

  static mask mask_none() { return vdupq_n_u32(0); }
  static mask mask_or(mask a, mask b) { return vorrq_u32(a, b); }
  static bool mask_any(mask m) { return vmaxvq_u32(m) != 0; }
  // True where !(x <= limit): NaN, +inf, or above the limit.
  static mask above_or_nan(reg x, reg limit) { return vmvnq_u32(vcleq_f32(x, limit)); }

  // 2^d from exponent bits, as the AVX2 tier: clamp d >= -127, add 0x1.8000FEp23 so the
  // low mantissa bits hold d + 127, shift them into the exponent field. d = -127 gives +0.
  static reg pow2(reg d) {
    const reg biased = vaddq_f32(max(d, vdupq_n_f32(-127.0f)), vdupq_n_f32(0x1.8000FEp23f));
    return vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(biased), 23));
  }
  static reg scale(reg m, reg d) { return vmulq_f32(m, pow2(d)); }
  static reg scale_add(reg m, reg d, reg acc) { return vfmaq_f32(acc, m, pow2(d)); }  // acc + m*2^d

  // (a0 + a1) + (a2 + a3) (FADDP twice).
  static T reduce_add(reg a) { return vaddvq_f32(a); }
  static T reduce_max(reg a) {
    const float32x2_t h = max2(vget_low_f32(a), vget_high_f32(a));
    return max2(h, vrev64_f32(h))[0];
  }

 private:
  static float32x2_t max2(float32x2_t a, float32x2_t b) { return vbsl_f32(vcgt_f32(a, b), a, b); }
};

template <>
struct Vec<double> {
  using T = double;
  using reg = float64x2_t;
  using mask = uint64x2_t;
  static constexpr std::size_t N = 2;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return vdupq_n_f64(v); }
  static reg loadu(const T* p) { return vld1q_f64(p); }
  static void storeu(T* p, reg v) { vst1q_f64(p, v); }
  static void stream(T* p, reg v) { vst1q_f64(p, v); }
  static void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }
  static void stream_fence() {}
  static mask tail_mask(std::size_t k) {
    const uint64x2_t lane = {0, 1};
    return vcltq_u64(lane, vdupq_n_u64(static_cast<std::uint64_t>(k)));
  }
  static std::size_t mask_count(mask m) {
    return static_cast<std::size_t>(-vaddvq_s64(vreinterpretq_s64_u64(m)));
  }
  static reg load_tail(const T* p, mask m) {
    T buf[N] = {};
    std::memcpy(buf, p, mask_count(m) * sizeof(T));
    return vld1q_f64(buf);
  }
  static void store_tail(T* p, reg v, mask m) {
    T buf[N];
    vst1q_f64(buf, v);
    std::memcpy(p, buf, mask_count(m) * sizeof(T));
  }

  static reg add(reg a, reg b) { return vaddq_f64(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f64(a, b); }
  static reg mul(reg a, reg b) { return vmulq_f64(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return vfmaq_f64(c, a, b); }
  static reg max(reg a, reg b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }  // x86 semantics, as for f32
  static reg min(reg a, reg b) { return vbslq_f64(vcltq_f64(a, b), a, b); }
  static reg round(reg a) { return vrndnq_f64(a); }
  static reg select(mask m, reg a, reg b) { return vbslq_f64(m, a, b); }

  static mask mask_none() { return vdupq_n_u64(0); }
  static mask mask_or(mask a, mask b) { return vorrq_u64(a, b); }
  static bool mask_any(mask m) { return (vgetq_lane_u64(m, 0) | vgetq_lane_u64(m, 1)) != 0; }
  static mask above_or_nan(reg x, reg limit) {
    return vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vcleq_f64(x, limit))));
  }

  // As for f32: clamp d >= -1023, bias with 0x1.8p52 + 1023, shift into the exponent.
  static reg pow2(reg d) {
    const reg biased = vaddq_f64(max(d, vdupq_n_f64(-1023.0)), vdupq_n_f64(0x1.8p52 + 1023.0));
    return vreinterpretq_f64_u64(vshlq_n_u64(vreinterpretq_u64_f64(biased), 52));
  }
  static reg scale(reg m, reg d) { return vmulq_f64(m, pow2(d)); }
  static reg scale_add(reg m, reg d, reg acc) { return vfmaq_f64(acc, m, pow2(d)); }

  static T reduce_add(reg a) { return vaddvq_f64(a); }
  static T reduce_max(reg a) {
    const T a0 = vgetq_lane_f64(a, 0), a1 = vgetq_lane_f64(a, 1);
    return a0 > a1 ? a0 : a1;
  }
};

}  // namespace neon
}  // namespace fastsoftmax
