// Sampling without sorting: see sampling.h and docs/sampling.md.
//
// Per row (one thread per row, so the result never depends on the thread count):
//   1. read x: max, NaN and +inf check;
//   2. read x, write w (the row's float32 weights w_i = exp(y_i), y_i = (x_i - max) * (1/T),
//      so w_max = 1): their float64 sum Z, the sum over the min-p set, and, when top-k or
//      top-p is on, a histogram over the top 11 bits of the logits' order-preserving keys
//      holding each bucket's count and float64 mass;
//   3. (top-k / top-p) read x: gather the keys of the crossing bucket; the remaining levels
//      of the radix select (11 + 10 bits for float32) run over those few candidates;
//   4. read x and w: walk the kept tokens in index order to the drawn u * Z_kept.
#include "sampling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

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

// exp(y) for y <= 0 in float32 (Cody-Waite reduction, Cephes' expf polynomial), written
// branch-free so that the loops calling it vectorize; 0 below -87.33 (where exp(y) is
// no longer a normal float) and for y = -inf. exp(0) = 1 exactly.
inline float exp_nonpositive(float y) {
  // Masks instead of branches (GCC does not if-convert float selects here).
  const std::int32_t keep = -std::int32_t(y >= -87.33654f);  // all ones, or 0 (also for NaN)
  std::int32_t yb, lob;
  const float lo = -87.33654f;
  std::memcpy(&yb, &y, 4);
  std::memcpy(&lob, &lo, 4);
  const std::int32_t ycb = (yb & keep) | (lob & ~keep);
  float yc;
  std::memcpy(&yc, &ycb, 4);
  const float n = (yc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = yc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float q = 1.9875691500E-4f;
  q = q * r + 1.3981999507E-3f;
  q = q * r + 8.3334519073E-3f;
  q = q * r + 4.1665795894E-2f;
  q = q * r + 1.6666665459E-1f;
  q = q * r + 5.0000001201E-1f;
  q = q * (r * r) + r + 1.0f;
  const std::int32_t bits = (std::int32_t(n) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, 4);
  const float e = q * s;
  std::int32_t eb;
  std::memcpy(&eb, &e, 4);
  eb &= keep;
  float out;
  std::memcpy(&out, &eb, 4);
  return out;
}

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
// float: a max over order-preserving signed integer keys, which vectorizes.
inline void max_and_check(const float* x, std::size_t n, float* mx, float* badsum) {
  std::int32_t mk[8];
  float bad[8];
  for (int l = 0; l < 8; ++l) { mk[l] = std::numeric_limits<std::int32_t>::min(); bad[l] = 0; }
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      std::int32_t b;
      std::memcpy(&b, &x[i + l], 4);
      const std::int32_t k = b ^ ((b >> 31) & 0x7FFFFFFF);
      mk[l] = k > mk[l] ? k : mk[l];
      bad[l] += x[i + l] - x[i + l];
    }
  for (; i < n; ++i) {
    std::int32_t b;
    std::memcpy(&b, &x[i], 4);
    const std::int32_t k = b ^ ((b >> 31) & 0x7FFFFFFF);
    mk[0] = k > mk[0] ? k : mk[0];
    bad[0] += x[i] - x[i];
  }
  std::int32_t k = mk[0];
  float bs = bad[0];
  for (int l = 1; l < 8; ++l) { k = mk[l] > k ? mk[l] : k; bs += bad[l]; }
  const std::int32_t b = k ^ ((k >> 31) & 0x7FFFFFFF);
  std::memcpy(mx, &b, 4);
  *badsum = bs;
  // NaN keys sort above +inf (or below -inf): the caller sees badsum NaN and checks.
}
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

template <typename T> class RowSampler {
 public:
  using KS = Keys<T>;
  using K = typename KS::K;

  RowSampler(const T* x, std::size_t n, Workspace& ws) : x_(x), n_(n), ws_(ws) {}

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
      for (std::size_t j = c0; j < c1; ++j) w[j] = exp_nonpositive(scaled(x_[j], mx, inv_t_));
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
    } else if (wt > 0) {
      double rr = std::ceil((target - cum_mass) / wt);
      std::uint64_t r = rr < 1 ? 1 : (rr > double(ties) ? ties : std::uint64_t(rr));
      while (r > 1 && cum_mass + double(r - 1) * wt >= target) --r;
      while (r < ties && cum_mass + double(r) * wt < target) ++r;
      p.r = r;
    } else {
      p.r = ties;
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

}  // namespace

template <typename T>
std::int64_t sample_rows(const T* x, std::size_t rows, std::size_t n, const SampleParams& p,
                         std::int64_t* tokens, double* logprobs, int threads, int* error) {
  std::vector<int> errors(rows, kSampleOk);
  const int want = resolve_threads(threads);
  const int use = rows > 1 ? useful_threads(std::min<int>(want, int(std::min<std::size_t>(rows, 1 << 20))),
                                            double(rows) * double(n) * 3.0)
                           : 1;
  auto one = [&](std::size_t r) {
    RowSampler<T> s(x + r * n, n, workspace());
    const double u = philox_uniform(p.seed[r], p.row_offset + r);
    errors[r] = s.run(p.temperature[r], p.top_k[r], p.top_p[r], p.min_p[r], u, tokens + r,
                      logprobs ? logprobs + r : nullptr);
  };
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

template std::int64_t sample_rows<float>(const float*, std::size_t, std::size_t, const SampleParams&,
                                         std::int64_t*, double*, int, int*);
template std::int64_t sample_rows<double>(const double*, std::size_t, std::size_t, const SampleParams&,
                                          std::int64_t*, double*, int, int*);

}  // namespace fastsoftmax
