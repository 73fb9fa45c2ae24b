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

#include "kernels/sampling_kernels.h"
#include "kernels/sampling_vec.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {
namespace {  // sampling_vec.h's namespace: its names (and its using-declarations) hold here

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
      m = umax(m, k);
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
  const vu b = as<vu>(e);
  return ((127u - (b >> 23)) << 3) | (7u - ((b >> 20) & 7u));
}

template <class S>
void weights(const void* xv, std::size_t n, float mx, float inv_t, float lmp, int do_m, float* w, double* z,
             double* zm, float* bsum, float* bsum_m) {
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
      store_lanes(wb + g, e);
      a += e;
      if (do_m) am += select(cmp_ge(y, lmp), e);
    }
    if (!full) std::memcpy(w + j, wtail, blk.len * sizeof(float));
    dz += widen(a);
    dm += widen(am);
    store_lanes(bsum + j / kBlock * kLanes, a);
    if (do_m) store_lanes(bsum_m + j / kBlock * kLanes, am);
  }
  *z = tree16v(dz);
  *zm = do_m ? tree16v(dm) : 0.0;
}

void exps(float* y, std::size_t n) {
  std::size_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    store_lanes(y + j, exp_vec(load_lanes<vf>(y + j)));
  }
  if (j < n) {  // the tail through a padded vector, so that it takes the same operations
    vf v = vf{};
    std::memcpy(&v, y + j, (n - j) * sizeof(float));
    v = exp_vec(v);
    std::memcpy(y + j, &v, (n - j) * sizeof(float));
  }
}

// For each of the T thresholds, the float64 weight of {w_i >= thr[t]} (lane sums).
template <int T>
void mass_above_of(const float* w, std::size_t n, const float* thr, double* mass) {
  vd dm[T];
  for (int t = 0; t < T; ++t) dm[t] = vd{};
  Block<float> blk;
  for (std::size_t j = 0; j < n; j += kBlock) {
    blk.set(w, w, j, n);  // padded weights are 0: below every threshold (thresholds > 0)
    vf a[T];
    for (int t = 0; t < T; ++t) a[t] = vf{};
    for (std::size_t g = 0; g < kBlock; g += kLanes) {
      const vf v = blk.wv(g);
      for (int t = 0; t < T; ++t) a[t] = add_if_ge(a[t], v, thr[t]);
    }
    for (int t = 0; t < T; ++t) dm[t] += widen(a[t]);
  }
  for (int t = 0; t < T; ++t) mass[t] = tree16v(dm[t]);
}

void mass_above(const float* w, std::size_t n, int nt, const float* thr, double* mass) {
  if (nt == sampling::kRowThresholds) mass_above_of<sampling::kRowThresholds>(w, n, thr, mass);
  else mass_above_of<sampling::kThresholds>(w, n, thr, mass);
}

// The tokens with lo <= w_i < hi, in index order: their weights (wl) and keys (kl), each
// with room for n + 16; the float64 weight of the tokens with w_i >= hi (*above), in the lane
// structure of every sum (lanes widened every kBlock); each block's share of it (blk_above:
// the tree16 of the block's lanes) and the count listed up to the block's end (blk_end).
template <class S>
std::size_t list_range(const void* xv, const float* w, std::size_t n, float lo, float hi, float* wl,
                       std::uint32_t* kl, double* above, double* blk_above, std::size_t* blk_end) {
  const S* x = static_cast<const S*>(xv);
  std::size_t m = 0;
  vd d_above = vd{};
  Block<S> blk;
  for (std::size_t j = 0, b = 0; j < n; j += kBlock, ++b) {
    blk.set(x, w, j, n);  // padded weights are 0: below hi (> 0), and masked out of the list
    const bool full = blk.len == kBlock;
    vf a = vf{};
    for (std::size_t g = 0; g < kBlock; g += kLanes) {
      const vf v = blk.wv(g);
      vi in = cmp_ge(v, lo) & cmp_lt(v, hi);
      if (!full) in &= blk.valid(g);
      a = add_if_ge(a, v, hi);
      std::uint32_t bits = lane_bits(in);
#if !defined(__AVX512F__)
      if (!bits) continue;
#endif
#if defined(FSM_SAMPLING_COMPRESS)
      m = compress_store(v, key_vec(blk.xv(g)), bits, wl, kl, m);
#else
      const vu k = key_vec(blk.xv(g));
      while (bits) {
        const unsigned l = unsigned(__builtin_ctz(bits));
        bits &= bits - 1;
        wl[m] = v[l];
        kl[m++] = k[l];
      }
#endif
    }
    const vd da = widen(a);
    d_above += da;
    blk_above[b] = tree16v(da);
    blk_end[b] = m;
  }
  *above = tree16v(d_above);
  return m;
}

// The (wl, kl) pairs whose weight has code c, in order, into (wo, ko) (room for m + 16);
// returns their count.
std::size_t keep_code(const float* wl, const std::uint32_t* kl, std::size_t m, std::uint32_t c, float* wo,
                      std::uint32_t* ko) {
  std::size_t nc = 0, i = 0;
#if defined(FSM_SAMPLING_COMPRESS)
  for (; i + kLanes <= m; i += kLanes) {
    const vf v = load_lanes<vf>(wl + i);
    const vu k = load_lanes<vu>(kl + i);
    nc = compress_store(v, k, lane_bits(cmp_eq(code_vec(v), c)), wo, ko, nc);
  }
#endif
  for (; i < m; ++i) {
    ko[nc] = kl[i];
    wo[nc] = wl[i];
    nc += weight_code(wl[i]) == c ? 1 : 0;
  }
  return nc;
}

void listed_above(const float* wl, const std::uint32_t* kl, const std::size_t* ends, std::size_t from,
                  std::size_t nb, std::uint32_t t, double* gt, std::uint32_t* eq) {
  for (std::size_t b = 0; b < nb; ++b) {
    const std::size_t to = ends[b];
    vf a = vf{};
    vi c = vi{};
    for (std::size_t i = from; i < to; i += kLanes) {  // the last vector reads up to 15 pairs past
      const vu k = load_lanes<vu>(kl + i);
      const vi valid = lanes_below(int(to - i < kLanes ? to - i : kLanes));
      a += select(cmp_gt(k, t) & valid, load_lanes<vf>(wl + i));
      c -= cmp_eq(k, t) & valid;
    }
    gt[b] = tree16v(widen(a));
    eq[b] = reduce_add(as<vu>(c));
    from = to;
  }
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

// Is token q kept (kAll / kMinP; the prefix walk checks keys itself)?
template <class S>
FSM_SAMPLING_INLINE bool kept_by_mode(const S* x, std::size_t q, const sampling::WalkSpec& s) {
  return s.mode != sampling::kMinP || y_of(Load<S>::at(x, q), s.mx, s.inv_t) >= s.lmp;
}

// kAll / kMinP: the weights pass left each block's kept weight as float lanes in bsum (their
// sum: tree16 of the lanes widened), so blocks that leave the running sum at or below the
// target are skipped without reading them; the block holding the target is walked token by
// token.
template <class S>
std::int64_t walk_blocks(const S* x, const float* w, std::size_t n, const sampling::WalkSpec& s,
                         const float* bsum) {
  double cum = 0;
  std::size_t last_block = 0;
  for (std::size_t j = 0; j < n; j += kBlock) {
    const double bm = tree16v(widen(load_lanes<vf>(bsum + j / kBlock * kLanes)));
    if (bm == 0) continue;
    last_block = j;
    if (cum + bm <= s.target) {  // the draw lies past this block
      cum += bm;
      continue;
    }
    const std::size_t end = n - j < kBlock ? n : j + kBlock;
    for (std::size_t q = j; q < end; ++q) {
      if (!(w[q] > 0.0f) || !kept_by_mode(x, q, s)) continue;
      cum += double(w[q]);
      if (cum > s.target) return std::int64_t(q);
    }
  }
  // Rounding left the walk short: the last kept token with a positive weight.
  const std::size_t end = n - last_block < kBlock ? n : last_block + kBlock;
  for (std::size_t q = end; q-- > last_block;)
    if (w[q] > 0.0f && kept_by_mode(x, q, s)) return std::int64_t(q);
  return -1;
}

// The walk of kAll and kMinP (docs/sampling.md, step 7).
template <class S>
std::int64_t walk(const void* xv, const float* w, std::size_t n, const sampling::WalkSpec& s, const float* bsum) {
  return walk_blocks(static_cast<const S*>(xv), w, n, s, bsum);
}

template <class S> const sampling::Kernels kernels_of = {
    &stats<S>, &weights<S>, &exps, &mass_above, &list_range<S>, &keep_code, &listed_above, &gather_ge<S>, &walk<S>,
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
