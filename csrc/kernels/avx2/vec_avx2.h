// AVX2+FMA vector types (8 x f32, 4 x f64). Included only by kernels_avx2.cpp, the one
// file compiled with -mavx2 -mfma -mf16c; everything lives in namespace fastsoftmax::avx2 so
// that no AVX code can be picked by the linker for a shared symbol.
#pragma once
#include <immintrin.h>
#include <cstddef>
#include <cstdint>

#include "kernels/half.h"

namespace fastsoftmax {
namespace avx2 {

template <class Scalar>
struct Vec;

template <>
struct Vec<float> {
  using T = float;
  using reg = __m256;
  using mask = __m256;  // all-ones lanes where true
  static constexpr std::size_t N = 8;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return _mm256_set1_ps(v); }
  static reg loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, reg v) { _mm256_storeu_ps(p, v); }
  static void stream(T* p, reg v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void stream_fence() { _mm_sfence(); }
  static mask tail_mask(std::size_t k) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), lane));
  }
  // vmaskmov never touches memory in masked-off lanes (no fault past the row).
  static reg load_tail(const T* p, mask m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
  static void store_tail(T* p, reg v, mask m) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v); }

  // 16-bit storage (loops.h's Io): float16 with F16C (required by the tier), bfloat16 by
  // shifts; stores round to nearest even.
  static reg load16(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static reg load16(const BFloat16* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static __m128i to_half(reg v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
  // Round to nearest even on the bits: add 0x7FFF plus the lowest kept bit, keep the upper
  // half. NaN keeps its upper bits, made quiet (the carry could otherwise make it inf).
  static __m128i to_bfloat16(reg v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i upper = _mm256_srli_epi32(u, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(upper, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7FFF));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(upper, _mm256_set1_epi32(0x40)), nan);
    const __m256i packed = _mm256_packus_epi32(r, r);  // per 128-bit lane: r0..r3 r0..r3 | r4..r7 r4..r7
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
  static void store16(Half* p, reg v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_half(v)); }
  static void store16(BFloat16* p, reg v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_bfloat16(v)); }
  static void stream16(Half* p, reg v) { _mm_stream_si128(reinterpret_cast<__m128i*>(p), to_half(v)); }
  static void stream16(BFloat16* p, reg v) { _mm_stream_si128(reinterpret_cast<__m128i*>(p), to_bfloat16(v)); }

#include "kernels/transpose8x8_avx.inc"

  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg round(reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg select(mask m, reg a, reg b) { return _mm256_blendv_ps(b, a, m); }

  static mask mask_none() { return _mm256_setzero_ps(); }
  static mask mask_or(mask a, mask b) { return _mm256_or_ps(a, b); }
  static bool mask_any(mask m) { return _mm256_movemask_ps(m) != 0; }
  static mask above_or_nan(reg x, reg limit) { return _mm256_cmp_ps(x, limit, _CMP_NLE_UQ); }

  // 2^d from exponent bits: clamp d >= -127, add 0x1.8000FEp23 so the low mantissa bits
  // hold d + 127, shift them into the exponent field. d = -127 gives exactly +0.
  static reg pow2(reg d) {
    const reg biased = _mm256_add_ps(_mm256_max_ps(d, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(0x1.8000FEp23f));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(biased), 23));
  }
  static reg scale(reg m, reg d) { return _mm256_mul_ps(m, pow2(d)); }
  static reg scale_add(reg m, reg d, reg acc) { return _mm256_fmadd_ps(m, pow2(d), acc); }  // acc + m*2^d
  // m * 2^n with n in the low bits of k (k = z log2e + 1.5 * 2^23): n added to m's exponent field.
  static reg add_exponent(reg m, reg k) {
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(m), _mm256_slli_epi32(_mm256_castps_si256(k), 23)));
  }

  static T reduce_add(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T reduce_max(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Vec<double> {
  using T = double;
  using reg = __m256d;
  using mask = __m256d;
  static constexpr std::size_t N = 4;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return _mm256_set1_pd(v); }
  static reg loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, reg v) { _mm256_storeu_pd(p, v); }
  static void stream(T* p, reg v) { _mm256_stream_pd(p, v); }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void stream_fence() { _mm_sfence(); }
  static mask tail_mask(std::size_t k) {
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(k)), lane));
  }
  static reg load_tail(const T* p, mask m) { return _mm256_maskload_pd(p, _mm256_castpd_si256(m)); }
  static void store_tail(T* p, reg v, mask m) { _mm256_maskstore_pd(p, _mm256_castpd_si256(m), v); }

  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_pd(a, b); }
  static reg round(reg a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg select(mask m, reg a, reg b) { return _mm256_blendv_pd(b, a, m); }

  static mask mask_none() { return _mm256_setzero_pd(); }
  static mask mask_or(mask a, mask b) { return _mm256_or_pd(a, b); }
  static bool mask_any(mask m) { return _mm256_movemask_pd(m) != 0; }
  static mask above_or_nan(reg x, reg limit) { return _mm256_cmp_pd(x, limit, _CMP_NLE_UQ); }

  // As for f32: clamp d >= -1023, bias with 0x1.8p52 + 1023, shift into the exponent.
  static reg pow2(reg d) {
    const reg biased = _mm256_add_pd(_mm256_max_pd(d, _mm256_set1_pd(-1023.0)), _mm256_set1_pd(0x1.8p52 + 1023.0));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(biased), 52));
  }
  static reg scale(reg m, reg d) { return _mm256_mul_pd(m, pow2(d)); }
  static reg scale_add(reg m, reg d, reg acc) { return _mm256_fmadd_pd(m, pow2(d), acc); }
  static reg add_exponent(reg m, reg k) {  // as Vec<float>'s, with k = z log2e + 1.5 * 2^52
    return _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(m), _mm256_slli_epi64(_mm256_castpd_si256(k), 52)));
  }

  static T reduce_add(reg a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  static T reduce_max(reg a) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    s = _mm_max_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};

}  // namespace avx2
}  // namespace fastsoftmax
