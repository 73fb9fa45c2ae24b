// The hot passes of sample() (sampling_kernels.h), written once as plain loops over fixed
// lane arrays that the compiler vectorizes with the including file's ISA flags. Included by
// csrc/kernels/<tier>/sampling_<tier>.cpp after defining FASTSOFTMAX_TIER; everything here
// lives in that tier's namespace.
//
// Same bits on every tier: no FP reassociation is allowed (no fast-math), so every sum
// below is evaluated exactly in the order written: kLanes float lanes, lane l of a block
// holding elements l, l + 16, ..., l + 112 in that order; each block's lanes are widened to
// double and added to kLanes double lanes (sums over a row), or reduced by tree16 (a block's
// own sum, in the walk).
#pragma once
#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER before including sampling_body.h"
#endif
#include <cstddef>
#include <cstdint>
#include <cstring>

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

// exp_nonpositive (sampling_kernels.h), operation by operation.
FSM_SAMPLING_INLINE vf exp_vec(vf y) {
  const vi keep = y >= -87.33654f;
  const vi lo = (vi)(vf{} + -87.33654f);
  const vf yc = (vf)(((vi)y & keep) | (lo & ~keep));
  const vf n = (yc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  vf r = yc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf q = vf{} + 1.9875691500E-4f;
  q = q * r + 1.3981999507E-3f;
  q = q * r + 8.3334519073E-3f;
  q = q * r + 4.1665795894E-2f;
  q = q * r + 1.6666665459E-1f;
  q = q * r + 5.0000001201E-1f;
  q = q * (r * r) + r + 1.0f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  const vf e = q * (vf)bits;
  return (vf)((vi)e & keep);
}

FSM_SAMPLING_INLINE vf select(vi m, vf v) { return (vf)((vi)v & m); }

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

// The 16 lanes of a compare result as bits (lane l -> bit l).
FSM_SAMPLING_INLINE std::uint32_t lane_bits(vi m) {
  const vu bit = {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u, 512u, 1024u, 2048u, 4096u, 8192u, 16384u, 32768u};
  return reduce_or((vu)m & bit);
}

inline double tree16(const double* d) {
  return (((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]))) +
         (((d[8] + d[9]) + (d[10] + d[11])) + ((d[12] + d[13]) + (d[14] + d[15])));
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

template <class S>
void stats(const void* xv, std::size_t n, std::uint32_t* bmax, std::uint32_t* max_key, int* bad) {
  const S* x = static_cast<const S*>(xv);
  vf badv = vf{};
  std::uint32_t best = 0;
  std::size_t b = 0, j = 0;
  for (; j + kMaxBlock <= n; j += kMaxBlock, ++b) {
    vu m = vu{};
    for (std::size_t g = 0; g < kMaxBlock; g += kLanes) {
      const vf v = Load<S>::vec(x, j + g);
      const vu k = key_vec(v);
      m = m > k ? m : k;
      badv += v - v;
    }
    const std::uint32_t bm = reduce_max(m);
    bmax[b] = bm;
    best = bm > best ? bm : best;
  }
  float bs = 0.0f;
  if (j < n) {
    std::uint32_t bm = 0;
    for (std::size_t q = j; q < n; ++q) {
      const float v = Load<S>::at(x, q);
      const std::uint32_t k = float_key(v);
      bm = k > bm ? k : bm;
      bs += v - v;
    }
    bmax[b] = bm;
    best = bm > best ? bm : best;
  }
  for (int l = 0; l < 16; ++l) bs += badv[l];
  *bad = bs != 0.0f || bs != bs;
  *max_key = best;
}

// The bucket of a weight in (0, 1]: 8 per octave, larger weights first (weight_code in
// sampling_kernels.h, lane by lane).
FSM_SAMPLING_INLINE vu code_vec(vf e) {
  const vu b = (vu)e;
  return ((127u - (b >> 23)) << 3) | (7u - ((b >> 20) & 7u));
}

template <class S>
void weights(const void* xv, std::size_t n, float mx, float inv_t, float lmp, int do_m, float* w, double* z,
             double* zm) {
  const S* x = static_cast<const S*>(xv);
  vd dz = vd{}, dm = vd{};
  Block<S> blk;
  float wtail[kBlock];
  for (std::size_t j = 0; j < n; j += kBlock) {
    blk.set(x, nullptr, j, n);
    const bool full = blk.len == kBlock;
    float* wb = full ? w + j : wtail;
    vf a = vf{}, am = vf{};
    for (std::size_t g = 0; g < kBlock; g += kLanes) {
      const vf y = (blk.xv(g) - mx) * inv_t;
      vf e = exp_vec(y);
      if (!full) e = select(blk.valid(g), e);
      std::memcpy(wb + g, &e, sizeof e);
      a += e;
      if (do_m) am += select(y >= lmp, e);
    }
    if (!full) std::memcpy(w + j, wtail, blk.len * sizeof(float));
    dz += widen(a);
    dm += widen(am);
  }
  *z = tree16v(dz);
  *zm = do_m ? tree16v(dm) : 0.0;
}

// For each of the kThresholds thresholds, the float64 weight of {w_i >= thr[t]} (lane sums).
void mass_above(const float* w, std::size_t n, const float* thr, double* mass) {
  constexpr int T = sampling::kThresholds;
  vd dm[T];
  for (int t = 0; t < T; ++t) dm[t] = vd{};
  Block<float> blk;
  for (std::size_t j = 0; j < n; j += kBlock) {
    blk.set(w, w, j, n);  // padded weights are 0: below every threshold (thresholds > 0)
    vf a[T];
    for (int t = 0; t < T; ++t) a[t] = vf{};
    for (std::size_t g = 0; g < kBlock; g += kLanes) {
      const vf v = blk.wv(g);
      for (int t = 0; t < T; ++t) a[t] += select(v >= thr[t], v);
    }
    for (int t = 0; t < T; ++t) dm[t] += widen(a[t]);
  }
  for (int t = 0; t < T; ++t) mass[t] = tree16v(dm[t]);
}

// mass[c] = the float64 weight of the tokens with lo <= w_i < hi and code c (c <=
// weight_code(lo); lo > 0, or lo = 0: every code); their indices, in order, go to list. Lane l of the 16 lanes sums the tokens
// i = l mod 16 in index order in its own table (runs of one code do not chain through one
// memory slot), the tables added in a fixed tree. Vectors of 16 weights none of which is in
// [lo, hi) are skipped after one compare.
void code_mass(const float* w, std::size_t n, float lo, float hi, double* mass, std::size_t* list,
               std::size_t* listed) {
  std::size_t m = 0;
  const std::size_t C = lo > 0.0f ? std::size_t(weight_code(lo)) + 1 : sampling::kCodes;
  double* t = mass;  // 16 * kCodes doubles of scratch, lane l's table at t + l * C
  for (std::size_t i = 0; i < 16 * C; ++i) t[i] = 0.0;
  for (std::size_t j = 0; j < n; j += kBlock) {
    const std::size_t len = n - j < kBlock ? n - j : kBlock;
    const float* wb = w + j;
    if (len == kBlock) {
      for (std::size_t g = 0; g < kBlock; g += kLanes) {
        vf v;
        std::memcpy(&v, wb + g, sizeof v);
        std::uint32_t bits = lane_bits((v >= lo) & (v < hi));
        if (!bits) continue;
        const vu c = code_vec(v);
        float vw[kLanes];
        std::uint32_t vc[kLanes];
        std::memcpy(vw, &v, sizeof vw);
        std::memcpy(vc, &c, sizeof vc);
        while (bits) {
          const unsigned l = unsigned(__builtin_ctz(bits));
          bits &= bits - 1;
          t[l * C + vc[l]] += double(vw[l]);
          list[m++] = j + g + l;
        }
      }
    } else {
      for (std::size_t q = 0; q < len; ++q)
        if (wb[q] >= lo && wb[q] < hi) {
          t[(q % 16) * C + weight_code(wb[q])] += double(wb[q]);
          list[m++] = j + q;
        }
    }
  }
  *listed = m;
  for (std::size_t c = 0; c < C; ++c) {
    double d[16];
    for (std::size_t l = 0; l < 16; ++l) d[l] = t[l * C + c];
    mass[c] = tree16(d);  // reads row c of every table before writing slot c (= t[c], lane 0's)
  }
  for (std::size_t c = C; c < sampling::kCodes; ++c) mass[c] = 0.0;
}

template <class S>
std::size_t gather_ge(const void* xv, std::size_t n, const std::uint32_t* bmax, std::uint32_t t, std::uint32_t* keys,
                      std::size_t* idx) {
  const S* x = static_cast<const S*>(xv);
  std::size_t out = 0;
  for (std::size_t j = 0, b = 0; j < n; j += kMaxBlock, ++b) {
    if (bmax[b] < t) continue;
    const std::size_t end = n - j < kMaxBlock ? n : j + kMaxBlock;
    for (std::size_t q = j; q < end; ++q) {
      const std::uint32_t k = float_key(Load<S>::at(x, q));
      if (k >= t) {
        keys[out] = k;
        idx[out] = q;
        ++out;
      }
    }
  }
  return out;
}

// One block's kept weight (tree16 of its float lanes) and, in kPrefix mode, its count of
// tokens with key == t.
template <class S>
double block_kept(const S* x, const float* w, std::size_t j, std::size_t n, const sampling::WalkSpec& s,
                  std::uint64_t* ties) {
  Block<S> blk;
  blk.set(x, w, j, n);
  const bool full = blk.len == kBlock;
  vf a = vf{};
  vi c = vi{};
  for (std::size_t g = 0; g < kBlock; g += kLanes) {
    const vf v = blk.wv(g);  // padded lanes hold 0
    if (s.mode == sampling::kAll) {
      a += v;
    } else if (s.mode == sampling::kPrefix) {
      const vu k = key_vec(blk.xv(g));
      a += select((vi)(k >= s.t), v);
      vi eq = (vi)(k == s.t);
      if (!full) eq &= blk.valid(g);
      c -= eq;
    } else {
      a += select(((blk.xv(g) - s.mx) * s.inv_t) >= s.lmp, v);
    }
  }
  *ties = reduce_add((vu)c);
  return tree16v(widen(a));
}

template <class S>
std::int64_t walk(const void* xv, const float* w, std::size_t n, const sampling::WalkSpec& s) {
  const S* x = static_cast<const S*>(xv);
  double cum = 0;
  std::int64_t last = -1;
  std::uint64_t ties = 0;
  for (std::size_t j = 0; j < n; j += kBlock) {
    const std::size_t len = n - j < kBlock ? n - j : kBlock;
    std::uint64_t bt = 0;
    const double bm = block_kept(x, w, j, n, s, &bt);
    if (bm == 0) {
      ties += bt;
      continue;
    }
    const bool all_ties_kept = s.mode != sampling::kPrefix || ties + bt <= s.r;
    if (all_ties_kept && cum + bm <= s.target) {  // the draw lies past this block
      cum += bm;
      ties += bt;
      for (std::size_t q = j + len; q-- > j;) {  // its last kept token with a positive weight
        if (!(w[q] > 0.0f)) continue;
        if (s.mode == sampling::kPrefix && float_key(Load<S>::at(x, q)) < s.t) continue;
        if (s.mode == sampling::kMinP && !(y_of(Load<S>::at(x, q), s.mx, s.inv_t) >= s.lmp)) continue;
        last = std::int64_t(q);
        break;
      }
      continue;
    }
    for (std::size_t q = j; q < j + len; ++q) {  // the token by token walk of the block
      if (s.mode == sampling::kPrefix) {
        const std::uint32_t k = float_key(Load<S>::at(x, q));
        if (k < s.t) continue;
        if (k == s.t && ties++ >= s.r) continue;
      } else if (s.mode == sampling::kMinP) {
        if (!(y_of(Load<S>::at(x, q), s.mx, s.inv_t) >= s.lmp)) continue;
      }
      if (!(w[q] > 0.0f)) continue;
      cum += double(w[q]);
      last = std::int64_t(q);
      if (cum > s.target) return last;
    }
  }
  return last;
}

template <class S> const sampling::Kernels kernels_of = {
    &stats<S>, &weights<S>, &mass_above, &code_mass, &gather_ge<S>, &walk<S>,
};

}  // namespace

const sampling::Kernels* sampling_kernels(int storage) {
  switch (storage) {
    case sampling::kF32: return &kernels_of<float>;
    case sampling::kF16: return &kernels_of<Half>;
    case sampling::kBF16: return &kernels_of<BFloat16>;
    default: return nullptr;
  }
}

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
