// The vector layer of the sampling passes (sampling_body.h): 16-lane vectors held as the
// tier's registers (GCC/Clang vector extensions of the register's width), the loads of
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
#elif defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "kernels/half.h"
#include "kernels/sampling_kernels.h"

// Every function passing a vector here is internal and inlined, so GCC's notes on the
// calling convention of vector arguments do not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {
namespace {

using sampling::kBlock;
using sampling::kLanes;
using sampling::kMaxBlock;

#define FSM_SAMPLING_INLINE inline __attribute__((always_inline))

// 16 lanes of T held as kN parts of one vector register of the tier each (GCC/Clang vector
// extensions): one zmm (avx512), two ymm (avx2), four xmm or NEON q registers (scalar, neon);
// float64 lanes take twice the parts. Not one 16-lane vector extension type: GCC keeps a
// vector wider than the target's registers in memory and lowers its compares lane by lane
// through general registers. The operations are element by element (compares exact, the
// integer reductions in any order), so their bits never depend on the tier.
#if defined(__AVX512F__)
#define FSM_SAMPLING_PART_BYTES 64
#elif defined(__AVX2__)
#define FSM_SAMPLING_PART_BYTES 32
#else
#define FSM_SAMPLING_PART_BYTES 16  // SSE2 (x86-64's baseline) or NEON
#endif
constexpr int kPartLanes = FSM_SAMPLING_PART_BYTES / 4;  // 32-bit lanes of one register

template <class T> struct Lanes {
  typedef T E;
  static constexpr int kPer = sizeof(T) == 8 ? kPartLanes / 2 : kPartLanes;  // lanes per part
  static constexpr int kN = 16 / kPer;                                          // parts
  typedef T P __attribute__((vector_size(sizeof(T) * kPer)));
  P p[kN];
  FSM_SAMPLING_INLINE T operator[](int l) const { return p[l / kPer][l % kPer]; }
};
typedef Lanes<float> vf;
typedef Lanes<std::int32_t> vi;
typedef Lanes<std::uint32_t> vu;
typedef Lanes<std::uint16_t> vh;
typedef Lanes<double> vd;

#define FSM_SAMPLING_LANES_OP(op)                                                               \
  template <class T> FSM_SAMPLING_INLINE Lanes<T> operator op(Lanes<T> a, Lanes<T> b) {         \
    for (int h = 0; h < Lanes<T>::kN; ++h) a.p[h] = a.p[h] op b.p[h];                          \
    return a;                                                                                    \
  }                                                                                              \
  template <class T> FSM_SAMPLING_INLINE Lanes<T> operator op(Lanes<T> a, typename Lanes<T>::E b) { \
    for (int h = 0; h < Lanes<T>::kN; ++h) a.p[h] = a.p[h] op b;                               \
    return a;                                                                                    \
  }                                                                                              \
  template <class T> FSM_SAMPLING_INLINE Lanes<T> operator op(typename Lanes<T>::E a, Lanes<T> b) { \
    for (int h = 0; h < Lanes<T>::kN; ++h) b.p[h] = a op b.p[h];                               \
    return b;                                                                                    \
  }                                                                                              \
  template <class T> FSM_SAMPLING_INLINE Lanes<T>& operator op##=(Lanes<T>& a, Lanes<T> b) {    \
    return a = a op b;                                                                           \
  }
FSM_SAMPLING_LANES_OP(+)
FSM_SAMPLING_LANES_OP(-)
FSM_SAMPLING_LANES_OP(*)
FSM_SAMPLING_LANES_OP(&)
FSM_SAMPLING_LANES_OP(|)
FSM_SAMPLING_LANES_OP(^)
#undef FSM_SAMPLING_LANES_OP
template <class T> FSM_SAMPLING_INLINE Lanes<T> operator~(Lanes<T> a) {
  for (int h = 0; h < Lanes<T>::kN; ++h) a.p[h] = ~a.p[h];
  return a;
}
template <class T> FSM_SAMPLING_INLINE Lanes<T> operator<<(Lanes<T> a, int s) {
  for (int h = 0; h < Lanes<T>::kN; ++h) a.p[h] = a.p[h] << s;
  return a;
}
template <class T> FSM_SAMPLING_INLINE Lanes<T> operator>>(Lanes<T> a, int s) {
  for (int h = 0; h < Lanes<T>::kN; ++h) a.p[h] = a.p[h] >> s;
  return a;
}

// Lane compares, as masks (all ones where true, else 0); b a vector or a value for every lane.
#define FSM_SAMPLING_LANES_CMP(name, op)                                                          \
  template <class T> FSM_SAMPLING_INLINE vi name(Lanes<T> a, Lanes<T> b) {                       \
    vi r;                                                                                          \
    for (int h = 0; h < vi::kN; ++h) r.p[h] = a.p[h] op b.p[h];                                  \
    return r;                                                                                      \
  }                                                                                                \
  template <class T> FSM_SAMPLING_INLINE vi name(Lanes<T> a, typename Lanes<T>::E b) {           \
    vi r;                                                                                          \
    for (int h = 0; h < vi::kN; ++h) r.p[h] = a.p[h] op b;                                        \
    return r;                                                                                      \
  }
FSM_SAMPLING_LANES_CMP(cmp_ge, >=)
FSM_SAMPLING_LANES_CMP(cmp_gt, >)
FSM_SAMPLING_LANES_CMP(cmp_lt, <)
FSM_SAMPLING_LANES_CMP(cmp_eq, ==)
#undef FSM_SAMPLING_LANES_CMP

// The lanes' bits as another 32-bit type (a cast), and their values converted lane by lane.
template <class To, class T> FSM_SAMPLING_INLINE To as(Lanes<T> v) {
  static_assert(To::kN == Lanes<T>::kN && sizeof(To) == sizeof(v), "same parts");
  To r;
  for (int h = 0; h < To::kN; ++h) r.p[h] = (typename To::P)v.p[h];
  return r;
}
template <class To, class T> FSM_SAMPLING_INLINE To convert(Lanes<T> v) {
  static_assert(To::kN == Lanes<T>::kN, "same parts");
  To r;
  for (int h = 0; h < To::kN; ++h) r.p[h] = __builtin_convertvector(v.p[h], typename To::P);
  return r;
}
FSM_SAMPLING_INLINE vu umax(vu a, vu b) {
  for (int h = 0; h < vu::kN; ++h) a.p[h] = a.p[h] > b.p[h] ? a.p[h] : b.p[h];
  return a;
}

// Loads and stores a register at a time (a copy of the whole struct would go through the
// stack).
template <class L> FSM_SAMPLING_INLINE L load_lanes(const void* src) {
  L v;
  for (int h = 0; h < L::kN; ++h)
    std::memcpy(&v.p[h], static_cast<const char*>(src) + sizeof v.p[h] * h, sizeof v.p[h]);
  return v;
}
template <class L> FSM_SAMPLING_INLINE void store_lanes(void* dst, L v) {
  for (int h = 0; h < L::kN; ++h) std::memcpy(static_cast<char*>(dst) + sizeof v.p[h] * h, &v.p[h], sizeof v.p[h]);
}

template <class S> struct Load;
template <> struct Load<float> {
  static float at(const float* x, std::size_t j) { return x[j]; }
  static FSM_SAMPLING_INLINE vf vec(const float* x, std::size_t j) {
    return load_lanes<vf>(x + j);
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
    const vh h = load_lanes<vh>(x + j);
    return as<vf>(convert<vu>(h) << 16);
  }
};
template <> struct Load<Half> {
  static float at(const Half* x, std::size_t j) { return half_bits_to_float(x[j].bits); }
  static FSM_SAMPLING_INLINE vf vec(const Half* x, std::size_t j) {  // as half_bits_to_float
    const vh h = load_lanes<vh>(x + j);
    const vu u = convert<vu>(h);
    const vu em = u & 0x7FFFu;
    const vu normal = (em << 13) + 0x38000000u;
    const vf sub = convert<vf>(as<vi>(em)) * 5.9604644775390625e-08f;
    const vu is_sub = as<vu>(cmp_lt(em, 0x0400u));
    const vu is_special = as<vu>(cmp_ge(em, 0x7C00u));
    vu b = (normal & ~is_sub) | (as<vu>(sub) & is_sub);
    b = (b & ~is_special) | (((em << 13) | 0x7F800000u) & is_special);
    return as<vf>(b | ((u & 0x8000u) << 16));
  }
};

FSM_SAMPLING_INLINE vu key_vec(vf v) {
  const vu b = as<vu>(v);
  return b ^ (as<vu>(as<vi>(b) >> 31) | 0x80000000u);
}

// a * b + c rounded once, lane by lane: the tier's fused multiply-add (std::fma on the
// scalar tier: an instruction where the target has one, else the C library's, exact too).
FSM_SAMPLING_INLINE vf fmadd(vf a, vf b, vf c) {
  for (int h = 0; h < vf::kN; ++h) {
#if defined(__AVX512F__)
    a.p[h] = (vf::P)_mm512_fmadd_ps((__m512)a.p[h], (__m512)b.p[h], (__m512)c.p[h]);
#elif defined(__AVX2__) && defined(__FMA__)
    a.p[h] = (vf::P)_mm256_fmadd_ps((__m256)a.p[h], (__m256)b.p[h], (__m256)c.p[h]);
#elif defined(__aarch64__)
    a.p[h] = (vf::P)vfmaq_f32((float32x4_t)c.p[h], (float32x4_t)a.p[h], (float32x4_t)b.p[h]);
#else
    for (int l = 0; l < vf::kPer; ++l) a.p[h][l] = std::fma(a.p[h][l], b.p[h][l], c.p[h][l]);
#endif
  }
  return a;
}
FSM_SAMPLING_INLINE vf splat(float v) { return vf{} + v; }

// exp_nonpositive (sampling_kernels.h), operation by operation.
FSM_SAMPLING_INLINE vf exp_vec(vf y) {
  const vi keep = cmp_ge(y, kExpLowest);
  const vi lo = as<vi>(splat(kExpLowest));
  const vf yc = as<vf>((as<vi>(y) & keep) | (lo & ~keep));
  vf t;
  const vf q = exp_reduced(yc, [](vf a, vf b, vf c) { return fmadd(a, b, c); }, &t);
  const vu bits = (as<vu>(t) - kRoundMagicBits + 127u) << 23;  // 2^n
  const vf e = q * as<vf>(bits);
  return as<vf>(as<vi>(e) & keep);
}

FSM_SAMPLING_INLINE vf select(vi m, vf v) { return as<vf>(as<vi>(v) & m); }

// acc + (v >= thr ? v : 0), lane by lane (acc + 0 is acc: acc is never -0 here). One masked
// add where the tier has mask registers.
FSM_SAMPLING_INLINE vf add_if_ge(vf acc, vf v, float thr) {
#if defined(__AVX512F__)
  const __m512 va = (__m512)acc.p[0], vv = (__m512)v.p[0];
  const __mmask16 k = _mm512_cmp_ps_mask(vv, _mm512_set1_ps(thr), _CMP_GE_OQ);
  acc.p[0] = (vf::P)_mm512_mask_add_ps(va, k, va, vv);
  return acc;
#else
  return acc + select(cmp_ge(v, thr), v);
#endif
}

// Horizontal reductions of integer lanes (any order gives the same result): the parts
// combined, then a tree of shuffles within a register (no trip through memory: a store read
// back in pieces stalls store-to-load forwarding).
FSM_SAMPLING_INLINE vu::P swap_lanes(vu::P x, int step) {
#if FSM_SAMPLING_PART_BYTES == 64
  switch (step) {
    case 8: return __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    case 4: return __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    case 2: return __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    default: return __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  }
#elif FSM_SAMPLING_PART_BYTES == 32
  switch (step) {
    case 4: return __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3);
    case 2: return __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5);
    default: return __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6);
  }
#else
  switch (step) {
    case 2: return __builtin_shufflevector(x, x, 2, 3, 0, 1);
    default: return __builtin_shufflevector(x, x, 1, 0, 3, 2);
  }
#endif
}
FSM_SAMPLING_INLINE std::uint32_t reduce_or(vu v) {
  vu::P x = v.p[0];
  for (int h = 1; h < vu::kN; ++h) x = x | v.p[h];
  for (int step = kPartLanes / 2; step >= 1; step /= 2) x = x | swap_lanes(x, step);
  return x[0];
}
FSM_SAMPLING_INLINE std::uint32_t reduce_max(vu v) {
  vu::P x = v.p[0];
  for (int h = 1; h < vu::kN; ++h) x = x > v.p[h] ? x : v.p[h];
  for (int step = kPartLanes / 2; step >= 1; step /= 2) {
    const vu::P y = swap_lanes(x, step);
    x = x > y ? x : y;
  }
  return x[0];
}
FSM_SAMPLING_INLINE std::uint32_t reduce_add(vu v) {
  vu::P x = v.p[0];
  for (int h = 1; h < vu::kN; ++h) x = x + v.p[h];
  for (int step = kPartLanes / 2; step >= 1; step /= 2) x = x + swap_lanes(x, step);
  return x[0];
}

// The 16 lanes of a compare result as bits (lane l -> bit l): one mask move where the tier
// has one (per register), else a tree of shuffles.
FSM_SAMPLING_INLINE std::uint32_t lane_bits(vi m) {
#if defined(__AVX512F__)
  const __m512i v = (__m512i)m.p[0];
  return std::uint32_t(_mm512_test_epi32_mask(v, v));  // m is 0 or all ones per lane
#elif defined(__AVX2__)
  return std::uint32_t(_mm256_movemask_ps((__m256)m.p[0])) | (std::uint32_t(_mm256_movemask_ps((__m256)m.p[1])) << 8);
#elif defined(__SSE2__)
  std::uint32_t bits = 0;
  for (int h = 0; h < vi::kN; ++h) bits |= std::uint32_t(_mm_movemask_ps((__m128)m.p[h])) << (4 * h);
  return bits;
#else
  vu bit;
  for (int l = 0; l < 16; ++l) bit.p[l / vu::kPer][l % vu::kPer] = 1u << l;
  return reduce_or(as<vu>(m) & bit);
#endif
}

// Stores the lanes of w and k whose bit is set in bits (lane l -> bit l), in lane order, at
// wl + m and kl + m, and returns m plus their count; writes up to 16 lanes past m. Where
// the tier can compress (FSM_SAMPLING_COMPRESS): AVX-512's compress; AVX2 permutes each
// register's selected lanes to its front (vpermd, indices from kPack) and stores all 8.
#if defined(__AVX512F__)
#define FSM_SAMPLING_COMPRESS 1
FSM_SAMPLING_INLINE std::size_t compress_store(vf w, vu k, std::uint32_t bits, float* wl, std::uint32_t* kl,
                                               std::size_t m) {
  // Compressed into the front of a vector and all of it stored, without a branch: the next
  // store overwrites the unused lanes.
  _mm512_storeu_ps(wl + m, _mm512_maskz_compress_ps(__mmask16(bits), (__m512)w.p[0]));
  _mm512_storeu_si512(kl + m, _mm512_maskz_compress_epi32(__mmask16(bits), (__m512i)k.p[0]));
  return m + std::size_t(__builtin_popcount(bits));
}
#elif defined(__AVX2__)
#define FSM_SAMPLING_COMPRESS 1
// kPack.v[b]: the positions of the set bits of the 8-bit b, in order, 4 bits each from the
// lowest.
struct PackTable {
  std::uint32_t v[256];
  constexpr PackTable() : v() {
    for (unsigned b = 0; b < 256; ++b) {
      unsigned o = 0;
      for (unsigned l = 0; l < 8; ++l)
        if (b >> l & 1u) v[b] |= l << (4 * o++);
    }
  }
};
constexpr PackTable kPack{};
FSM_SAMPLING_INLINE std::size_t compress_store(vf w, vu k, std::uint32_t bits, float* wl, std::uint32_t* kl,
                                               std::size_t m) {
  for (int h = 0; h < 2; ++h) {
    const std::uint32_t b = (bits >> (8 * h)) & 0xFFu;
    const __m256i idx = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_set1_epi32(int(kPack.v[b])), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
        _mm256_set1_epi32(7));
    _mm256_storeu_ps(wl + m, _mm256_permutevar8x32_ps((__m256)w.p[h], idx));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(kl + m), _mm256_permutevar8x32_epi32((__m256i)k.p[h], idx));
    m += std::size_t(__builtin_popcount(b));
  }
  return m;
}
#endif

FSM_SAMPLING_INLINE double tree16v(vd d) {
  double a[16];
  store_lanes(a, d);
  return tree16(a);
}
// Float lanes to float64: each float register's halves into two float64 registers.
FSM_SAMPLING_INLINE vd widen(vf a) {
  vd d;
  for (int h = 0; h < vf::kN; ++h) {
#if defined(__AVX2__) && !defined(__AVX512F__)
    const __m256 x = (__m256)a.p[h];  // GCC's own conversion of the halves goes through the stack
    d.p[2 * h] = (vd::P)_mm256_cvtps_pd(_mm256_castps256_ps128(x));
    d.p[2 * h + 1] = (vd::P)_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
#else
    typedef float Half_ __attribute__((vector_size(FSM_SAMPLING_PART_BYTES / 2)));
    Half_ lo, hi;
    std::memcpy(&lo, &a.p[h], sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&a.p[h]) + sizeof lo, sizeof hi);
    d.p[2 * h] = __builtin_convertvector(lo, vd::P);
    d.p[2 * h + 1] = __builtin_convertvector(hi, vd::P);
#endif
  }
  return d;
}

inline float y_of(float x, float mx, float inv_t) { return (x - mx) * inv_t; }

// All ones in the lanes l < count, else 0 (count may be negative or above 16).
FSM_SAMPLING_INLINE vi lanes_below(int count) {
  vi iota;
  for (int l = 0; l < 16; ++l) iota.p[l / vi::kPer][l % vi::kPer] = l;
  return cmp_lt(iota, count);
}

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
  FSM_SAMPLING_INLINE vi valid(std::size_t g) const { return lanes_below(int(len) - int(g)); }
  FSM_SAMPLING_INLINE vf xv(std::size_t g) const { return Load<S>::vec(x, g); }
  FSM_SAMPLING_INLINE vf wv(std::size_t g) const {
    return load_lanes<vf>(w + g);
  }
};

}  // namespace
}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
