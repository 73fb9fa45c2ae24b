// Sampling without sorting: see sampling.h and docs/sampling.md.
//
// float32, float16 and bfloat16 rows (computed in float32) run the tier's vector passes
// (csrc/kernels/sampling_body.h, dispatched like the softmax kernels); one thread per row,
// and every decision is taken on values that do not depend on the tier, so the tokens
// never depend on the tier, the thread count or the batch split. Per row:
//   1. read x (stats): the max, the per-64-block max keys, a NaN/inf flag;
//   top-k on (k < V): the k-th largest block maximum bounds the k-th largest logit from
//     below, so only the blocks whose maximum reaches it are read again (gather_ge); the
//     few candidates are ranked exactly (key descending, index ascending), and top-p,
//     min-p and the draw run over the kept top-k tokens alone;
//   otherwise:
//   2. read x, write w (weights): w_i = exp(y_i), their sum Z, the min-p set's sum, and
//     each block's sums as float lanes;
//   3. top-p on a peaked row: when the heaviest block maxima alone reach the target, the
//     tokens of the few blocks they lie in are ranked as for top-k (top_p_peaked); else
//     weight codes (8 buckets per octave of w, each a range of the ranking): one
//     vector pass weighs 4 code ranges (mass_above); the range holding the crossing is
//     listed (list_range: weights and keys, and each block's weight above the range) and
//     narrowed by an 8-code weighing over the list to the code holding the crossing token,
//     whose keys finish a radix select (8 bits a level) over those few candidates;
//   4. the draw: without top-p, the block sums of step 2 up to the block holding
//     u * Z_kept, walked alone (walk); with top-p, each block's kept weight comes from step
//     3's block sums and list (walk_listed), and only the block holding u * Z_kept is read.
// float64 rows take the portable path (RowSampler below): the same semantics, with a
// 2048-bucket histogram instead of the threshold passes.
#include "sampling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "dispatch/registry.h"
#include "kernels/half.h"
#include "kernels/sampling_kernels.h"
#include "threadpool.h"

namespace fastsoftmax {

void philox4x32_10(const std::uint32_t counter[4], const std::uint32_t key[2], std::uint32_t out[4]) {
  std::uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0;
    const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c2;
    const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n1 = std::uint32_t(p1);
    const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
    const std::uint32_t n3 = std::uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

double philox_uniform(std::uint64_t seed, std::uint64_t counter) {
  const std::uint32_t c[4] = {std::uint32_t(counter), std::uint32_t(counter >> 32), 0, 0};
  const std::uint32_t k[2] = {std::uint32_t(seed), std::uint32_t(seed >> 32)};
  std::uint32_t o[4];
  philox4x32_10(c, k, o);
  const std::uint64_t a = o[0] >> 5, b = o[1] >> 6;
  return double(a * 67108864u + b) * (1.0 / 9007199254740992.0);
}

namespace {

// How many of `ties` tokens that weigh wt each, taken after cum_mass, first bring the mass
// to target (all of them when they weigh nothing).
std::uint64_t ties_to_reach(double target, double cum_mass, double wt, std::uint64_t ties) {
  if (!(wt > 0)) return ties;
  const double rr = std::ceil((target - cum_mass) / wt);
  std::uint64_t r = rr < 1 ? 1 : (rr > double(ties) ? ties : std::uint64_t(rr));
  while (r > 1 && cum_mass + double(r - 1) * wt >= target) --r;
  while (r < ties && cum_mass + double(r) * wt < target) ++r;
  return r;
}

// Order-preserving unsigned keys of the logits' bits (-0 sorts just below +0).
template <typename T> struct Keys;
template <> struct Keys<float> {
  using K = std::uint32_t;
  static constexpr int kLevels = 3;
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr int kBits[3] = {11, 11, 10};
  static K key(float v) {
    K b; std::memcpy(&b, &v, 4);
    return b ^ (K(std::int32_t(b) >> 31) | 0x80000000u);
  }
  static float value(K k) {
    const K b = (k & 0x80000000u) ? (k ^ 0x80000000u) : ~k;
    float v; std::memcpy(&v, &b, 4); return v;
  }
};
template <> struct Keys<double> {
  using K = std::uint64_t;
  static constexpr int kLevels = 6;
  static constexpr int kShift[6] = {53, 42, 31, 20, 9, 0};
  static constexpr int kBits[6] = {11, 11, 11, 11, 11, 9};
  static K key(double v) {
    K b; std::memcpy(&b, &v, 8);
    return b ^ (K(std::int64_t(b) >> 63) | 0x8000000000000000ull);
  }
  static double value(K k) {
    const K b = (k & 0x8000000000000000ull) ? (k ^ 0x8000000000000000ull) : ~k;
    double v; std::memcpy(&v, &b, 8); return v;
  }
};
constexpr int kBuckets = 2048;

// sum_i f(i) of non-negative floats in float64, 64 at a time: eight float lanes of eight
// terms each (relative error <= 8 ulp of float per block), then the lanes in double. The
// float lanes vectorize; the order is fixed, so the sum is too.
template <typename F> double block_sum(std::size_t b0, std::size_t b1, F f) {
  double total = 0;
  std::size_t j = b0;
  for (; j + 64 <= b1; j += 64) {
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int g = 0; g < 8; ++g)
      for (int l = 0; l < 8; ++l) a[l] += f(j + std::size_t(8 * g + l));
    total += ((double(a[0]) + double(a[1])) + (double(a[2]) + double(a[3]))) +
             ((double(a[4]) + double(a[5])) + (double(a[6]) + double(a[7])));
  }
  for (; j < b1; ++j) total += double(f(j));
  return total;
}

template <typename T> inline float scaled(T x, T mx, T inv_t) { return float((x - mx) * inv_t); }

// The row's maximum (NaN ignored) and sum of (v - v) (NaN iff a NaN or an infinity).
inline void max_and_check(const double* x, std::size_t n, double* mx, double* badsum) {
  double m = -INFINITY, bad = 0;
  for (std::size_t i = 0; i < n; ++i) { m = x[i] > m ? x[i] : m; bad += x[i] - x[i]; }
  *mx = m;
  *badsum = bad;
}

struct Workspace {
  std::vector<float> w;
  std::vector<std::uint32_t> cnt;
  std::vector<double> mass;
  std::vector<std::uint64_t> cand, cand2;  // keys of the candidates
};
Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

// A prefix of the order (key descending, index ascending): every token with key > t, and
// the first r (in index order) of those with key == t.
template <typename K> struct Prefix {
  K t = 0;
  std::uint64_t r = 0;
  double mass = 0;     // float64 mass of the prefix
  float wt = 0;        // the weight of the tokens with key t
};
template <typename K> bool shorter(const Prefix<K>& a, const Prefix<K>& b) {
  return a.t > b.t || (a.t == b.t && a.r < b.r);
}

const sampling::Kernels* tier_kernels(int storage);

template <typename T> class RowSampler {
 public:
  using KS = Keys<T>;
  using K = typename KS::K;

  RowSampler(const T* x, std::size_t n, Workspace& ws) : x_(x), n_(n), ws_(ws) {}

  // Long: one row's numbered steps (1-4) share a dozen locals (flags, sums, the prefix); split, each would take them all.
  int run(double temperature, std::int64_t top_k, double top_p, double min_p, double u,
          std::int64_t* token, double* logprob) {
    // 1. max, NaN, +inf. (v - v) is NaN exactly for NaN and +-inf: one sum finds them.
    T mx, badsum;
    max_and_check(x_, n_, &mx, &badsum);
    bool any_nan = false;
    if (badsum != badsum) {  // NaN or an infinity somewhere: look closer
      mx = -std::numeric_limits<T>::infinity();
      for (std::size_t q = 0; q < n_; ++q) {
        any_nan = any_nan || (x_[q] != x_[q]);
        mx = x_[q] > mx ? x_[q] : mx;
      }
    }
    if (any_nan) return kSampleNaN;
    if (mx == std::numeric_limits<T>::infinity()) return kSamplePosInf;
    if (mx == -std::numeric_limits<T>::infinity()) return kSampleAllNegInf;
    if (temperature == 0) {  // greedy: the lowest index holding the maximum
      std::size_t k = 0;
      while (!(x_[k] == mx)) ++k;
      *token = std::int64_t(k);
      if (logprob) *logprob = 0.0;
      return kSampleOk;
    }
    mx_ = mx;
    inv_t_ = T(std::min(1.0 / temperature, double(std::numeric_limits<T>::max())));
    const bool do_k = top_k < std::int64_t(n_);
    const bool do_p = top_p < 1.0;
    const bool do_m = min_p > 0.0;
    const double log_min_p = do_m ? std::log(min_p) : 0.0;
    // The float form of "double(y) >= log_min_p": the smallest float >= log_min_p.
    lmp_f_ = float(log_min_p);
    if (double(lmp_f_) < log_min_p) lmp_f_ = std::nextafter(lmp_f_, INFINITY);

    // 2. weights, sums, level-1 histogram.
    ws_.w.resize(n_);
    float* w = ws_.w.data();
    if (do_k || do_p) {
      ws_.cnt.assign(4 * kBuckets, 0);
      ws_.mass.assign(4 * kBuckets, 0.0);
    }
    double z = 0, z_min_p = 0;
    constexpr std::size_t kChunk = 1024;
    for (std::size_t c0 = 0; c0 < n_; c0 += kChunk) {
      const std::size_t c1 = std::min(n_, c0 + kChunk);
      for (std::size_t j = c0; j < c1; ++j) w[j] = scaled(x_[j], mx, inv_t_);
      tier_kernels(sampling::kF32)->exps(w + c0, c1 - c0);
      z += block_sum(c0, c1, [&](std::size_t j) { return w[j]; });
      if (do_m) {
        const float lm = lmp_f_;
        z_min_p += block_sum(c0, c1, [&](std::size_t j) {
          return scaled(x_[j], mx, inv_t_) >= lm ? w[j] : 0.0f;
        });
      }
      if (do_k || do_p) {
        // Four interleaved copies: runs of one bucket do not chain through one counter.
        std::uint32_t* cnt = ws_.cnt.data();
        double* mass = ws_.mass.data();
        std::size_t q = c0;
        for (; q + 4 <= c1; q += 4)
          for (int l = 0; l < 4; ++l) {
            const std::size_t b = std::size_t(KS::key(x_[q + l]) >> KS::kShift[0]) * 4 + std::size_t(l);
            cnt[b] += 1;
            mass[b] += double(w[q + l]);
          }
        for (; q < c1; ++q) {
          const std::size_t b = std::size_t(KS::key(x_[q]) >> KS::kShift[0]) * 4;
          cnt[b] += 1;
          mass[b] += double(w[q]);
        }
      }
    }

    if (do_k || do_p) {  // fold the copies (in a fixed order)
      std::uint32_t* cnt = ws_.cnt.data();
      double* mass = ws_.mass.data();
      for (int b = 0; b < kBuckets; ++b) {
        cnt[b] = cnt[4 * b] + cnt[4 * b + 1] + cnt[4 * b + 2] + cnt[4 * b + 3];
        mass[b] = (mass[4 * b] + mass[4 * b + 1]) + (mass[4 * b + 2] + mass[4 * b + 3]);
      }
    }

    // 3. thresholds.
    bool have_prefix = false;
    Prefix<K> pre;
    double z_prefix = z;
    if (do_k) {
      pre = select(false, std::uint64_t(top_k), 0.0);
      have_prefix = true;
      z_prefix = pre.mass;
    }
    if (do_p) {
      const Prefix<K> pp = select(true, 0, top_p * z_prefix);
      if (!have_prefix || shorter(pp, pre)) pre = pp;
      have_prefix = true;
      z_prefix = pre.mass;
    }
    double z_kept = z_prefix;
    bool prefix_active = have_prefix;
    if (do_m) {
      const double yt = have_prefix ? double(scaled(KS::value(pre.t), mx, inv_t_)) : -INFINITY;
      if (!(yt >= double(lmp_f_))) {  // min-p removes part of the prefix: the kept set is the min-p set
        z_kept = z_min_p;
        prefix_active = false;
      } else {
        do_m_walk_ = false;
      }
    }
    const bool m_walk = do_m && do_m_walk_;

    // 4. the walk, a block at a time: a block whose kept mass leaves the running sum at or
    // below the target is skipped after one vectorizable pass over it.
    const double target = u * z_kept;
    double cum = 0;
    std::int64_t chosen = -1, last = -1;
    std::uint64_t ties = 0;
    constexpr std::size_t kBlock = 256;
    const K t = pre.t;
    for (std::size_t b0 = 0; b0 < n_ && chosen < 0; b0 += kBlock) {
      const std::size_t b1 = std::min(n_, b0 + kBlock);
      double bm;
      std::uint64_t bt = 0;
      std::size_t q;
      if (prefix_active) {
        bm = block_sum(b0, b1, [&](std::size_t j) { return KS::key(x_[j]) >= t ? w[j] : 0.0f; });
        std::uint32_t nt = 0;
        for (std::size_t j = b0; j < b1; ++j) nt += KS::key(x_[j]) == t ? 1u : 0u;
        bt = nt;
      } else if (m_walk) {
        const float lm = lmp_f_;
        bm = block_sum(b0, b1, [&](std::size_t j) { return scaled(x_[j], mx, inv_t_) >= lm ? w[j] : 0.0f; });
      } else {
        bm = block_sum(b0, b1, [&](std::size_t j) { return w[j]; });
      }
      if (bm == 0) { ties += bt; continue; }
      if (ties + bt <= pre.r || !prefix_active) {  // every tie in the block is kept
        if (cum + bm <= target) {
          cum += bm;
          ties += bt;
          for (std::size_t r = b1; r-- > b0;)
            if (w[r] > 0.0f && (!prefix_active || KS::key(x_[r]) >= t) &&
                (!m_walk || scaled(x_[r], mx, inv_t_) >= lmp_f_)) { last = std::int64_t(r); break; }
          continue;
        }
      }
      for (q = b0; q < b1; ++q) {
        const float e = w[q];
        if (prefix_active) {
          const K k = KS::key(x_[q]);
          if (k < t) continue;
          if (k == t && ties++ >= pre.r) continue;
        }
        if (!(e > 0.0f)) continue;
        if (m_walk && !(scaled(x_[q], mx, inv_t_) >= lmp_f_)) continue;
        cum += double(e);
        last = std::int64_t(q);
        if (cum > target) { chosen = last; break; }
      }
    }
    if (chosen < 0) chosen = last;  // rounding: u * z_kept at or past the walked sum
    *token = chosen;
    if (logprob) *logprob = std::log(double(w[std::size_t(chosen)])) - std::log(z_kept);
    return kSampleOk;
  }

 private:
  // The shortest prefix holding `k` tokens (by_mass false) or mass >= target (by_mass true).
  Prefix<K> select(bool by_mass, std::uint64_t k, double target) {
    const std::uint32_t* cnt = ws_.cnt.data();
    const double* mass = ws_.mass.data();
    std::uint64_t cum_cnt = 0;
    double cum_mass = 0;
    int b = kBuckets - 1;
    for (; b > 0; --b) {
      if (by_mass ? cum_mass + mass[b] >= target : cum_cnt + cnt[b] >= k) break;
      cum_cnt += cnt[b];
      cum_mass += mass[b];
    }
    // Gather the crossing bucket's keys (with the weights' sum per candidate key later).
    std::vector<std::uint64_t>& cand = ws_.cand;
    cand.clear();
    const K kb = K(b);
    for (std::size_t q = 0; q < n_; ++q)
      if ((KS::key(x_[q]) >> KS::kShift[0]) == kb) cand.push_back(std::uint64_t(KS::key(x_[q])));
    std::vector<std::uint32_t> c2(kBuckets);
    std::vector<double> m2(kBuckets);
    for (int level = 1; level < KS::kLevels; ++level) {
      const int shift = KS::kShift[level];
      const std::uint64_t mask = (std::uint64_t(1) << KS::kBits[level]) - 1;
      std::fill(c2.begin(), c2.end(), 0u);
      std::fill(m2.begin(), m2.end(), 0.0);
      for (const std::uint64_t key : cand) {
        const std::size_t bb = std::size_t((key >> shift) & mask);
        c2[bb] += 1;
        m2[bb] += double(weight(K(key)));
      }
      int bb = int(mask);
      for (; bb > 0; --bb) {
        if (by_mass ? cum_mass + m2[bb] >= target : cum_cnt + c2[bb] >= k) break;
        cum_cnt += c2[bb];
        cum_mass += m2[bb];
      }
      std::size_t kept = 0;
      for (const std::uint64_t key : cand)
        if (((key >> shift) & mask) == std::uint64_t(bb)) cand[kept++] = key;
      cand.resize(kept);
    }
    Prefix<K> p;
    p.t = K(cand.empty() ? 0 : cand[0]);
    const std::uint64_t ties = cand.size();
    p.wt = weight(p.t);
    const double wt = double(p.wt);
    if (!by_mass) {
      p.r = std::min<std::uint64_t>(k - cum_cnt, ties);
    } else {
      p.r = ties_to_reach(target, cum_mass, wt, ties);
    }
    p.mass = cum_mass + double(p.r) * wt;
    return p;
  }

  float weight(K key) const { return exp_nonpositive(scaled(KS::value(key), mx_, inv_t_)); }

  const T* x_;
  std::size_t n_;
  Workspace& ws_;
  T mx_ = 0, inv_t_ = 1;
  bool do_m_walk_ = true;
  float lmp_f_ = 0;
};

// ---- float32 / float16 / bfloat16 rows: the tier's vector passes ----------------------

const sampling::Kernels* tier_kernels(int storage) {
  static const sampling::Kernels* table[3] = {nullptr, nullptr, nullptr};
  static const bool ready = [] {
    const Tier tier = active_tier();
    for (int s = 0; s < 3; ++s) {
      switch (tier) {
#define FSM_SAMPLING_OF_TIER(isa, isa_name) \
  case Tier::isa: table[s] = isa::sampling_kernels(s); break;
        FASTSOFTMAX_FOR_EACH_ISA(FSM_SAMPLING_OF_TIER)
#undef FSM_SAMPLING_OF_TIER
      }
    }
    return true;
  }();
  (void)ready;
  return table[storage];
}

template <class S> struct StorageOf;
template <> struct StorageOf<float> { static constexpr int value = sampling::kF32; static float at(const float* x, std::size_t j) { return x[j]; } };
template <> struct StorageOf<Half> { static constexpr int value = sampling::kF16; static float at(const Half* x, std::size_t j) { return half_bits_to_float(x[j].bits); } };
template <> struct StorageOf<BFloat16> { static constexpr int value = sampling::kBF16; static float at(const BFloat16* x, std::size_t j) { return bfloat16_to_float(x[j].bits); } };

struct FastWorkspace {
  std::vector<std::uint32_t> bmax, tmp, keys;
  std::vector<std::size_t> idx;
  std::vector<float> w, cw;
  std::vector<float> bsum, bsum_m;  // the weights pass's block sums (float lanes)
  std::vector<std::uint64_t> order;   // top-k: candidate positions
  std::vector<std::uint32_t> c2;
  std::vector<double> m2;
  // top-p: the listed range's blocks (list_range's blk_above and blk_end), and the crossing
  // code's candidates (cand_w also holds the peaked path's block maxima and ranked weights)
  std::vector<double> blk_above;
  std::vector<float> cand_w;
  std::vector<std::size_t> blk_end;
  std::vector<std::uint32_t> cand_k;
};
FastWorkspace& fast_workspace() {
  thread_local FastWorkspace ws;
  return ws;
}

inline float y_of(float x, float mx, float inv_t) { return (x - mx) * inv_t; }

// The shortest prefix of the order (key descending, index ascending) whose weight reaches
// `target`, given that the tokens above the candidates weigh cum_mass and the candidates
// (keys and weights, index order) hold the crossing: a radix select over the key bits below
// the candidates' common prefix, 8 bits a level. When rounding leaves the candidates short of
// the target, the prefix takes them all.
Prefix<std::uint32_t> select_in_candidates(std::uint32_t* cand, float* cw, std::size_t nc, double cum_mass,
                                           double target, FastWorkspace& ws) {
  constexpr int kDigit = 8;
  constexpr std::size_t kDigitBuckets = std::size_t{1} << kDigit;
  std::uint32_t kmin = ~0u, kmax = 0;
  for (std::size_t i = 0; i < nc; ++i) {
    kmin = std::min(kmin, cand[i]);
    kmax = std::max(kmax, cand[i]);
  }
  int shift = kmin < kmax ? 32 - __builtin_clz(kmin ^ kmax) : 0;  // bits below the common prefix
  ws.c2.resize(kDigitBuckets);
  ws.m2.resize(kDigitBuckets);
  std::uint32_t* c2 = ws.c2.data();
  double* m2 = ws.m2.data();
  while (shift > 0 && nc > 1) {
    const int width = std::min(shift, kDigit);
    shift -= width;
    const std::uint32_t mask = (1u << width) - 1u;
    std::fill(c2, c2 + kDigitBuckets, 0u);
    std::fill(m2, m2 + kDigitBuckets, 0.0);
    for (std::size_t i = 0; i < nc; ++i) {
      const std::size_t bb = (cand[i] >> shift) & mask;
      c2[bb] += 1;
      m2[bb] += double(cw[i]);
    }
    int lowest = 0;
    while (c2[lowest] == 0) ++lowest;
    int bb = int(mask);
    for (; bb > lowest; --bb) {
      if (c2[bb] == 0) continue;
      if (cum_mass + m2[bb] >= target) break;
      cum_mass += m2[bb];
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < nc; ++i)
      if (((cand[i] >> shift) & mask) == std::uint32_t(bb)) {
        cw[kept] = cw[i];
        cand[kept++] = cand[i];
      }
    nc = kept;
  }
  Prefix<std::uint32_t> p;  // the candidates left share one key
  p.t = nc ? cand[0] : 0;
  p.wt = nc ? cw[0] : 0.0f;
  const double wt = double(p.wt);
  p.r = nc > 0 ? ties_to_reach(target, cum_mass, wt, nc) : 0;
  p.mass = cum_mass + double(p.r) * wt;
  return p;
}

// A long row's passes over the whole row run over chunks of kRowChunk elements (a multiple
// of every pass's block), on `use` threads; their partial results are combined in chunk
// order, so that they are the same for any thread count.
constexpr std::size_t kRowChunk = std::size_t{1} << 15;

std::size_t chunk_count(std::size_t n) { return (n + kRowChunk - 1) / kRowChunk; }

template <class F>
void over_chunks(std::size_t n, int use, F&& fn) {
  const std::size_t chunks = chunk_count(n);
  auto one = [&](std::size_t c) { fn(c, c * kRowChunk, std::min(n, (c + 1) * kRowChunk)); };
  if (use <= 1 || chunks == 1) {
    for (std::size_t c = 0; c < chunks; ++c) one(c);
  } else {
    parallel_for(chunks, int(std::min<std::size_t>(std::size_t(use), chunks)), one);
  }
}

// The passes of sampling::Kernels over the chunks of a row (same arguments, plus `use`).
struct ChunkedPasses {
  const sampling::Kernels& K;
  int use;

  void stats(const void* x, std::size_t size, std::size_t n, std::uint32_t* bmax, std::uint32_t* max_key,
             int* bad) const {
    std::vector<std::uint32_t> mk(chunk_count(n));
    std::vector<int> bd(chunk_count(n));
    over_chunks(n, use, [&](std::size_t c, std::size_t j0, std::size_t j1) {
      K.stats(static_cast<const char*>(x) + j0 * size, j1 - j0, bmax + j0 / sampling::kMaxBlock, &mk[c], &bd[c]);
    });
    *max_key = *std::max_element(mk.begin(), mk.end());
    *bad = *std::max_element(bd.begin(), bd.end());
  }

  void weights(const void* x, std::size_t size, std::size_t n, float mx, float inv_t, float lmp, int do_m,
               float* w, double* z, double* zm, float* bsum, float* bsum_m) const {
    std::vector<double> zc(chunk_count(n)), zmc(chunk_count(n));
    over_chunks(n, use, [&](std::size_t c, std::size_t j0, std::size_t j1) {
      const std::size_t b0 = j0 / sampling::kBlock * sampling::kLanes;
      K.weights(static_cast<const char*>(x) + j0 * size, j1 - j0, mx, inv_t, lmp, do_m, w + j0, &zc[c], &zmc[c],
                bsum + b0, do_m ? bsum_m + b0 : bsum_m);
    });
    *z = *zm = 0;
    for (std::size_t c = 0; c < zc.size(); ++c) {
      *z += zc[c];
      *zm += zmc[c];
    }
  }

  void mass_above(const float* w, std::size_t n, int nt, const float* thr, double* mass) const {
    std::vector<double> mc(chunk_count(n) * std::size_t(nt));
    over_chunks(n, use, [&](std::size_t c, std::size_t j0, std::size_t j1) {
      K.mass_above(w + j0, j1 - j0, nt, thr, &mc[c * std::size_t(nt)]);
    });
    for (int t = 0; t < nt; ++t) {
      mass[t] = 0;
      for (std::size_t c = 0; c < chunk_count(n); ++c) mass[t] += mc[c * std::size_t(nt) + std::size_t(t)];
    }
  }

  // wl and kl: room for n + 16 * (chunk_count(n) + 1). Chunk c lists from j0 + 16 c on (its
  // last stores may run 16 past its own count), then the lists are moved together in order
  // and each block's listed count made a count from the row's start.
  std::size_t list_range(const void* x, std::size_t size, const float* w, std::size_t n, float lo, float hi,
                         float* wl, std::uint32_t* kl, double* above, double* blk_above,
                         std::size_t* blk_end) const {
    std::vector<std::size_t> count(chunk_count(n));
    std::vector<double> ac(chunk_count(n));
    over_chunks(n, use, [&](std::size_t c, std::size_t j0, std::size_t j1) {
      const std::size_t b0 = j0 / sampling::kBlock;
      count[c] = K.list_range(static_cast<const char*>(x) + j0 * size, w + j0, j1 - j0, lo, hi, wl + j0 + 16 * c,
                              kl + j0 + 16 * c, &ac[c], blk_above + b0, blk_end + b0);
    });
    std::size_t m = 0;
    *above = 0;
    const std::size_t nb = (n + sampling::kBlock - 1) / sampling::kBlock;
    for (std::size_t c = 0; c < count.size(); ++c) {
      const std::size_t from = c * kRowChunk + 16 * c;
      std::memmove(wl + m, wl + from, count[c] * sizeof(float));
      std::memmove(kl + m, kl + from, count[c] * sizeof(std::uint32_t));
      if (c > 0) {
        const std::size_t b1 = std::min(nb, (c + 1) * kRowChunk / sampling::kBlock);
        for (std::size_t b = c * kRowChunk / sampling::kBlock; b < b1; ++b) blk_end[b] += m;
      }
      m += count[c];
      *above += ac[c];
    }
    return m;
  }
};

// Top-p without top-k: the weight code holding the crossing token, then the exact select
// among that code's tokens.
//  - The tokens with w < tau weigh less than n * tau <= (1 - p) Z / 2 in all, so the
//    crossing lies above tau (taken at a code's lower bound, code_tau).
//  - One vector pass (mass_above) weighs {w >= floor of code c_i} for 4 codes c_i spread
//    evenly over [0, code_tau]: the crossing's code lies in the first range (c_{i-1}, c_i]
//    whose weight reaches the target, weights [lo, hi). (More codes narrow the range, and
//    so the list, at the price of a slower pass over the row.)
//  - One pass (list_range) lists the tokens in [lo, hi) (weights and keys, in index order)
//    and weighs {w >= hi} (`above`, and each block's share of it).
//  - mass_above over the listed weights, at 8 codes spread over the range, narrows it to the
//    codes between two of them, and again until it is one code: the code holding the
//    crossing, whose listed tokens are the candidates of the exact select.
// Should rounding leave the target unreached, the codes of every token are weighed instead.
// The listed tokens (ws.cw, ws.keys) and their blocks (ws.blk_above, ws.blk_end) are left
// for the walk (walk_listed).
template <class S>
Prefix<std::uint32_t> select_top_p(const sampling::Kernels& K, const ChunkedPasses& P, const S* x, const float* w,
                                   std::size_t n, double z, double top_p, FastWorkspace& ws) {
  constexpr std::size_t C = sampling::kCodes;
  constexpr int T = sampling::kThresholds;
  const double target = top_p * z;
  const float tau_raw = float(0.5 * (1.0 - top_p) * z / double(n));
  const std::uint32_t code_tau = tau_raw > 0.0f ? std::min<std::uint32_t>(weight_code(tau_raw), 1015u) : 1015u;
  std::uint32_t c_lo = 0, c_hi = code_tau;  // the crossing's code is in [c_lo, c_hi]
  float lo = code_floor(code_tau), hi = 2.0f;
  {
    constexpr int R = sampling::kRowThresholds;
    std::uint32_t cs[R];
    float thr[R];
    double m[R];
    for (int i = 0; i < R; ++i) {
      cs[i] = std::uint32_t((std::uint64_t(code_tau) * std::uint64_t(i + 1)) / std::uint64_t(R + 1));
      thr[i] = code_floor(cs[i]);
    }
    P.mass_above(w, n, R, thr, m);
    int i = 0;
    while (i < R && !(m[i] >= target)) ++i;
    if (i < R) {
      c_hi = cs[i];
      lo = thr[i];
    }
    if (i > 0) {
      c_lo = cs[i - 1] + 1;
      hi = thr[i - 1];
    }
  }
  ws.cw.resize(n + 16 * (chunk_count(n) + 1));
  ws.keys.resize(n + 16 * (chunk_count(n) + 1));
  const std::size_t nb = (n + sampling::kBlock - 1) / sampling::kBlock;
  ws.blk_above.resize(nb);
  ws.blk_end.resize(nb);
  float* wl = ws.cw.data();
  std::uint32_t* kl = ws.keys.data();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) {  // every token
      c_lo = 0;
      c_hi = C - 1;
      lo = 0.0f;
      hi = 2.0f;
    }
    double above = 0;
    const std::size_t listed =
        P.list_range(x, sizeof(S), w, n, lo, hi, wl, kl, &above, ws.blk_above.data(), ws.blk_end.data());
    // Narrow [a, b] to the code c holding the crossing; cum: the weight of the codes above.
    std::uint32_t a = c_lo, b = c_hi, c = c_hi;
    double cum = above;
    bool found = false;
    while (!found) {
      const std::uint32_t k = b - a + 1;
      std::uint32_t cc[T];
      float tt[T];
      for (int t = 0; t < T; ++t) {
        cc[t] = k <= T ? std::min(a + std::uint32_t(t), b) : a + (k * std::uint32_t(t + 1)) / T - 1;
        tt[t] = cc[t] < 1016 ? code_floor(cc[t]) : 0.0f;  // codes 1016..1023: w = 0
      }
      double mm[T];
      K.mass_above(wl, listed, T, tt, mm);
      int t = 0;
      while (t < T && !(above + mm[t] >= target)) ++t;
      if (t == T) break;  // rounding left the range short
      if (t > 0) {
        cum = above + mm[t - 1];
        a = cc[t - 1] + 1;
      }
      b = cc[t];
      if (k <= T) {
        c = cc[t];
        found = true;
      }
    }
    if (!found && attempt == 0) continue;
    ws.cand_w.resize(listed + 16);
    ws.cand_k.resize(listed + 16);
    const std::size_t nc = K.keep_code(wl, kl, listed, c, ws.cand_w.data(), ws.cand_k.data());
    return select_in_candidates(ws.cand_k.data(), ws.cand_w.data(), nc, cum, target, ws);
  }
  return Prefix<std::uint32_t>();  // not reached: the second attempt always returns
}

// The walk of a top-p prefix (docs/sampling.md, step 7): the kept tokens are those with
// key > t and the first r (in index order) with key == t, each of weight wt. Every token with
// w >= hi is kept and every kept token with w < hi was listed (the threshold token's weight
// is in [lo, hi)), so a block's kept weight is known without reading the row: its weight of
// {w >= hi} (list_range's blk_above), plus its listed tokens with key > t (listed_above),
// plus wt times its kept ties. A block that leaves the running sum at or below the target is
// skipped; the block holding it is walked token by token. Returns the chosen index, or the
// last kept token with a positive weight when rounding leaves the walk short.
template <class S>
std::int64_t walk_listed(const sampling::Kernels& K, const S* x, const float* w, std::size_t n, std::uint32_t t,
                         std::uint64_t r, float wt, double target, const double* blk_above,
                         const std::size_t* blk_end, const float* wl, const std::uint32_t* kl) {
  constexpr std::size_t kRun = 64;  // blocks whose listed tokens are weighed at a time
  double gt[kRun];
  std::uint32_t eq[kRun];
  double cum = 0;
  std::uint64_t ties = 0;
  std::size_t last_block = n;  // the last block with kept weight, ...
  std::uint64_t last_ties = 0;  // ... and the ties before it
  auto kept = [&](std::uint32_t k, std::uint64_t& tc) { return k > t || (k == t && tc++ < r); };
  const std::size_t nb = (n + sampling::kBlock - 1) / sampling::kBlock;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::size_t i = b % kRun;
    if (i == 0) K.listed_above(wl, kl, blk_end + b, b ? blk_end[b - 1] : 0, std::min(kRun, nb - b), t, gt, eq);
    const std::size_t j = b * sampling::kBlock;
    const std::uint64_t ties0 = ties;
    const std::uint64_t kept_ties = ties0 >= r ? 0 : std::min<std::uint64_t>(eq[i], r - ties0);
    const double bm = blk_above[b] + gt[i] + double(wt) * double(kept_ties);
    ties += eq[i];
    if (bm == 0) continue;
    last_block = j;
    last_ties = ties0;
    if (cum + bm <= target) {  // the draw lies past this block
      cum += bm;
      continue;
    }
    std::uint64_t tq = ties0;
    const std::size_t end = std::min(n, j + sampling::kBlock);
    for (std::size_t q = j; q < end; ++q) {
      const std::uint32_t k = float_key(StorageOf<S>::at(x, q));
      if (!kept(k, tq) || !(w[q] > 0.0f)) continue;
      cum += double(w[q]);
      if (cum > target) return std::int64_t(q);
    }
  }
  std::int64_t last = -1;  // rounding left the walk short: the last kept token of the last block
  if (last_block < n) {
    std::uint64_t tq = last_ties;
    const std::size_t end = std::min(n, last_block + sampling::kBlock);
    for (std::size_t q = last_block; q < end; ++q)
      if (kept(float_key(StorageOf<S>::at(x, q)), tq) && w[q] > 0.0f) last = std::int64_t(q);
  }
  return last;
}

// The first min(k, nc) of nc candidates (keys and indices in ws.keys / ws.idx) in the order
// (key descending, index ascending): their positions, in ws.order[0, min(k, nc)) in that
// order; returns min(k, nc).
std::size_t rank_candidates(FastWorkspace& ws, std::size_t nc, std::size_t k) {
  const std::uint32_t* keys = ws.keys.data();
  const std::size_t* idx = ws.idx.data();
  ws.order.resize(nc);
  for (std::size_t i = 0; i < nc; ++i) ws.order[i] = i;
  auto before = [&](std::uint64_t a, std::uint64_t b) {
    return keys[a] > keys[b] || (keys[a] == keys[b] && idx[a] < idx[b]);
  };
  if (nc > k) std::nth_element(ws.order.begin(), ws.order.begin() + std::ptrdiff_t(k - 1), ws.order.end(), before);
  const std::size_t kk = std::min(k, nc);
  std::sort(ws.order.begin(), ws.order.begin() + std::ptrdiff_t(kk), before);
  return kk;
}

// The k first tokens of the order (key descending, index ascending): positions into
// ws.keys / ws.idx, in ws.order[0, k), in that order (ws.bmax holds the row's block maxima).
// Every one of the k largest block maxima is a distinct token, so the k-th largest logit is
// at least the k-th largest block maximum t: only blocks whose maximum reaches t are read.
// With k above the number of blocks, the whole row is ranked.
std::size_t rank_top_k(const sampling::Kernels& K, const void* x, std::size_t n, std::size_t k, FastWorkspace& ws) {
  const std::size_t nb = ws.bmax.size();
  const std::uint32_t* bmax = ws.bmax.data();
  std::uint32_t t = 0;
  if (k <= nb) {
    ws.tmp.assign(bmax, bmax + nb);
    std::nth_element(ws.tmp.begin(), ws.tmp.begin() + std::ptrdiff_t(k - 1), ws.tmp.end(),
                     [](std::uint32_t a, std::uint32_t b) { return a > b; });
    t = ws.tmp[k - 1];
  }
  ws.keys.resize(n);
  ws.idx.resize(n);
  const std::size_t nc = K.gather_ge(x, n, bmax, t, ws.keys.data(), ws.idx.data());
  return rank_candidates(ws, nc, k);
}

// Pass 1 and the row checks shared by sample and topk_rows: kSampleOk, or the row's error.
template <class S>
int checked_stats(const ChunkedPasses& P, const S* x, std::size_t n, FastWorkspace& ws, std::uint32_t* max_key) {
  const std::size_t nb = (n + sampling::kMaxBlock - 1) / sampling::kMaxBlock;
  ws.bmax.resize(nb);
  int bad;
  P.stats(x, sizeof(S), n, ws.bmax.data(), max_key, &bad);
  if (bad) {
    for (std::size_t q = 0; q < n; ++q) {
      const float v = StorageOf<S>::at(x, q);
      if (v != v) return kSampleNaN;
    }
  }
  const float mx = key_value(*max_key);
  if (mx == std::numeric_limits<float>::infinity()) return kSamplePosInf;
  if (mx == -std::numeric_limits<float>::infinity()) return kSampleAllNegInf;
  return kSampleOk;
}

// The kept prefix of ranked candidates and the draw. ws.order[0, kk) ranks the candidates
// (positions into ws.keys / ws.idx, key descending, index ascending) and wk holds their
// weights in that order. top-p (do_p) keeps the shortest prefix whose weight (float64, in
// rank order) reaches p_target; min-p then keeps the prefix with y >= lmp; the draw walks the
// kept tokens in index order (docs/sampling.md, step 7). With need_crossing, returns false
// and writes nothing when the candidates' weight never reaches p_target.
template <class S>
bool draw_ranked(const sampling::Kernels& K, const S* x, float mx, float inv_t, FastWorkspace& ws, std::size_t kk,
                 float* wk, bool do_p, double p_target, bool need_crossing, bool do_m, float lmp, double u,
                 std::int64_t* token, double* logprob) {
  const std::uint32_t* keys = ws.keys.data();
  const std::size_t* idx = ws.idx.data();
  std::size_t len = kk;
  if (do_p) {
    double cum = 0;
    std::size_t i = 0;
    for (; i < kk; ++i) {
      cum += double(wk[i]);
      if (cum >= p_target) break;
    }
    if (i < kk) len = i + 1;
    else if (need_crossing) return false;
  }
  if (do_m) {
    std::size_t i = 0;
    while (i < len && y_of(key_value(keys[ws.order[i]]), mx, inv_t) >= lmp) ++i;
    len = i;
  }
  // The kept tokens in index order (a token's weight travels with it).
  std::vector<std::uint64_t>& kept = ws.order;
  for (std::size_t i = 0; i < len; ++i) kept[i] = std::uint64_t(idx[kept[i]]);
  std::sort(kept.begin(), kept.begin() + std::ptrdiff_t(len));
  double z_kept = 0;
  float* wi = wk;  // reuse: weights in index order
  for (std::size_t i = 0; i < len; ++i) wi[i] = y_of(StorageOf<S>::at(x, kept[i]), mx, inv_t);
  K.exps(wi, len);
  for (std::size_t i = 0; i < len; ++i) z_kept += double(wi[i]);
  const double target = u * z_kept;
  double cum = 0;
  std::int64_t chosen = -1, last = -1;
  for (std::size_t i = 0; i < len; ++i) {
    if (!(wi[i] > 0.0f)) continue;
    cum += double(wi[i]);
    last = std::int64_t(i);
    if (cum > target) { chosen = last; break; }
  }
  if (chosen < 0) chosen = last;
  *token = std::int64_t(kept[std::size_t(chosen)]);
  if (logprob) *logprob = std::log(double(wi[std::size_t(chosen)])) - std::log(z_kept);
  return true;
}

// Top-p without top-k where a few blocks hold the crossing (peaked rows, the common case of
// language models): every block maximum is a distinct token, so if the block maxima of
// weight >= t already weigh p Z, the crossing token's weight is >= t and the kept tokens are
// among the tokens of weight >= t, all in the blocks whose maximum reaches t. With at most
// kPeakBlocks such blocks and kPeakCandidates such tokens, those tokens are ranked exactly
// and the prefix and the draw taken as for top-k (draw_ranked); returns false otherwise (the
// threshold passes then run). t is the largest of a few octaves of the largest weight (1)
// whose block maxima reach the target (mass_above over the block maxima's weights).
template <class S>
bool top_p_peaked(const sampling::Kernels& K, const S* x, std::size_t n, const float* w, float mx, float inv_t,
                  double z, double top_p, bool do_m, float lmp, double u, FastWorkspace& ws, std::int64_t* token,
                  double* logprob) {
  constexpr std::size_t kPeakBlocks = 64, kPeakCandidates = 512;  // bounds on the scan and the sort
  constexpr int T = sampling::kThresholds;
  constexpr std::uint32_t kOctaves[T] = {0, 1, 2, 3, 4, 6, 8, 10};
  const std::size_t nb = ws.bmax.size();
  ws.cand_w.resize(nb);
  float* bw = ws.cand_w.data();  // the block maxima's weights
  for (std::size_t b = 0; b < nb; ++b) bw[b] = y_of(key_value(ws.bmax[b]), mx, inv_t);
  K.exps(bw, nb);
  float thr[T];
  double m[T];
  for (int i = 0; i < T; ++i) thr[i] = code_floor(8 * kOctaves[i]);  // 2^-octave
  K.mass_above(bw, nb, T, thr, m);
  const double target = top_p * z;
  int i = 0;
  while (i < T && !(m[i] >= target)) ++i;
  if (i == T) return false;
  const float t = thr[i];
  std::size_t blocks = 0;
  for (std::size_t b = 0; b < nb; ++b) blocks += bw[b] >= t ? 1 : 0;
  if (blocks > kPeakBlocks) return false;
  ws.keys.resize(blocks * sampling::kMaxBlock);
  ws.idx.resize(blocks * sampling::kMaxBlock);
  std::size_t nc = 0;
  for (std::size_t b = 0; b < nb && nc <= kPeakCandidates; ++b) {
    if (!(bw[b] >= t)) continue;
    const std::size_t end = std::min(n, (b + 1) * sampling::kMaxBlock);
    for (std::size_t q = b * sampling::kMaxBlock; q < end; ++q)
      if (w[q] >= t) {
        ws.keys[nc] = float_key(StorageOf<S>::at(x, q));
        ws.idx[nc++] = q;
      }
  }
  if (nc > kPeakCandidates) return false;
  rank_candidates(ws, nc, nc);
  ws.cand_w.resize(nc);
  float* wk = ws.cand_w.data();
  for (std::size_t c = 0; c < nc; ++c) wk[c] = w[ws.idx[ws.order[c]]];
  return draw_ranked(K, x, mx, inv_t, ws, nc, wk, true, target, true, do_m, lmp, u, token, logprob);
}

// Long: one row's steps in order (stats, greedy, weights, thresholds, walk) over one workspace and shared locals.
template <class S>
int sample_fast(const S* x, std::size_t n, double temperature, std::int64_t top_k, double top_p, double min_p,
                double u, std::int64_t* token, double* logprob, int use) {
  const sampling::Kernels& K = *tier_kernels(StorageOf<S>::value);
  const ChunkedPasses P{K, use};
  FastWorkspace& ws = fast_workspace();
  std::uint32_t max_key;
  const int err = checked_stats(P, x, n, ws, &max_key);
  if (err != kSampleOk) return err;
  const std::uint32_t* bmax = ws.bmax.data();
  const float mx = key_value(max_key);
  if (temperature == 0) {  // greedy: the lowest index holding the maximum (-0 == +0)
    std::size_t b = 0;
    while (!(key_value(bmax[b]) == mx)) ++b;
    std::size_t q = b * sampling::kMaxBlock;
    while (!(StorageOf<S>::at(x, q) == mx)) ++q;
    *token = std::int64_t(q);
    if (logprob) *logprob = 0.0;
    return kSampleOk;
  }
  const float inv_t = float(std::min(1.0 / temperature, double(std::numeric_limits<float>::max())));
  const bool do_k = top_k < std::int64_t(n);
  const bool do_p = top_p < 1.0;
  const bool do_m = min_p > 0.0;
  const double log_min_p = do_m ? std::log(min_p) : 0.0;
  float lmp = float(log_min_p);  // the smallest float >= log(min_p)
  if (double(lmp) < log_min_p) lmp = std::nextafter(lmp, INFINITY);

  if (do_k) {
    const std::size_t kk = rank_top_k(K, x, n, std::size_t(top_k), ws);
    const std::uint32_t* keys = ws.keys.data();
    ws.w.resize(kk);
    float* wk = ws.w.data();
    for (std::size_t i = 0; i < kk; ++i) wk[i] = y_of(key_value(keys[ws.order[i]]), mx, inv_t);
    K.exps(wk, kk);
    double zk = 0;
    if (do_p)
      for (std::size_t i = 0; i < kk; ++i) zk += double(wk[i]);
    draw_ranked(K, x, mx, inv_t, ws, kk, wk, do_p, top_p * zk, false, do_m, lmp, u, token, logprob);
    return kSampleOk;
  }

  ws.w.resize(n);
  float* w = ws.w.data();
  double z = 0, zm = 0;
  const std::size_t nblocks = (n + sampling::kBlock - 1) / sampling::kBlock;
  ws.bsum.resize(nblocks * sampling::kLanes);
  ws.bsum_m.resize(do_m ? nblocks * sampling::kLanes : 0);
  P.weights(x, sizeof(S), n, mx, inv_t, lmp, do_m ? 1 : 0, w, &z, &zm, ws.bsum.data(), ws.bsum_m.data());
  sampling::WalkSpec spec{};
  spec.mode = sampling::kAll;
  spec.lmp = lmp;
  spec.mx = mx;
  spec.inv_t = inv_t;
  double z_kept = z;
  float wt = 0;  // top-p: the weight of the threshold key's tokens
  if (do_p && top_p_peaked(K, x, n, w, mx, inv_t, z, top_p, do_m, lmp, u, ws, token, logprob)) return kSampleOk;
  if (do_p) {
    const Prefix<std::uint32_t> pre = select_top_p(K, P, x, w, n, z, top_p, ws);
    spec.mode = sampling::kPrefix;
    spec.t = pre.t;
    spec.r = pre.r;
    wt = pre.wt;
    z_kept = pre.mass;
    if (do_m && !(y_of(key_value(pre.t), mx, inv_t) >= lmp)) {  // min-p cuts into the prefix
      spec.mode = sampling::kMinP;
      z_kept = zm;
    }
  } else if (do_m) {
    spec.mode = sampling::kMinP;
    z_kept = zm;
  }
  spec.target = u * z_kept;
  const std::int64_t chosen =
      spec.mode == sampling::kPrefix
          ? walk_listed(K, x, w, n, spec.t, spec.r, wt, spec.target, ws.blk_above.data(), ws.blk_end.data(),
                        ws.cw.data(), ws.keys.data())
          : K.walk(x, w, n, spec, spec.mode == sampling::kMinP ? ws.bsum_m.data() : ws.bsum.data());
  *token = chosen;
  if (logprob) *logprob = std::log(double(w[std::size_t(chosen)])) - std::log(z_kept);
  return kSampleOk;
}

// topk_rows: one row's k first tokens of the order.
template <class S>
int topk_fast(const S* x, std::size_t n, std::size_t k, std::int64_t* out) {
  const sampling::Kernels& K = *tier_kernels(StorageOf<S>::value);
  FastWorkspace& ws = fast_workspace();
  std::uint32_t max_key;
  const int err = checked_stats(ChunkedPasses{K, 1}, x, n, ws, &max_key);
  if (err != kSampleOk) return err;
  const std::size_t kk = rank_top_k(K, x, n, k, ws);  // kk == k: the row has n >= k tokens
  for (std::size_t i = 0; i < kk; ++i) out[i] = std::int64_t(ws.idx[ws.order[i]]);
  return kSampleOk;
}
int topk_fast(const double* x, std::size_t n, std::size_t k, std::int64_t* out) {
  bool nan = false, pinf = false, all_ninf = true;
  for (std::size_t q = 0; q < n; ++q) {
    nan = nan || x[q] != x[q];
    pinf = pinf || x[q] == INFINITY;
    all_ninf = all_ninf && x[q] == -INFINITY;
  }
  if (nan) return kSampleNaN;
  if (pinf) return kSamplePosInf;
  if (all_ninf) return kSampleAllNegInf;
  FastWorkspace& ws = fast_workspace();
  ws.order.resize(n);
  for (std::size_t i = 0; i < n; ++i) ws.order[i] = i;
  auto before = [&](std::uint64_t a, std::uint64_t b) {
    const std::uint64_t ka = Keys<double>::key(x[a]), kb = Keys<double>::key(x[b]);
    return ka > kb || (ka == kb && a < b);
  };
  if (n > k) std::nth_element(ws.order.begin(), ws.order.begin() + std::ptrdiff_t(k - 1), ws.order.end(), before);
  std::sort(ws.order.begin(), ws.order.begin() + std::ptrdiff_t(k), before);
  for (std::size_t i = 0; i < k; ++i) out[i] = std::int64_t(ws.order[i]);
  return kSampleOk;
}

template <class T> struct RowRunner {
  static int run(const T* x, std::size_t n, double t, std::int64_t k, double p, double m, double u, std::int64_t* tok,
                 double* lp, int use) {
    return sample_fast(x, n, t, k, p, m, u, tok, lp, use);
  }
};
template <> struct RowRunner<double> {
  static int run(const double* x, std::size_t n, double t, std::int64_t k, double p, double m, double u,
                 std::int64_t* tok, double* lp, int) {
    RowSampler<double> s(x, n, workspace());
    return s.run(t, k, p, m, u, tok, lp);
  }
};

}  // namespace

// Runs one(r) for every row (on `use` threads); then the first row whose errors[r] is not
// kSampleOk is returned with its code in *error, or -1 (*error = kSampleOk).
template <class F>
std::int64_t each_row(std::size_t rows, int use, const std::vector<int>& errors, int* error, F& one) {
  if (use <= 1) {
    for (std::size_t r = 0; r < rows; ++r) one(r);
  } else {
    parallel_for(rows, use, [&](std::size_t r) { one(r); });
  }
  for (std::size_t r = 0; r < rows; ++r)
    if (errors[r] != kSampleOk) { *error = errors[r]; return std::int64_t(r); }
  *error = kSampleOk;
  return -1;
}

template <typename T>
std::int64_t sample_rows(const T* x, std::size_t rows, std::size_t n, const SampleParams& p,
                         std::int64_t* tokens, double* logprobs, int threads, int* error) {
  std::vector<int> errors(rows, kSampleOk);
  const int want = resolve_threads(threads);
  const int use = rows > 1 ? useful_threads(std::min<int>(want, int(std::min<std::size_t>(rows, 1 << 20))),
                                            double(rows) * double(n) * 3.0)
                           : 1;
  // One row: its passes over chunks on the threads (the same results for any count).
  const int inner = rows == 1 ? useful_threads(want, double(n) * 3.0) : 1;
  auto one = [&](std::size_t r) {
    const double u = philox_uniform(p.seed[r], p.row_offset + r);
    errors[r] = RowRunner<T>::run(x + std::ptrdiff_t(r) * p.row_stride, n, p.temperature[r], p.top_k[r], p.top_p[r],
                                  p.min_p[r], u, tokens + r, logprobs ? logprobs + r : nullptr, inner);
  };
  return each_row(rows, use, errors, error, one);
}

template <typename T>
std::int64_t topk_rows(const T* x, std::size_t rows, std::size_t n, std::size_t k, std::int64_t* idx, int threads,
                       int* error) {
  std::vector<int> errors(rows, kSampleOk);
  const int want = resolve_threads(threads);
  const int use = rows > 1 ? useful_threads(std::min<int>(want, int(std::min<std::size_t>(rows, 1 << 20))),
                                            double(rows) * double(n) * 2.0)
                           : 1;
  auto one = [&](std::size_t r) { errors[r] = topk_fast(x + r * n, n, k, idx + r * k); };
  return each_row(rows, use, errors, error, one);
}

#define FSM_TOPK_ROWS(T) \
  template std::int64_t topk_rows<T>(const T*, std::size_t, std::size_t, std::size_t, std::int64_t*, int, int*);
FSM_TOPK_ROWS(float)
FSM_TOPK_ROWS(double)
FSM_TOPK_ROWS(Half)
FSM_TOPK_ROWS(BFloat16)
#undef FSM_TOPK_ROWS

template std::int64_t sample_rows<float>(const float*, std::size_t, std::size_t, const SampleParams&,
                                         std::int64_t*, double*, int, int*);
template std::int64_t sample_rows<double>(const double*, std::size_t, std::size_t, const SampleParams&,
                                          std::int64_t*, double*, int, int*);
template std::int64_t sample_rows<Half>(const Half*, std::size_t, std::size_t, const SampleParams&, std::int64_t*,
                                        double*, int, int*);
template std::int64_t sample_rows<BFloat16>(const BFloat16*, std::size_t, std::size_t, const SampleParams&,
                                            std::int64_t*, double*, int, int*);

}  // namespace fastsoftmax
