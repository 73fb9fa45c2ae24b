// The vector layer of the sampling passes (sampling_body.h): 16-lane vectors written with
// GCC/Clang vector extensions that each tier's flags lower to its registers, the loads of
// float32/float16/bfloat16 logits, the exp, compares as lane bits, reductions and the
// padded block. A few operations use the tier's instructions where the tier has them
// (fused multiply-add, mask registers); their results are the same bits on every tier.
// Included by sampling_body.h, inside the tier's namespace.
#pragma once
#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER before including sampling_vec.h"
#endif
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <cmath>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kernels/half.h"
#include "kernels/sampling_kernels.h"

// Every function passing a vector here is internal and inlined, so GCC's note that a
// 64-byte vector's calling convention differs without AVX-512 does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {
namespace {

using sampling::kBlock;
using sampling::kLanes;
using sampling::kMaxBlock;

// 16-lane vectors (GCC/Clang vector extensions): each tier's flags lower them to its
// registers (one zmm, two ymm, four xmm or NEON q registers); the operations are element
// by element, so their bits never depend on the tier.
typedef float vf __attribute__((vector_size(64)));
typedef std::int32_t vi __attribute__((vector_size(64)));
typedef std::uint32_t vu __attribute__((vector_size(64)));
typedef std::uint16_t vh __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(128)));

#define FSM_SAMPLING_INLINE inline __attribute__((always_inline))

template <class S> struct Load;
template <> struct Load<float> {
  static float at(const float* x, std::size_t j) { return x[j]; }
  static FSM_SAMPLING_INLINE vf vec(const float* x, std::size_t j) {
    vf v;
    std::memcpy(&v, x + j, sizeof v);
    return v;
  }
};
template <> struct Load<BFloat16> {
  static float at(const BFloat16* x, std::size_t j) {
    const std::uint32_t b = std::uint32_t(x[j].bits) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  static FSM_SAMPLING_INLINE vf vec(const BFloat16* x, std::size_t j) {
    vh h;
    std::memcpy(&h, x + j, sizeof h);
    return (vf)(__builtin_convertvector(h, vu) << 16);
  }
};
template <> struct Load<Half> {
  static float at(const Half* x, std::size_t j) { return half_bits_to_float(x[j].bits); }
  static FSM_SAMPLING_INLINE vf vec(const Half* x, std::size_t j) {  // as half_bits_to_float
    vh h;
    std::memcpy(&h, x + j, sizeof h);
    const vu u = __builtin_convertvector(h, vu);
    const vu em = u & 0x7FFFu;
    const vu normal = (em << 13) + 0x38000000u;
    const vf sub = __builtin_convertvector((vi)em, vf) * 5.9604644775390625e-08f;
    const vu is_sub = (vu)(em < 0x0400u);
    const vu is_special = (vu)(em >= 0x7C00u);
    vu b = (normal & ~is_sub) | ((vu)sub & is_sub);
    b = (b & ~is_special) | (((em << 13) | 0x7F800000u) & is_special);
    return (vf)(b | ((u & 0x8000u) << 16));
  }
};

FSM_SAMPLING_INLINE vu key_vec(vf v) {
  const vu b = (vu)v;
  return b ^ ((vu)((vi)b >> 31) | 0x80000000u);
}

// a * b + c rounded once, lane by lane: the tier's fused multiply-add (std::fma on the
// scalar tier: an instruction where the target has one, else the C library's, exact too).
// op over the kParts registers of type R that hold the 16 lanes of a, b and c.
template <class R, int kParts, class Op>
FSM_SAMPLING_INLINE vf by_parts(vf a, vf b, vf c, Op op) {
  constexpr int kBytes = 64 / kParts;
  vf out;
  for (int h = 0; h < kParts; ++h) {
    R ra, rb, rc;
    std::memcpy(&ra, reinterpret_cast<const char*>(&a) + kBytes * h, kBytes);
    std::memcpy(&rb, reinterpret_cast<const char*>(&b) + kBytes * h, kBytes);
    std::memcpy(&rc, reinterpret_cast<const char*>(&c) + kBytes * h, kBytes);
    const R r = op(ra, rb, rc);
    std::memcpy(reinterpret_cast<char*>(&out) + kBytes * h, &r, kBytes);
  }
  return out;
}

FSM_SAMPLING_INLINE vf fmadd(vf a, vf b, vf c) {
#if defined(__AVX512F__)
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__AVX2__) && defined(__FMA__)
  return by_parts<__m256, 2>(a, b, c, [](__m256 x, __m256 y, __m256 z) { return _mm256_fmadd_ps(x, y, z); });
#elif defined(__aarch64__)
  return by_parts<float32x4_t, 4>(a, b, c, [](float32x4_t x, float32x4_t y, float32x4_t z) { return vfmaq_f32(z, x, y); });
#else
  vf out;
  for (int l = 0; l < 16; ++l) out[l] = std::fma(a[l], b[l], c[l]);
  return out;
#endif
}
FSM_SAMPLING_INLINE vf splat(float v) { return vf{} + v; }

// exp_nonpositive (sampling_kernels.h), operation by operation.
FSM_SAMPLING_INLINE vf exp_vec(vf y) {
  const vi keep = y >= kExpLowest;
  const vi lo = (vi)splat(kExpLowest);
  const vf yc = (vf)(((vi)y & keep) | (lo & ~keep));
  vf t;
  const vf q = exp_reduced(yc, [](vf a, vf b, vf c) { return fmadd(a, b, c); }, &t);
  const vu bits = ((vu)t - kRoundMagicBits + 127u) << 23;  // 2^n
  const vf e = q * (vf)bits;
  return (vf)((vi)e & keep);
}

FSM_SAMPLING_INLINE vf select(vi m, vf v) { return (vf)((vi)v & m); }

// acc + (v >= thr ? v : 0), lane by lane (acc + 0 is acc: acc is never -0 here). One masked
// add where the tier has mask registers.
FSM_SAMPLING_INLINE vf add_if_ge(vf acc, vf v, float thr) {
#if defined(__AVX512F__)
  const __m512 va = (__m512)acc, vv = (__m512)v;
  const __mmask16 k = _mm512_cmp_ps_mask(vv, _mm512_set1_ps(thr), _CMP_GE_OQ);
  return (vf)_mm512_mask_add_ps(va, k, va, vv);
#else
  return acc + select(v >= thr, v);
#endif
}

// Horizontal reductions by a tree of shuffles (no trip through memory: a 64-byte store
// read back in pieces stalls store-to-load forwarding).
FSM_SAMPLING_INLINE vu fold_halves(vu x, int step) {
  switch (step) {
    case 8: return __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    case 4: return __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    case 2: return __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    default: return __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  }
}
FSM_SAMPLING_INLINE std::uint32_t reduce_or(vu x) {
  x = x | fold_halves(x, 8);
  x = x | fold_halves(x, 4);
  x = x | fold_halves(x, 2);
  x = x | fold_halves(x, 1);
  return x[0];
}
FSM_SAMPLING_INLINE std::uint32_t reduce_max(vu x) {
  vu y = fold_halves(x, 8);
  x = x > y ? x : y;
  y = fold_halves(x, 4);
  x = x > y ? x : y;
  y = fold_halves(x, 2);
  x = x > y ? x : y;
  y = fold_halves(x, 1);
  x = x > y ? x : y;
  return x[0];
}
FSM_SAMPLING_INLINE std::uint32_t reduce_add(vu x) {
  x = x + fold_halves(x, 8);
  x = x + fold_halves(x, 4);
  x = x + fold_halves(x, 2);
  x = x + fold_halves(x, 1);
  return x[0];
}

// The 16 lanes of a compare result as bits (lane l -> bit l): one mask move where the tier
// has one, else a tree of shuffles.
FSM_SAMPLING_INLINE std::uint32_t lane_bits(vi m) {
#if defined(__AVX512F__)
  const __m512i v = (__m512i)m;
  return std::uint32_t(_mm512_test_epi32_mask(v, v));  // m is 0 or all ones per lane
#elif defined(__AVX2__)
  __m256 lo, hi;
  std::memcpy(&lo, &m, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&m) + 32, sizeof hi);
  return std::uint32_t(_mm256_movemask_ps(lo)) | (std::uint32_t(_mm256_movemask_ps(hi)) << 8);
#else
  const vu bit = {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u, 512u, 1024u, 2048u, 4096u, 8192u, 16384u, 32768u};
  return reduce_or((vu)m & bit);
#endif
}

FSM_SAMPLING_INLINE double tree16v(vd d) {
  double a[16];
  std::memcpy(a, &d, sizeof a);
  return tree16(a);
}
FSM_SAMPLING_INLINE vd widen(vf a) { return __builtin_convertvector(a, vd); }

inline float y_of(float x, float mx, float inv_t) { return (x - mx) * inv_t; }

// Lane l of vector g of a block is element 16 g + l. A block shorter than kBlock (the row's
// tail) is copied into zero-filled buffers and its missing lanes masked off (valid), so that
// it adds exactly what the lane rule says.
template <class S> struct Block {
  const S* x;
  const float* w;
  std::size_t len;
  S xpad[kBlock];
  float wpad[kBlock];
  FSM_SAMPLING_INLINE void set(const S* xs, const float* ws, std::size_t j, std::size_t n) {
    len = n - j < kBlock ? n - j : kBlock;
    if (len == kBlock) {
      x = xs + j;
      w = ws ? ws + j : nullptr;
      return;
    }
    std::memset(xpad, 0, sizeof xpad);
    std::memcpy(xpad, xs + j, len * sizeof(S));
    x = xpad;
    if (ws) {
      std::memset(wpad, 0, sizeof wpad);
      std::memcpy(wpad, ws + j, len * sizeof(float));
      w = wpad;
    } else {
      w = nullptr;
    }
  }
  FSM_SAMPLING_INLINE vi valid(std::size_t g) const {
    vi iota;
    for (int l = 0; l < 16; ++l) iota[l] = l;
    return (iota + int(g)) < int(len);
  }
  FSM_SAMPLING_INLINE vf xv(std::size_t g) const { return Load<S>::vec(x, g); }
  FSM_SAMPLING_INLINE vf wv(std::size_t g) const {
    vf v;
    std::memcpy(&v, w + g, sizeof v);
    return v;
  }
};

}  // namespace
}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
