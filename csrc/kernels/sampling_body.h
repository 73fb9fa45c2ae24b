// The hot passes of sample() (sampling_kernels.h), written once as plain loops over fixed
// lane arrays that the compiler vectorizes with the including file's ISA flags. Included by
// csrc/kernels/<tier>/sampling_<tier>.cpp after defining FASTSOFTMAX_TIER; everything here
// lives in that tier's namespace. The vector helpers they use: sampling_vec.h.
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
#include "kernels/sampling_vec.h"  // the vector types, loads, exp, reductions, Block

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {
namespace {

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
