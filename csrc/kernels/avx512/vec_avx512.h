// AVX-512F vector types (16 x f32, 8 x f64). Included only by kernels_avx512.cpp, the one
// file compiled with -mavx512f; namespace fastsoftmax::avx512. Uses AVX512F alone (no
// DQ/BW/VL), so detection requires exactly F plus OS support for ZMM and opmask state.
// vscalef applies 2^d in one instruction (exact, handles under/overflow) and opmask
// registers make row tails free.
#pragma once
#include <immintrin.h>
#include <cstddef>
#include <cstdint>

#include "kernels/half.h"

// kernels_avx512_bf16.cpp includes this header again, with -mavx512bf16, in its own
// namespace (a second definition of Vec in avx512 would break the one-definition rule).
#ifndef FASTSOFTMAX_AVX512_NS
#define FASTSOFTMAX_AVX512_NS avx512
#endif

namespace fastsoftmax {
namespace FASTSOFTMAX_AVX512_NS {

template <class Scalar>
struct Vec;

template <>
struct Vec<float> {
  using T = float;
  using reg = __m512;
  using mask = __mmask16;
  static constexpr std::size_t N = 16;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return _mm512_set1_ps(v); }
  static reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, reg v) { _mm512_storeu_ps(p, v); }
  static void stream(T* p, reg v) { _mm512_stream_ps(p, v); }  // p 64-byte aligned
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void stream_fence() { _mm_sfence(); }
  static mask tail_mask(std::size_t k) { return static_cast<mask>((1u << k) - 1u); }
  static reg load_tail(const T* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store_tail(T* p, reg v, mask m) { _mm512_mask_storeu_ps(p, m, v); }

  // 16-bit storage (loops.h's Io), with AVX512F alone: float16 by vcvtph2ps/vcvtps2ph,
  // bfloat16 by shifts and vpmovdw; stores round to nearest even.
  static reg load16(const Half* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static reg load16(const BFloat16* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static __m256i to_half(reg v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // Round to nearest even on the bits: add 0x7FFF plus the lowest kept bit, keep the upper
  // half. NaN keeps its upper bits, made quiet (the carry could otherwise make it inf).
  static __m256i to_bfloat16(reg v) {
#if defined(__AVX512BF16__)
    return (__m256i)_mm512_cvtneps_pbh(v);  // one instruction where the CPU has AVX512-BF16
#else
    const __m512i u = _mm512_castps_si512(v);
    const __m512i upper = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(upper, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7FFF));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(upper, _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
#endif
  }
  static void store16(Half* p, reg v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_half(v)); }
  static void store16(BFloat16* p, reg v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_bfloat16(v)); }
  static void stream16(Half* p, reg v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), to_half(v)); }
  static void stream16(BFloat16* p, reg v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), to_bfloat16(v)); }

#include "kernels/transpose8x8_avx.inc"

  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg round(reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg select(mask m, reg a, reg b) { return _mm512_mask_blend_ps(m, b, a); }

  static mask mask_none() { return 0; }
  static mask mask_or(mask a, mask b) { return static_cast<mask>(a | b); }
  static bool mask_any(mask m) { return m != 0; }
  static mask above_or_nan(reg x, reg limit) { return _mm512_cmp_ps_mask(x, limit, _CMP_NLE_UQ); }

  static reg pow2(reg d) { return _mm512_scalef_ps(_mm512_set1_ps(1.0f), d); }
  static reg scale(reg m, reg d) { return _mm512_scalef_ps(m, d); }
  static reg scale_add(reg m, reg d, reg acc) { return _mm512_add_ps(acc, _mm512_scalef_ps(m, d)); }  // acc + m*2^d

  static T reduce_add(reg a) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T reduce_max(reg a) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Vec<double> {
  using T = double;
  using reg = __m512d;
  using mask = __mmask8;
  static constexpr std::size_t N = 8;
  static constexpr std::size_t kAccumulators = 4;

  static reg set1(T v) { return _mm512_set1_pd(v); }
  static reg loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, reg v) { _mm512_storeu_pd(p, v); }
  static void stream(T* p, reg v) { _mm512_stream_pd(p, v); }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void stream_fence() { _mm_sfence(); }
  static mask tail_mask(std::size_t k) { return static_cast<mask>((1u << k) - 1u); }
  static reg load_tail(const T* p, mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store_tail(T* p, reg v, mask m) { _mm512_mask_storeu_pd(p, m, v); }

  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_pd(a, b); }
  static reg round(reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg floor(reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static reg select(mask m, reg a, reg b) { return _mm512_mask_blend_pd(m, b, a); }

  // float64 exp by a 16-entry table (exp.h, TableExp): one vpermt2pd picks, in each
  // lane, table[index & 15] from the two registers, index being the bits of a biased double.
  static constexpr bool kTableExp = true;
  static reg lookup16(const T* table, reg index) {
    return _mm512_permutex2var_pd(_mm512_loadu_pd(table), _mm512_castpd_si512(index), _mm512_loadu_pd(table + 8));
  }

  static mask mask_none() { return 0; }
  static mask mask_or(mask a, mask b) { return static_cast<mask>(a | b); }
  static bool mask_any(mask m) { return m != 0; }
  static mask above_or_nan(reg x, reg limit) { return _mm512_cmp_pd_mask(x, limit, _CMP_NLE_UQ); }

  static reg pow2(reg d) { return _mm512_scalef_pd(_mm512_set1_pd(1.0), d); }
  static reg scale(reg m, reg d) { return _mm512_scalef_pd(m, d); }
  static reg scale_add(reg m, reg d, reg acc) { return _mm512_add_pd(acc, _mm512_scalef_pd(m, d)); }

  static T reduce_add(reg a) {
    __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  static T reduce_max(reg a) {
    __m256d h = _mm256_max_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    s = _mm_max_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};

}  // namespace FASTSOFTMAX_AVX512_NS
}  // namespace fastsoftmax
