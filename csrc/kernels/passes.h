// The algorithms, written once over a vector type V (vec_<isa>.h). Each tier's
// kernels_<isa>.cpp includes its vector header, defines FASTSOFTMAX_TIER to its
// namespace name and includes this file, so every instantiation lives in
// fastsoftmax::<isa> and is compiled with that tier's flags only.
//
// Row-level contract: a kernel reads x[0..n) and writes y[0..n) exactly once per pass,
// never outside the row (tails use masked loads/stores); x == y is allowed.
//
// Fast path vs. exact path: the fast passes assume finite inputs in a range where the
// Cody-Waite reduction is exact enough (|x| <= kHigh, row max >= -kHigh). Pass 1 of every
// algorithm flags rows outside it (NaN, +inf, huge values, rows whose max is -inf or
// very negative) for a scalar long-double path that follows SciPy's semantics. -inf and
// very negative elements inside an ordinary row stay on the fast path: they are clamped
// to kLow, whose exponential is exactly 0 next to any element >= -kHigh.

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including passes.h"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

template <class T>
struct Constants;

// float32: the rr2-p5 exp (range reduction with two ln2 constants, degree-5 polynomial)
// shared by XNNPACK, oneDNN and PyTorch. e^t ~ 1 + t*(c1 + t*(c2 + t*(c3 + t*(c4 + t*c5))))
// on [-ln2/2, ln2/2]; about 2 ULP for the whole exp.
template <>
struct Constants<float> {
  static constexpr float kLog2e = 0x1.715476p+0f;
  static constexpr float kMinusLn2Hi = -0x1.62E400p-1f;
  static constexpr float kMinusLn2Lo = -0x1.7F7D1Cp-20f;
  static constexpr int kDegree = 5;
  // c_degree ... c1, then the constant term 1.
  static constexpr float kPoly[kDegree] = {0x1.0F9F9Cp-7f, 0x1.573A1Ap-5f, 0x1.555A80p-3f,
                                           0x1.FFFDC6p-2f, 0x1.FFFFF6p-1f};
  // |n| stays below 2^18 on the fast path, so n = round(x*log2e) is exact in float and
  // fma(n, -ln2_hi, x) is exact: the reduced argument is accurate.
  static constexpr float kHigh = 65536.0f;             // fast path: x <= kHigh
  static constexpr float kLow = -131072.0f;            // clamp for -inf / very negative
  static constexpr float kMinRowExponent = -94000.0f;  // two-pass: n_sigma below -> exact path
  static constexpr float kInitExponent = -0x1p30f;     // empty pair accumulator (m = 0)
};

// float64: e^t ~ 1 + t + c2 t^2 + ... on [-ln2/2, ln2/2], see the derivation in
// tools/derive_exp_f64.py.
template <>
struct Constants<double> {
  static constexpr double kLog2e = 0x1.71547652b82fep+0;
  static constexpr double kMinusLn2Hi = -0x1.62e42fefa3800p-1;
  static constexpr double kMinusLn2Lo = -0x1.ef35793c76730p-45;
  static constexpr int kDegree = 12;
  static constexpr double kPoly[kDegree] = {
      1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
      1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
      1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0};
  static constexpr double kHigh = 1048576.0;
  static constexpr double kLow = -2097152.0;
  static constexpr double kMinRowExponent = -1500000.0;
  static constexpr double kInitExponent = -0x1p40;
};

// Merges partial states in a binary-counter cascade (pairwise summation): the rounding
// error of a row sum grows with log2(blocks), not with the row length.
template <class Acc>
struct Cascade {
  using State = typename Acc::State;
  State level[64];
  std::uint64_t used = 0;

  void push(State s) {
    int l = 0;
    while ((used >> l) & 1u) {
      s = Acc::merge(level[l], s);
      used &= ~(std::uint64_t{1} << l);
      ++l;
    }
    level[l] = s;
    used |= std::uint64_t{1} << l;
  }
  State total() const {
    State r = Acc::init();
    bool have = false;
    for (int l = 0; l < 64; ++l) {
      if ((used >> l) & 1u) {
        r = have ? Acc::merge(level[l], r) : level[l];
        have = true;
      }
    }
    return r;
  }
};

template <class V>
struct Passes {
  using T = typename V::T;
  using R = typename V::reg;
  using M = typename V::mask;
  using C = Constants<T>;
  static constexpr std::size_t N = V::N;
  static constexpr std::size_t A = V::kAccumulators;  // independent accumulators
  static constexpr std::size_t U = N * A;              // elements per unrolled step
  static constexpr std::size_t B = U * 16;             // elements per cascade block

  // ---- exp building blocks --------------------------------------------------------

  // x = n*ln2 + t, n integral, |t| <= ln2/2 (Cody-Waite; fma keeps n*ln2_hi exact).
  static R reduce(R x, R& t) {
    const R n = V::round(V::mul(x, V::set1(C::kLog2e)));
    t = V::fmadd(n, V::set1(C::kMinusLn2Hi), x);
    t = V::fmadd(n, V::set1(C::kMinusLn2Lo), t);
    return n;
  }
  // e^t for |t| <= ln2/2, the mantissa of ExtExp (in [0.7, 1.42]).
  static R mantissa(R t) {
    R p = V::set1(C::kPoly[0]);
    for (int k = 1; k < C::kDegree; ++k) p = V::fmadd(p, t, V::set1(C::kPoly[k]));
    return V::fmadd(p, t, V::set1(T(1)));
  }
  // e^(x - mu) for x <= mu (the three-pass and online algorithms).
  static R exp_shifted(R x, R mu) {
    const R z = V::max(V::sub(x, mu), V::set1(C::kLow));
    R t;
    const R n = reduce(z, t);
    return V::scale(mantissa(t), n);
  }

  // ---- pass-1 accumulators -----------------------------------------------------------
  // Each has a per-lane State, init(), update(State&, x) returning the value a storing
  // pass writes, merge(a, b) (associative), and a horizontal finish.

  struct MaxAcc {
    using State = R;
    static State init() { return V::set1(C::kLow); }
    R update(State& s, R x) const { s = V::max(s, x); return x; }
    static State merge(State a, State b) { return V::max(a, b); }
  };

  // (mantissa, exponent) pairs: value = m * 2^e; exponents are integral floats.
  struct PairAcc {
    struct State { R m, e; };
    static State init() { return {V::set1(T(0)), V::set1(C::kInitExponent)}; }
    R update(State& s, R x) const {
      R t;
      const R n = reduce(V::max(x, V::set1(C::kLow)), t);
      const R p = mantissa(t);
      const R e = V::max(s.e, n);
      s.m = V::add(V::scale(s.m, V::sub(s.e, e)), V::scale(p, V::sub(n, e)));
      s.e = e;
      return x;
    }
    static State merge(State a, State b) {
      const R e = V::max(a.e, b.e);
      return {V::add(V::scale(a.m, V::sub(a.e, e)), V::scale(b.m, V::sub(b.e, e))), e};
    }
  };

  // Milakov & Gimelshein: running max and the sum rescaled to it by a real exp.
  struct OnlineAcc {
    struct State { R mx, s; };
    static State init() { return {V::set1(C::kLow), V::set1(T(0))}; }
    R update(State& st, R x) const {
      const R xc = V::max(x, V::set1(C::kLow));
      const R mx = V::max(st.mx, xc);
      st.s = V::fmadd(st.s, exp_shifted(st.mx, mx), exp_shifted(xc, mx));
      st.mx = mx;
      return x;
    }
    static State merge(State a, State b) {
      const R mx = V::max(a.mx, b.mx);
      return {mx, V::fmadd(a.s, exp_shifted(a.mx, mx), V::mul(b.s, exp_shifted(b.mx, mx)))};
    }
  };

  // Sum of e^(x - mu); when storing, also writes e^(x - mu) (three-pass reload) or
  // x - mu (log-softmax reload).
  template <bool kStoreShifted>
  struct SumExpAcc {
    using State = R;
    R mu;
    static State init() { return V::set1(T(0)); }
    R update(State& s, R x) const {
      const R e = exp_shifted(x, mu);
      s = V::add(s, e);
      return kStoreShifted ? V::sub(x, mu) : e;
    }
    static State merge(State a, State b) { return V::add(a, b); }
  };

  // ---- loops ----------------------------------------------------------------------

  // One block of `count` elements (multiple of U) into A independent states.
  template <class Acc, bool kCheck, bool kStore>
  static typename Acc::State block(const Acc& acc, const T* x, T* y, std::size_t count, M& bad) {
    typename Acc::State s[A];
    for (std::size_t a = 0; a < A; ++a) s[a] = Acc::init();
    const R high = V::set1(C::kHigh);
    for (std::size_t j = 0; j < count; j += U) {
      for (std::size_t a = 0; a < A; ++a) {
        const R v = V::loadu(x + j + a * N);
        if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
        const R out = acc.update(s[a], v);
        if (kStore) V::storeu(y + j + a * N, out);
      }
    }
    for (std::size_t w = 1; w < A; w *= 2)
      for (std::size_t a = 0; a + w < A; a += 2 * w) s[a] = Acc::merge(s[a], s[a + w]);
    return s[0];
  }

  // The last partial block: whole vectors, then one masked vector padded with kLow
  // (which contributes nothing to any accumulator).
  template <class Acc, bool kCheck, bool kStore>
  static typename Acc::State partial_block(const Acc& acc, const T* x, T* y, std::size_t count, M& bad) {
    const std::size_t whole = count / U * U;
    typename Acc::State s = whole ? block<Acc, kCheck, kStore>(acc, x, y, whole, bad) : Acc::init();
    const R high = V::set1(C::kHigh);
    std::size_t i = whole;
    for (; i + N <= count; i += N) {
      const R v = V::loadu(x + i);
      if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
      const R out = acc.update(s, v);
      if (kStore) V::storeu(y + i, out);
    }
    if (i < count) {
      const M m = V::tail_mask(count - i);
      const R v = V::select(m, V::load_tail(x + i, m), V::set1(C::kLow));
      if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
      const R out = acc.update(s, v);
      if (kStore) V::store_tail(y + i, out, m);
    }
    return s;
  }

  template <class Acc, bool kCheck, bool kStore = false>
  static typename Acc::State reduce_row(const Acc& acc, std::size_t n, const T* x, T* y, bool& bad_out) {
    Cascade<Acc> cascade;
    M bad = V::mask_none();
    std::size_t i = 0;
    for (; i + B <= n; i += B) cascade.push(block<Acc, kCheck, kStore>(acc, x + i, y + i, B, bad));
    if (i < n) cascade.push(partial_block<Acc, kCheck, kStore>(acc, x + i, y + i, n - i, bad));
    bad_out = V::mask_any(bad);
    return cascade.total();
  }

  // y[i] = f(x[i]); unrolled by A, then whole vectors, then one masked vector.
  template <class F>
  static void map_row(std::size_t n, const T* x, T* y, F f) {
    std::size_t i = 0;
    for (; i + U <= n; i += U) {
      R v[A];
      for (std::size_t a = 0; a < A; ++a) v[a] = V::loadu(x + i + a * N);
      for (std::size_t a = 0; a < A; ++a) V::storeu(y + i + a * N, f(v[a]));
    }
    for (; i + N <= n; i += N) V::storeu(y + i, f(V::loadu(x + i)));
    if (i < n) {
      const M m = V::tail_mask(n - i);
      V::store_tail(y + i, f(V::load_tail(x + i, m)), m);
    }
  }

  // ---- row statistics ---------------------------------------------------------------

  struct PairSum { T m, e; bool exact_path; };
  static PairSum pair_sum(std::size_t n, const T* x) {
    bool bad;
    const typename PairAcc::State s = reduce_row<PairAcc, true>(PairAcc{}, n, x, nullptr, bad);
    const T e = V::reduce_max(s.e);
    const T m = V::reduce_add(V::scale(s.m, V::sub(s.e, V::set1(e))));
    return {m, e, bad || e < C::kMinRowExponent};
  }

  struct MaxSum { T mu, sigma; bool exact_path; };
  static bool row_max(std::size_t n, const T* x, T& mu) {
    bool bad;
    mu = V::reduce_max(reduce_row<MaxAcc, true>(MaxAcc{}, n, x, nullptr, bad));
    return bad || mu < -C::kHigh;
  }
  static MaxSum online_sum(std::size_t n, const T* x) {
    bool bad;
    const typename OnlineAcc::State s = reduce_row<OnlineAcc, true>(OnlineAcc{}, n, x, nullptr, bad);
    const T mu = V::reduce_max(s.mx);
    const T sigma = V::reduce_add(V::mul(s.s, exp_shifted(s.mx, V::set1(mu))));
    return {mu, sigma, bad || mu < -C::kHigh};
  }

  // log(m * 2^e) and mu + log(sigma), in double (the result is rounded once to T).
  static T log_pair(T m, T e) { return static_cast<T>(std::log(double(m)) + double(e) * 0x1.62e42fefa39efp-1); }
  static T log_shifted(T mu, T sigma) { return static_cast<T>(double(mu) + std::log(double(sigma))); }

  // ---- exact path (rows outside the fast range), SciPy's semantics -------------------

  static void exact_row(std::size_t n, const T* x, T* y, bool log) {
    using L = long double;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    L mu = -std::numeric_limits<L>::infinity();
    bool any_nan = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (x[i] != x[i]) any_nan = true;
      else if (L(x[i]) > mu) mu = x[i];
    }
    if (any_nan || (!log && !(std::fabs(mu) < std::numeric_limits<L>::infinity()))) {
      for (std::size_t i = 0; i < n; ++i) y[i] = nan;  // NaN in, or max = +-inf (inf - inf)
      return;
    }
    if (!(std::fabs(mu) < std::numeric_limits<L>::infinity())) mu = 0;  // SciPy's log_softmax
    L sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += std::exp(L(x[i]) - mu);
    if (log) {
      const L log_sum = std::log(sum);
      for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<T>((L(x[i]) - mu) - log_sum);
    } else {
      const L inv = L(1) / sum;
      for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<T>(std::exp(L(x[i]) - mu) * inv);
    }
  }

  // ---- the kernels ----------------------------------------------------------------

  static void subtract_row(std::size_t n, const T* x, T* y, T c) {
    const R cv = V::set1(c);
    map_row(n, x, y, [cv](R v) { return V::sub(v, cv); });
  }

  static void softmax_two_pass(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    const PairSum s = pair_sum(n, x);
    if (s.exact_path) return exact_row(n, x, y, false);
    const R inv = V::set1(T(1) / s.m), e_sum = V::set1(s.e), low = V::set1(C::kLow);
    map_row(n, x, y, [=](R v) {
      R t;
      const R nv = reduce(V::max(v, low), t);
      return V::scale(V::mul(mantissa(t), inv), V::sub(nv, e_sum));
    });
  }
  static void log_softmax_two_pass(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    const PairSum s = pair_sum(n, x);
    if (s.exact_path) return exact_row(n, x, y, true);
    subtract_row(n, x, y, log_pair(s.m, s.e));
  }

  static T sum_exp(std::size_t n, const T* x, T mu) {
    bool unused;
    return V::reduce_add(reduce_row<SumExpAcc<false>, false>({V::set1(mu)}, n, x, nullptr, unused));
  }
  static void write_exp_scaled(std::size_t n, const T* x, T* y, T mu, T sigma) {
    const R muv = V::set1(mu), inv = V::set1(T(1) / sigma);
    map_row(n, x, y, [=](R v) { return V::mul(exp_shifted(v, muv), inv); });
  }

  static void softmax_three_pass_recompute(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    T mu;
    if (row_max(n, x, mu)) return exact_row(n, x, y, false);
    write_exp_scaled(n, x, y, mu, sum_exp(n, x, mu));
  }
  static void log_softmax_three_pass_recompute(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    T mu;
    if (row_max(n, x, mu)) return exact_row(n, x, y, true);
    subtract_row(n, x, y, log_shifted(mu, sum_exp(n, x, mu)));
  }

  static void softmax_three_pass_reload(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    T mu;
    if (row_max(n, x, mu)) return exact_row(n, x, y, false);
    bool unused;
    const T sigma = V::reduce_add(reduce_row<SumExpAcc<false>, false, true>({V::set1(mu)}, n, x, y, unused));
    const R inv = V::set1(T(1) / sigma);
    map_row(n, y, y, [inv](R v) { return V::mul(v, inv); });
  }
  static void log_softmax_three_pass_reload(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    T mu;
    if (row_max(n, x, mu)) return exact_row(n, x, y, true);
    bool unused;
    const T sigma = V::reduce_add(reduce_row<SumExpAcc<true>, false, true>({V::set1(mu)}, n, x, y, unused));
    subtract_row(n, y, y, static_cast<T>(std::log(double(sigma))));
  }

  static void softmax_online(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    const MaxSum s = online_sum(n, x);
    if (s.exact_path) return exact_row(n, x, y, false);
    write_exp_scaled(n, x, y, s.mu, s.sigma);
  }
  static void log_softmax_online(std::size_t n, const T* x, T* y) {
    if (n == 0) return;
    const MaxSum s = online_sum(n, x);
    if (s.exact_path) return exact_row(n, x, y, true);
    subtract_row(n, x, y, log_shifted(s.mu, s.sigma));
  }

  // ---- memory-only patterns (the roofline) -------------------------------------------

  struct SumAcc {
    using State = R;
    static State init() { return V::set1(T(0)); }
    R update(State& s, R x) const { s = V::add(s, x); return x; }
    static State merge(State a, State b) { return V::add(a, b); }
  };
  static double read_pass(std::size_t n, const T* x) {
    bool unused;
    return double(V::reduce_add(reduce_row<SumAcc, false>(SumAcc{}, n, x, nullptr, unused)));
  }
  static void scale_pass(std::size_t n, const T* x, T* y, T c) {
    const R cv = V::set1(c);
    map_row(n, x, y, [cv](R v) { return V::mul(v, cv); });
  }
  static double pattern_read(std::size_t n, const T* x, T*) { return read_pass(n, x); }
  static double pattern_copy(std::size_t n, const T* x, T* y) {
    map_row(n, x, y, [](R v) { return v; });
    return 0;
  }
  static double pattern_two_pass(std::size_t n, const T* x, T* y) {  // R; R+W
    const double s = read_pass(n, x);
    scale_pass(n, x, y, s == 0 ? T(1) : T(0.5));
    return 0;
  }
  static double pattern_three_pass_reload(std::size_t n, const T* x, T* y) {  // R; R+W; R+W
    const double s = read_pass(n, x);
    scale_pass(n, x, y, s == 0 ? T(1) : T(0.5));
    scale_pass(n, y, y, T(2));
    return 0;
  }
  static double pattern_three_pass_recompute(std::size_t n, const T* x, T* y) {  // R; R; R+W
    const double s = read_pass(n, x) + read_pass(n, x);
    scale_pass(n, x, y, s == 0 ? T(1) : T(0.5));
    return 0;
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax

// Defines every kernel of the list in kernels.inc for the current tier, as plain
// functions fastsoftmax::<tier>::<dtype>_<algorithm>_<op> and <dtype>_pattern_<name>.
#define FASTSOFTMAX_DEFINE_KERNEL(op, alg, op_name, alg_name)                                      \
  void f32_##alg##_##op(std::size_t n, const float* x, float* y) { Passes<Vec<float>>::op##_##alg(n, x, y); } \
  void f64_##alg##_##op(std::size_t n, const double* x, double* y) { Passes<Vec<double>>::op##_##alg(n, x, y); }
#define FASTSOFTMAX_DEFINE_PATTERN(pat, pat_name)                                                  \
  double f32_pattern_##pat(std::size_t n, const float* x, float* y) { return Passes<Vec<float>>::pattern_##pat(n, x, y); } \
  double f64_pattern_##pat(std::size_t n, const double* x, double* y) { return Passes<Vec<double>>::pattern_##pat(n, x, y); }
