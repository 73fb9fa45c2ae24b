// The algorithms, written once over a vector type V (vec_<isa>.h). Each tier's
// kernels_<isa>.cpp includes its vector header, defines FASTSOFTMAX_TIER to its
// namespace name and includes this file, so every instantiation lives in
// fastsoftmax::<isa> and is compiled with that tier's flags only.
//
// Row-level contract: a kernel reads x[0..n) and writes y[0..n) exactly once per pass,
// never outside the row (tails use masked loads/stores); x == y is allowed.
//
// Fast path vs. exact path: the fast passes assume finite inputs in a range where the
// Cody-Waite reduction is exact enough (row max in [-kHigh, kHigh]). Rows outside it (NaN,
// +inf, huge values, rows whose max is -inf or very negative) go to a scalar long-double
// path that follows SciPy's semantics. -inf and very negative elements inside an ordinary
// row stay on the fast path: they are clamped to kLow, whose exponential is exactly 0 next
// to any element >= -kHigh. Detection costs nothing per element in the pair and online
// passes: a NaN or +inf reaches the accumulated sum as NaN (clamps are written so that
// they keep NaN), and huge values show in the accumulated max. The max pass of the
// three-pass algorithms cannot see NaN that way (x86 max drops it), so it checks
// explicitly -- it must, because three-pass reload overwrites y (maybe x) before a later
// check could run.

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including passes.h"
#endif

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/primitives.h"

#define FASTSOFTMAX_ROWS_NS FASTSOFTMAX_TIER
#include "kernels/rows.h"

namespace fastsoftmax {

// Output rows of at least this many bytes are written with non-temporal stores (set
// from the cache sizes at run time; defined in softmax.cpp, outside the ISA files).
std::size_t streaming_threshold_bytes();

// Software prefetch distance of every pass: the best of 2048, 8192 and 16384 bytes on long
// rows out of cache (docs/results.md, "Software prefetch"). Override with
// -DFASTSOFTMAX_PREFETCH_BYTES=... (0: none).
#ifndef FASTSOFTMAX_PREFETCH_BYTES
#define FASTSOFTMAX_PREFETCH_BYTES 8192
#endif

// Rows, and chunks of long rows, of at least this many elements are read with software
// prefetch; shorter rows are left to the hardware prefetcher, which follows a batch of
// contiguous rows from one to the next. Default 2^16 (a whole chunk of a long row); a
// machine profile may change it (set_prefetch_min_elements; docs/results.md, "Software
// prefetch"). Defined in softmax.cpp, outside the ISA files.
extern std::atomic<std::size_t> prefetch_min_elements_setting;

namespace FASTSOFTMAX_TIER {

template <class T>
struct Constants;

// float32: the rr2-p5 exp (range reduction with two ln2 constants, degree-5 polynomial)
// shared by XNNPACK, oneDNN and PyTorch. e^t ~ 1 + t*(c1 + t*(c2 + t*(c3 + t*(c4 + t*c5))))
// on [-ln2/2, ln2/2]; about 2 ULP for the whole exp.
template <>
struct Constants<float> {
  static constexpr float kLog2e = 0x1.715476p+0f;
  static constexpr float kRoundBias = 0x1.8p23f;
  static constexpr float kMinusLn2Hi = -0x1.62E400p-1f;
  static constexpr float kMinusLn2Lo = -0x1.7F7D1Cp-20f;
  static constexpr int kDegree = 5;
  // c_degree ... c1, then the constant term 1.
  static constexpr float kPoly[kDegree] = {0x1.0F9F9Cp-7f, 0x1.573A1Ap-5f, 0x1.555A80p-3f,
                                           0x1.FFFDC6p-2f, 0x1.FFFFF6p-1f};
  // |n| stays below 2^18 on the fast path, so n = round(x*log2e) is exact in float and
  // fma(n, -ln2_hi, x) is exact: the reduced argument is accurate.
  static constexpr float kHigh = FastRange<float>::kHigh;  // fast path: x <= kHigh
  static constexpr float kLow = -131072.0f;                 // clamp for -inf / very negative
  static constexpr float kInitExponent = -0x1p30f;     // empty pair accumulator (m = 0)
};

// float64: e^t ~ 1 + t + c2*t^2 + ... + c11*t^11 on [-ln2/2, ln2/2] (degree 11, c0 = c1 = 1
// exact), Horner with FMA. c2..c11: Remez minimax of the relative error of e^t (mpmath,
// 160 bits), rounded to double one coefficient at a time with re-optimisation of the rest;
// approximation error 2^-57.9. Measured (tools/derive_exp_f64.py, exact-FMA emulation)
// against correctly rounded e^x on 2.6M points in [-745, 709]: max 0.89 ULP for normal
// results; p(t) alone <= 0.85 ULP for |n| <= 1443. Degree 10 would give 2.95 ULP.
// ln2_hi has 29 significant bits, so n*ln2_hi is exact for |n| < 2^24 even without FMA
// (the scalar tier on CPUs without it); |ln2 - ln2_hi - ln2_lo| ~ 2^-89.
template <>
struct Constants<double> {
  static constexpr double kLog2e = 0x1.71547652b82fep+0;
  static constexpr double kRoundBias = 0x1.8p52;
  static constexpr double kMinusLn2Hi = -0x1.62e42ff000000p-1;
  static constexpr double kMinusLn2Lo = 0x1.718432a1b0e26p-35;
  static constexpr int kDegree = 11;
  static constexpr double kPoly[kDegree] = {
      0x1.ad9eef0f52283p-26, 0x1.28ad4c253ea54p-22, 0x1.71df0cc2b2140p-19, 0x1.a0199a21b63bep-16,
      0x1.a01a01384fdf9p-13, 0x1.6c16c184319f7p-10, 0x1.1111111124540p-7,  0x1.55555555507bap-5,
      0x1.555555555550dp-3,  0x1.000000000000ap-1,  0x1.0000000000000p+0};
  static constexpr double kHigh = FastRange<double>::kHigh;
  static constexpr double kLow = -2097152.0;
  static constexpr double kInitExponent = -0x1p40;
};

// float64 on tiers with a one-instruction 16-entry lookup (V::kTableExp): e^x = 2^(k/16) *
// e^t with k = round(16 x log2e), t = x - (k/16) ln2, |t| <= ln2/32, and 2^(k/16) =
// 2^floor(k/16) * kTable[k mod 16]. The short interval needs degree 6 where the plain scheme
// needs 11 (12 vector operations an exp instead of 15; float64 two-pass is compute-bound).
// e^t ~ 1 + t + c2 t^2 + ... + c6 t^6: minimax of the relative error on [-ln2/32, ln2/32]
// (tools/derive_exp_f64_table.py, which also measures the whole scheme), error 2^-56.3.
// With the table's rounding error added back (kCorrection, a second lookup), the whole exp
// measures 0.63 ULP at most for normal results (the 11-degree scheme: 0.89).
// kRoundBias = 1.5 * 2^48 rounds x log2e to a multiple of 1/16 and leaves k mod 16 in the
// low bits of the biased sum, where the lookup reads it; scalef floors n = k/16 itself.
struct TableExp {
  static constexpr double kRoundBias = 0x1.8p48;
  static constexpr double kTable[16] = {
      0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
      0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
      0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
      0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0};
  // RN((2^(j/16) - kTable[j]) / kTable[j]): what rounding the table lost, added to t p(t).
  static constexpr double kCorrection[16] = {
      0x0.0p+0,                0x1.79aa65d837b6dp-54,  -0x1.01b15eaa59348p-55, 0x1.68efde3a8a894p-54,
      0x1.34d754db0abb6p-55,   0x1.59f48a72a4c6dp-55,  0x1.690cebb7aafb0p-56,  0x1.063e1e21c5409p-54,
      -0x1.3b3efbf5e2228p-54,  -0x1.b32dcb94da51dp-56, 0x1.db72fc1f0eab4p-55,  0x1.1affc2b91ce27p-56,
      0x1.c1a7792cb3387p-55,   0x1.36eae30af0cb3p-56,  0x1.4a385a63d07a7p-56,  -0x1.ff7128fd391f0p-55};
  static constexpr int kDegree = 6;
  // c6 ... c2 (c1 = c0 = 1).
  static constexpr double kPoly[kDegree - 1] = {0x1.6c14c85c995bfp-10, 0x1.11123aadb5fe9p-7,
                                                0x1.55555558fa21dp-5, 0x1.555555548f8a4p-3,
                                                0x1.fffffffffffb9p-2};
};

template <class V, class = void>
struct HasTableExp : std::false_type {};
template <class V>
struct HasTableExp<V, decltype(void(V::kTableExp))> : std::integral_constant<bool, V::kTableExp> {};

// The order of a binary-counter cascade (pairwise summation), apart from where the
// states live: push(fold) calls fold(l) for each occupied level l that the new state
// absorbs (new = merge(level[l], new)) and returns the level to store it at; total(first,
// fold) starts from the lowest level and folds in the others (r = merge(level[l], r)).
// Cascade holds its states itself; the column kernel holds them in its scratch memory,
// and must merge in exactly this order.
struct CascadeOrder {
  std::uint64_t used = 0;

  template <class Fold>
  int push(Fold&& fold) {
    int l = 0;
    while ((used >> l) & 1u) {
      fold(l);
      used &= ~(std::uint64_t{1} << l);
      ++l;
    }
    used |= std::uint64_t{1} << l;
    return l;
  }
  template <class First, class Fold>
  void total(First&& first, Fold&& fold) const {
    std::uint64_t rest = used;
    first(__builtin_ctzll(rest));
    for (rest &= rest - 1; rest; rest &= rest - 1) fold(__builtin_ctzll(rest));
  }
};

// Merges partial states in a binary-counter cascade: the rounding error of a row sum
// grows with log2(blocks), not with the row length.
template <class Acc>
struct Cascade {
  using State = typename Acc::State;
  State level[64];
  CascadeOrder order;

  void push(State s) {
    const int l = order.push([&](int k) { s = Acc::merge(level[k], s); });
    level[l] = s;
  }
  State total() const {
    if (!order.used) return Acc::init();
    State r;
    order.total([&](int k) { r = level[k]; }, [&](int k) { r = Acc::merge(level[k], r); });
    return r;
  }
};

// Loads and stores of a row stored as S, as vectors of V: V's own type directly; 16-bit
// storage (Half, BFloat16) through the tier's conversions in registers, its tails through
// a small buffer (masked 16-bit moves would need AVX512BW, which the avx512 tier does not
// require).
template <class V, class S, bool = std::is_same<typename V::T, S>::value>
struct Io {
  using R = typename V::reg;
  using M = typename V::mask;
  static R loadu(const S* p) { return V::loadu(p); }
  static void storeu(S* p, R v) { V::storeu(p, v); }
  static void stream(S* p, R v) { V::stream(p, v); }
  static R load_tail(const S* p, std::size_t, M m) { return V::load_tail(p, m); }
  static void store_tail(S* p, R v, std::size_t, M m) { V::store_tail(p, v, m); }
};
template <class V, class S>
struct Io<V, S, false> {
  using R = typename V::reg;
  using M = typename V::mask;
  static R loadu(const S* p) { return V::load16(p); }
  static void storeu(S* p, R v) { V::store16(p, v); }
  static void stream(S* p, R v) { V::stream16(p, v); }
  static R load_tail(const S* p, std::size_t k, M) {
    S buf[V::N] = {};
    std::memcpy(buf, p, k * sizeof(S));
    return V::load16(buf);
  }
  static void store_tail(S* p, R v, std::size_t k, M) {
    S buf[V::N];
    V::store16(buf, v);
    std::memcpy(p, buf, k * sizeof(S));
  }
};

// Softmax with float16/bfloat16 results: an exp accurate to what a 16-bit result keeps
// (tools/derive_exp_16.py): one ln2 constant and degree 3, e^t ~ 1 + t*(c1 + t*(c2 + t*c3)).
// Relative error <= 2^-13.25 against e^(x + n*kMinusLn2) for every 16-bit input of the fast
// path; the single constant makes each exp of a row off by e^(n*(LN2 - ln2)), a factor that
// the two passes share, so only the differences of n within a row are left (<= 2^-23 for any
// element that a 16-bit result can show). A softmax result is then within 2 x 2^-13.25 plus
// float32's rounding of the exact value: under half of float16's ulp, a twentieth of bfloat16's.
struct Exp16 {
  static constexpr float kMinusLn2 = -0x1.62E430p-1f;
  static constexpr int kDegree = 3;
  static constexpr float kPoly[kDegree] = {0x1.524572p-3f, 0x1.022066p-1f, 0x1.000cfap+0f};
};

// V: the tier's vector of the compute type T; S: the storage type of x and y (T itself,
// or a 16-bit type computed in float32).
// kExp16: the passes of softmax with 16-bit storage S, over Exp16 (primitives() hands
// softmax.cpp that table for op softmax); the statistics API and log-softmax keep float32's exp.
template <class V, class S = typename V::T, bool kExp16 = false>
struct Passes {
  using T = typename V::T;
  using IO = Io<V, S>;
  using R = typename V::reg;
  using M = typename V::mask;
  using C = Constants<T>;
  static_assert(!kExp16 || (sizeof(S) == 2 && std::is_same<T, float>::value), "Exp16 is for 16-bit storage");
  static constexpr std::size_t N = V::N;
  static constexpr std::size_t A = V::kAccumulators;  // independent accumulators
  static constexpr std::size_t U = N * A;              // elements per unrolled step
  static constexpr std::size_t B = U * 16;             // elements per cascade block

  // ---- exp building blocks --------------------------------------------------------

  // x = n*ln2 + t, n integral, |t| <= ln2/2 (Cody-Waite; fma keeps n*ln2_hi exact).
  // n is rounded by adding and subtracting 1.5*2^(mantissa bits): one fma and one sub,
  // cheaper than a round instruction (2 uops on Intel), and exact for |n| < 2^22 (f32) --
  // which holds on the whole fast path (clamped at kLow below; any |n| > kMaxRowExponent
  // sends the row to the exact path, and garbage there stays huge, NaN or inf).
  template <bool kExp = kExp16>
  static R reduce(R x, R& t) {
    const R bias = V::set1(C::kRoundBias);
    const R n = V::sub(V::fmadd(x, V::set1(C::kLog2e), bias), bias);
    if constexpr (kExp) {
      t = V::fmadd(n, V::set1(Exp16::kMinusLn2), x);
    } else {
      t = V::fmadd(n, V::set1(C::kMinusLn2Hi), x);
      t = V::fmadd(n, V::set1(C::kMinusLn2Lo), t);
    }
    return n;
  }
  // e^t for |t| <= ln2/2, the mantissa of ExtExp (in [0.7, 1.42]).
  template <bool kExp = kExp16>
  static R mantissa(R t) {
    using E = std::conditional_t<kExp, Exp16, C>;
    R p = V::set1(E::kPoly[0]);
    for (int k = 1; k < E::kDegree; ++k) p = V::fmadd(p, t, V::set1(E::kPoly[k]));
    return V::fmadd(p, t, V::set1(T(1)));
  }

  static constexpr bool kTableExp = std::is_same<T, double>::value && HasTableExp<V>::value;

  // e^x = m * 2^floor(n) (scalef's rounding of the exponent). n is integral for the
  // polynomial scheme and a multiple of 1/16 for the table scheme (m in [0.98, 1.97]).
  template <bool kExp = kExp16>
  static R exp_parts(R x, R& m) {
    if constexpr (kTableExp) {
      const R bias = V::set1(TableExp::kRoundBias);
      const R k = V::fmadd(x, V::set1(C::kLog2e), bias);
      const R n = V::sub(k, bias);
      R t = V::fmadd(n, V::set1(C::kMinusLn2Hi), x);  // exact: |t| < 2^-5 on a 2^-33 grid
      t = V::fmadd(n, V::set1(C::kMinusLn2Lo), t);
      const R scale = V::lookup16(TableExp::kTable, k);
      R p = V::set1(TableExp::kPoly[0]);
      for (int i = 1; i < TableExp::kDegree - 1; ++i) p = V::fmadd(p, t, V::set1(TableExp::kPoly[i]));
      p = V::fmadd(p, t, V::set1(T(1)));
      const R correction = V::lookup16(TableExp::kCorrection, k);
      m = V::fmadd(scale, V::fmadd(t, p, correction), scale);  // 2^(j/16) (1 + t p(t)), rounded once at the end
      return n;
    } else {
      R t;
      const R n = reduce<kExp>(x, t);
      m = mantissa<kExp>(t);
      return n;
    }
  }
  // A pair accumulator's exponent must be integral (the difference of two exponents is
  // floored by scale): the table scheme's common exponent is floored once per group.
  static R integral_exponent(R e) {
    if constexpr (kTableExp) return V::floor(e);
    else return e;
  }
  // e^(x - mu) for x <= mu (the three-pass and online algorithms).
  template <bool kExp = kExp16>
  static R exp_shifted(R x, R mu) {
    const R z = V::max(V::set1(C::kLow), V::sub(x, mu));  // NaN-preserving: x86 max returns its 2nd operand on NaN
    R m;
    const R n = exp_parts<kExp>(z, m);
    return V::scale(m, n);
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
  // Updated a group of A vectors at a time: one common exponent per group, so the
  // accumulator is rescaled once per A vectors instead of once per vector.
  struct PairAcc {
    static constexpr bool kGrouped = true;
    struct State { R m, e; };
    static State init() { return {V::set1(T(0)), V::set1(C::kInitExponent)}; }
    void update_group(State& s, const R* v) const {
      R n[A], p[A];
      for (std::size_t a = 0; a < A; ++a) n[a] = exp_parts(V::max(V::set1(C::kLow), v[a]), p[a]);  // NaN-preserving clamp
      R e = s.e;
      for (std::size_t a = 0; a < A; ++a) e = V::max(e, n[a]);
      e = integral_exponent(e);
      R m = V::scale(s.m, V::sub(s.e, e));
      for (std::size_t a = 0; a < A; ++a) m = V::scale_add(p[a], V::sub(n[a], e), m);
      s = {m, e};
    }
    R update(State& s, R x) const {  // one vector (row tails)
      R m;
      const R n = exp_parts(V::max(V::set1(C::kLow), x), m);
      const R e = integral_exponent(V::max(s.e, n));
      s.m = V::scale_add(m, V::sub(n, e), V::scale(s.m, V::sub(s.e, e)));
      s.e = e;
      return x;
    }
    static State merge(State a, State b) {
      const R e = V::max(a.e, b.e);
      return {V::scale_add(a.m, V::sub(a.e, e), V::scale(b.m, V::sub(b.e, e))), e};
    }
  };

  // Milakov & Gimelshein: running max and the sum rescaled to it by a real exp -- float32's
  // exp even for Exp16: every rise of the max multiplies the sum by one more rescaling exp.
  struct OnlineAcc {
    struct State { R mx, s; };
    static State init() { return {V::set1(C::kLow), V::set1(T(0))}; }
    R update(State& st, R x) const {
      const R xc = V::max(V::set1(C::kLow), x);
      const R mx = V::max(st.mx, xc);
      st.s = V::fmadd(st.s, exp_shifted<false>(st.mx, mx), exp_shifted<false>(xc, mx));
      st.mx = mx;
      return x;
    }
    static State merge(State a, State b) {
      const R mx = V::max(a.mx, b.mx);
      return {mx, V::fmadd(a.s, exp_shifted<false>(a.mx, mx), V::mul(b.s, exp_shifted<false>(b.mx, mx)))};
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

  // Software prefetch kPrefetchBytes ahead, one per cache line of the coming `count`
  // elements: the exp arithmetic slows the loop enough that the hardware prefetcher
  // alone leaves the loads of an out-of-cache row exposed.
  static constexpr std::size_t kPrefetchBytes = FASTSOFTMAX_PREFETCH_BYTES;
  static bool prefetch_for(std::size_t n) {
    return kPrefetchBytes > 0 && n >= prefetch_min_elements_setting.load(std::memory_order_relaxed);
  }
  template <class E>
  static void prefetch_ahead(const E* p, std::size_t count) {
    if constexpr (kPrefetchBytes > 0) {
      const char* c = reinterpret_cast<const char*>(p) + kPrefetchBytes;
      for (std::size_t b = 0; b < count * sizeof(E); b += 64) V::prefetch(c + b);
    }
  }

  // One block of `count` elements (multiple of U) into A independent states.
  template <class Acc, class = void>
  struct IsGrouped { static constexpr bool value = false; };
  template <class Acc>
  struct IsGrouped<Acc, decltype(void(Acc::kGrouped))> { static constexpr bool value = Acc::kGrouped; };

  // ((s0 + s1) + (s2 + s3)) ...: a pairwise tree written as a template, so that the states
  // stay in registers (as a loop, GCC kept them on the stack and short rows paid a
  // store-forwarding chain per block).
  static_assert((A & (A - 1)) == 0, "merge_tree keeps the loop's pairing only for powers of two");
  template <class Acc, std::size_t K>
  static typename Acc::State merge_tree(const typename Acc::State* s) {
    if constexpr (K == 1) return s[0];
    else return Acc::merge(merge_tree<Acc, K / 2>(s), merge_tree<Acc, K - K / 2>(s + K / 2));
  }

  template <class Acc, bool kCheck, bool kStore>
  static typename Acc::State block(const Acc& acc, const S* x, T* y, std::size_t count, M& bad, bool pf) {
    if constexpr (IsGrouped<Acc>::value) {
      static_assert(!kCheck && !kStore, "grouped accumulators neither check nor store");
      // Two states, alternating groups of A vectors, for two independent dependency chains.
      typename Acc::State s0 = Acc::init(), s1 = Acc::init();
      std::size_t j = 0;
      for (; j + 2 * U <= count; j += 2 * U) {
        R v[A], w[A];
        if (pf) prefetch_ahead(x + j, 2 * U);
        for (std::size_t a = 0; a < A; ++a) v[a] = IO::loadu(x + j + a * N);
        for (std::size_t a = 0; a < A; ++a) w[a] = IO::loadu(x + j + U + a * N);
        acc.update_group(s0, v);
        acc.update_group(s1, w);
      }
      if (j < count) {
        R v[A];
        for (std::size_t a = 0; a < A; ++a) v[a] = IO::loadu(x + j + a * N);
        acc.update_group(s0, v);
      }
      (void)y;
      (void)bad;
      return Acc::merge(s0, s1);
    }
    typename Acc::State s[A];
    for (std::size_t a = 0; a < A; ++a) s[a] = Acc::init();
    const R high = V::set1(C::kHigh);
    for (std::size_t j = 0; j < count; j += U) {
      if (pf) prefetch_ahead(x + j, U);
      for (std::size_t a = 0; a < A; ++a) {
        const R v = IO::loadu(x + j + a * N);
        if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
        const R out = acc.update(s[a], v);
        if (kStore) V::storeu(y + j + a * N, out);
      }
    }
    return merge_tree<Acc, A>(s);
  }

  // The last partial block: whole vectors, then one masked vector padded with kLow
  // (which contributes nothing to any accumulator).
  template <class Acc, bool kCheck, bool kStore>
  static typename Acc::State partial_block(const Acc& acc, const S* x, T* y, std::size_t count, M& bad, bool pf) {
    const std::size_t whole = count / U * U;
    typename Acc::State s = whole ? block<Acc, kCheck, kStore>(acc, x, y, whole, bad, pf) : Acc::init();
    const R high = V::set1(C::kHigh);
    std::size_t i = whole;
    for (; i + N <= count; i += N) {
      const R v = IO::loadu(x + i);
      if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
      const R out = acc.update(s, v);
      if (kStore) V::storeu(y + i, out);
    }
    if (i < count) {
      const M m = V::tail_mask(count - i);
      const R v = V::select(m, IO::load_tail(x + i, count - i, m), V::set1(C::kLow));
      if (kCheck) bad = V::mask_or(bad, V::above_or_nan(v, high));
      const R out = acc.update(s, v);
      if (kStore) V::store_tail(y + i, out, m);
    }
    return s;
  }

  template <class Acc, bool kCheck, bool kStore = false>
  static typename Acc::State reduce_row(const Acc& acc, std::size_t n, const S* x, T* y, bool& bad_out) {
    M bad = V::mask_none();
    const bool pf = prefetch_for(n);
    if (n <= B) {  // one block: no cascade (short rows are common and per-row cost shows there)
      const typename Acc::State s = partial_block<Acc, kCheck, kStore>(acc, x, y, n, bad, pf);
      bad_out = V::mask_any(bad);
      return s;
    }
    Cascade<Acc> cascade;
    std::size_t i = 0;
    for (; i + B <= n; i += B) cascade.push(block<Acc, kCheck, kStore>(acc, x + i, y + i, B, bad, pf));
    if (i < n) cascade.push(partial_block<Acc, kCheck, kStore>(acc, x + i, y + i, n - i, bad, pf));
    bad_out = V::mask_any(bad);
    return cascade.total();
  }

  // y[i] = f(x[i]); unrolled by A, then whole vectors, then one masked vector.
  // In, Out: storage types of x and y (S, or T for the reload buffer).
  template <class In, class Out, class F>
  static void map_row(std::size_t n, const In* x, Out* y, F f) {
    std::size_t i = 0;
    const bool pf = prefetch_for(n);
    for (; i + U <= n; i += U) {
      R v[A];
      if (pf) prefetch_ahead(x + i, U);
      for (std::size_t a = 0; a < A; ++a) v[a] = Io<V, In>::loadu(x + i + a * N);
      for (std::size_t a = 0; a < A; ++a) Io<V, Out>::storeu(y + i + a * N, f(v[a]));
    }
    map_tail(i, n, x, y, f);
  }
  template <class In, class Out, class F>
  static void map_tail(std::size_t i, std::size_t n, const In* x, Out* y, F f) {
    for (; i + N <= n; i += N) Io<V, Out>::storeu(y + i, f(Io<V, In>::loadu(x + i)));
    if (i < n) {
      const M m = V::tail_mask(n - i);
      Io<V, Out>::store_tail(y + i, f(Io<V, In>::load_tail(x + i, n - i, m)), n - i, m);
    }
  }

  // The final write pass of every algorithm. For rows whose output cannot stay in the
  // last-level cache (stream = true, decided per row by the caller from the cache sizes),
  // non-temporal stores skip the read-for-ownership of y: 2R+1W moves 12 instead of 16
  // bytes per float. In cache they would be several times slower.
  template <class In, class Out, class F>
  static void write_row(std::size_t n, const In* x, Out* y, bool stream, F f) {
    const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(y);
    if (N == 1 || !stream || addr % sizeof(Out) != 0) return map_row(n, x, y, f);
    // Head: up to the first vector-aligned element of y, with masked stores.
    std::size_t head = (N - (addr / sizeof(Out)) % N) % N;
    if (head > n) head = n;
    if (head) {
      const M m = V::tail_mask(head);
      Io<V, Out>::store_tail(y, f(Io<V, In>::load_tail(x, head, m)), head, m);
    }
    std::size_t i = head;
    const bool pf = prefetch_for(n);
    for (; i + U <= n; i += U) {
      R v[A];
      if (pf) prefetch_ahead(x + i, U);
      for (std::size_t a = 0; a < A; ++a) v[a] = Io<V, In>::loadu(x + i + a * N);
      for (std::size_t a = 0; a < A; ++a) Io<V, Out>::stream(y + i + a * N, f(v[a]));
    }
    V::stream_fence();
    map_tail(i, n, x, y, f);
  }

  // ---- row statistics ---------------------------------------------------------------

  struct PairSum { T m, e; };
  static PairSum pair_sum(std::size_t n, const S* x) {
    bool unused;
    const typename PairAcc::State s = reduce_row<PairAcc, false>(PairAcc{}, n, x, nullptr, unused);
    const T e = V::reduce_max(s.e);
    const T m = V::reduce_add(V::scale(s.m, V::sub(s.e, V::set1(e))));
    return {m, e};
  }

  struct MaxSum { T mu, sigma; };
  static T sum_exp(std::size_t n, const S* x, T mu) {
    bool unused;
    return V::reduce_add(reduce_row<SumExpAcc<false>, false>({V::set1(mu)}, n, x, nullptr, unused));
  }
  static MaxSum online_sum(std::size_t n, const S* x) {
    bool unused;
    const typename OnlineAcc::State s = reduce_row<OnlineAcc, false>(OnlineAcc{}, n, x, nullptr, unused);
    const T mu = V::reduce_max(s.mx);
    const T sigma = V::reduce_add(V::mul(s.s, exp_shifted<false>(s.mx, V::set1(mu))));
    return {mu, sigma};
  }


  // ---- exact path (rows outside the fast range), SciPy's semantics -------------------

  static void exact_row(std::size_t n, const S* x, S* y, bool log) {
    using L = long double;
    using St = Storage<S>;
    const S nan = St::narrow(std::numeric_limits<L>::quiet_NaN());
    L mu = -std::numeric_limits<L>::infinity();
    bool any_nan = false;
    for (std::size_t i = 0; i < n; ++i) {
      const L v = St::widen(x[i]);
      if (v != v) any_nan = true;
      else if (v > mu) mu = v;
    }
    if (any_nan || (!log && !(std::fabs(mu) < std::numeric_limits<L>::infinity()))) {
      for (std::size_t i = 0; i < n; ++i) y[i] = nan;  // NaN in, or max = +-inf (inf - inf)
      return;
    }
    if (!(std::fabs(mu) < std::numeric_limits<L>::infinity())) mu = 0;  // SciPy's log_softmax
    L sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += std::exp(St::widen(x[i]) - mu);
    if (log) {
      const L log_sum = std::log(sum);
      for (std::size_t i = 0; i < n; ++i) y[i] = St::narrow((St::widen(x[i]) - mu) - log_sum);
    } else {
      const L inv = L(1) / sum;
      for (std::size_t i = 0; i < n; ++i) y[i] = St::narrow(std::exp(St::widen(x[i]) - mu) * inv);
    }
  }

  // ---- chunk primitives --------------------------------------------------------------
  // softmax.cpp composes these into the four algorithms, over a whole row or over
  // fixed-size chunks of one (merged exactly, so threads can share a row). Each works on
  // [x, x + n) / [y, y + n) alone.

  static void prim_pair_sum(std::size_t n, const S* x, T* m, T* e) {
    const PairSum s = pair_sum(n, x);
    *m = s.m;
    *e = s.e;
  }
  static void prim_online_sum(std::size_t n, const S* x, T* mu, T* sigma) {
    const MaxSum s = online_sum(n, x);
    *mu = s.mu;
    *sigma = s.sigma;
  }
  // True when the chunk needs the exact path (NaN, +inf or beyond kHigh).
  static bool prim_max(std::size_t n, const S* x, T* mu) {
    bool bad;
    *mu = V::reduce_max(reduce_row<MaxAcc, true>(MaxAcc{}, n, x, nullptr, bad));
    return bad;
  }
  static T prim_sum_exp(std::size_t n, const S* x, T mu) { return sum_exp(n, x, mu); }
  static T prim_store_exp(std::size_t n, const S* x, T* w, T mu) {  // w = e^(x-mu); sum
    bool unused;
    return V::reduce_add(reduce_row<SumExpAcc<false>, false, true>({V::set1(mu)}, n, x, w, unused));
  }
  static T prim_store_shifted(std::size_t n, const S* x, T* w, T mu) {  // w = x-mu; sum e^(x-mu)
    bool unused;
    return V::reduce_add(reduce_row<SumExpAcc<true>, false, true>({V::set1(mu)}, n, x, w, unused));
  }
  static void prim_write_pair(std::size_t n, const S* x, S* y, T inv_m, T e, bool stream) {
    const R inv = V::set1(inv_m), e_sum = V::set1(e), low = V::set1(C::kLow);
    write_row(n, x, y, stream, [=](R v) {
      R m;
      const R nv = exp_parts(V::max(low, v), m);
      return V::scale(V::mul(m, inv), V::sub(nv, e_sum));  // e_sum integral: floor(nv - e_sum) = floor(nv) - e_sum
    });
  }
  static void prim_write_exp_scaled(std::size_t n, const S* x, S* y, T mu, T inv, bool stream) {
    const R muv = V::set1(mu), invv = V::set1(inv);
    write_row(n, x, y, stream, [=](R v) { return V::mul(exp_shifted(v, muv), invv); });
  }
  static void prim_write_sub(std::size_t n, const S* x, S* y, T c, bool stream) {
    const R cv = V::set1(c);
    write_row(n, x, y, stream, [cv](R v) { return V::sub(v, cv); });
  }
  static void prim_reload_scale(std::size_t n, const T* w, S* y, T inv, bool stream) {
    const R invv = V::set1(inv);
    write_row(n, w, y, stream, [invv](R v) { return V::mul(v, invv); });
  }
  static void prim_reload_sub(std::size_t n, const T* w, S* y, T c, bool stream) {
    const R cv = V::set1(c);
    write_row(n, w, y, stream, [cv](R v) { return V::sub(v, cv); });
  }

  // ---- three-pass over the columns of a tile (softmax along a non-last axis) ---------
  // Rows that are the columns of a C-order block -- element i of row c at byte offset
  // i * xs + c * sizeof(T) -- computed with each vector across N neighbouring columns, so
  // nothing is transposed. Every column gets bitwise what the row kernels give the same
  // row laid out contiguously: the max and the elementwise passes work lane by lane, and
  // the sum of e^(x - mu) is formed in the row kernels' order -- one memory slot per lane l
  // of accumulator a of `block` (the elements i = a*N + l mod U of each block of B), the
  // slots merged by block's merge_tree, the blocks in Cascade's order, the lanes by
  // reduce_add's halving tree (every tier's reduce_add adds lane l + N/2 to lane l, then
  // l + N/4, ...). A strip of N columns occupies one vector per axis position; a group
  // of up to kColumnStrips strips is walked together (one page visit serves all of them).
  static constexpr std::size_t kColumnStrips = N * sizeof(T) >= 512 ? 1 : 512 / (N * sizeof(T));
  static constexpr std::size_t kColumnPrefetch = 16;  // axis positions ahead, passes 1 and 3
  // Bound on a group's copy (rows.h picks the strips): on the EPYC (1 MiB L2), (1, 3072,
  // 1024) float32 ran at 0.25 ns/element with 8 strips (1.5 MiB), 0.30 with 5 (1 MiB) and
  // 0.42 with 2 -- wide groups pay more than a copy that stays in L2.
  static constexpr std::size_t kColumnCopyBytes = std::size_t{1} << 21;

  struct ColumnWalk {
    std::size_t n, strips;  // axis length; strips of N columns (1..kColumnStrips)
    T* x;  // the group's copy: axis position i, strip g at x[(i * strips + g) * N]
    R mu[kColumnStrips];
    T* slot;   // U * strips vectors: accumulator slots of one block (slot_at)
    T* level;  // cascade levels, N * strips vectors each
    T* lanes;  // N * strips vectors: the state being merged

    T* xp(std::size_t i, std::size_t g) const { return x + (i * strips + g) * N; }
    // e^(x - mu) at (i, strip g); reload keeps it (or x - mu for log_softmax) in place of x.
    template <bool kStore, bool kShifted>
    R exp_at(std::size_t i, std::size_t g) const {
      const R v = V::loadu(xp(i, g));
      const R e = exp_shifted(v, mu[g]);
      if (kStore) V::storeu(xp(i, g), kShifted ? V::sub(v, mu[g]) : e);
      return e;
    }
    // Accumulator a, lane l, strip g: the A accumulators of a lane side by side, so that
    // block's own merge_tree takes them as its array of states.
    R* slot_at(std::size_t a, std::size_t l, std::size_t g) const {
      return reinterpret_cast<R*>(slot) + (l * strips + g) * A + a;
    }
    // `block` over count (a multiple of U) elements from i0: out[l * strips + g].
    template <bool kStore, bool kShifted>
    void block(std::size_t i0, std::size_t count, R* out) const {
      for (std::size_t k = 0; k < U * strips; ++k) reinterpret_cast<R*>(slot)[k] = V::set1(T(0));
      for (std::size_t j = 0; j < count; j += U)
        for (std::size_t a = 0; a < A; ++a)
          for (std::size_t l = 0; l < N; ++l)
            for (std::size_t g = 0; g < strips; ++g) {
              R* s = slot_at(a, l, g);
              *s = V::add(*s, exp_at<kStore, kShifted>(i0 + j + a * N + l, g));
            }
      for (std::size_t l = 0; l < N; ++l)
        for (std::size_t g = 0; g < strips; ++g) out[l * strips + g] = merge_tree<SumExpAcc<false>, A>(slot_at(0, l, g));
    }
    // `partial_block`: whole blocks of U, then single vectors (lane l takes element i + l),
    // then the tail (its padding adds e^(kLow - mu) = +0, which changes nothing).
    template <bool kStore, bool kShifted>
    void partial_block(std::size_t i0, std::size_t count, R* out) const {
      const std::size_t whole = count / U * U;
      if (whole) {
        block<kStore, kShifted>(i0, whole, out);
      } else {
        for (std::size_t k = 0; k < N * strips; ++k) out[k] = V::set1(T(0));
      }
      for (std::size_t i = whole; i < count; i += N)
        for (std::size_t l = 0; l < N && i + l < count; ++l)
          for (std::size_t g = 0; g < strips; ++g)
            out[l * strips + g] = V::add(out[l * strips + g], exp_at<kStore, kShifted>(i0 + i + l, g));
    }
    // reduce_row<SumExpAcc> and reduce_add: the sum of each column, one vector per strip.
    template <bool kStore, bool kShifted>
    void sums(R* sigma) const {
      const std::size_t w = N * strips;
      R* tmp = reinterpret_cast<R*>(lanes);
      if (n <= B) {
        partial_block<kStore, kShifted>(0, n, tmp);
      } else {  // Cascade's order, on whole lane sets
        CascadeOrder order;
        const auto lvl = [this, w](int l) { return reinterpret_cast<R*>(level) + std::size_t(l) * w; };
        const auto fold_into = [w](R* into, const R* from) {
          for (std::size_t k = 0; k < w; ++k) into[k] = V::add(from[k], into[k]);
        };
        const auto push = [&](R* st) {
          const int l = order.push([&](int k) { fold_into(st, lvl(k)); });
          std::memcpy(static_cast<void*>(lvl(l)), st, w * sizeof(R));
        };
        std::size_t i = 0;
        for (; i + B <= n; i += B) {
          block<kStore, kShifted>(i, B, tmp);
          push(tmp);
        }
        if (i < n) {
          partial_block<kStore, kShifted>(i, n - i, tmp);
          push(tmp);
        }
        order.total([&](int k) { std::memcpy(static_cast<void*>(tmp), lvl(k), w * sizeof(R)); },
                    [&](int k) { fold_into(tmp, lvl(k)); });
      }
      for (std::size_t half = N / 2; half >= 1; half /= 2)
        for (std::size_t l = 0; l < half; ++l)
          for (std::size_t g = 0; g < strips; ++g) tmp[l * strips + g] = V::add(tmp[l * strips + g], tmp[(l + half) * strips + g]);
      for (std::size_t g = 0; g < strips; ++g) sigma[g] = tmp[g];
    }
  };

  // Scratch bytes of a call over `strips` strips of n-long columns (see below).
  static std::size_t column_levels(std::size_t n) {
    return 66 - std::size_t(__builtin_clzll(n / B + 1));  // bit width of the block count + 1
  }
  static std::size_t column_scratch_bytes(std::size_t n, std::size_t strips) {
    const std::size_t copy = n * strips, slots = U * strips, level = (column_levels(n) + 1) * N * strips;  // vectors
    return (copy + slots + level) * sizeof(R);
  }

  // Three-pass softmax / log_softmax of the strips * N columns (n <= kChunk: one chunk, as
  // the row kernels see such rows). Pass 1 reads the columns once from x (max, range
  // check) into a contiguous copy -- x's rows are usually a multiple of 4 KiB apart, and
  // walked in place they would all fall into a few cache sets -- so that passes 2 and 3
  // run in cache and x and y are each touched once. Returns false, having written
  // nothing, when a column needs the exact path (NaN, +inf, |x| beyond kHigh, or a max
  // below -kHigh). scratch: column_scratch_bytes(n, strips) bytes, 64-byte aligned (the
  // thread's scratch block, allocated before the call wrote anything: rows.h).
  static bool prim_three_pass_columns(std::size_t n, const void* xv, std::int64_t xs, void* yv, std::int64_t ys,
                                      std::size_t strips, bool log, bool reload, void* scratch_bytes) {
    if constexpr (!std::is_same<S, T>::value) {
      return false;
    } else {
      const std::size_t levels = column_levels(n);
      const std::size_t copy = n * strips, slots = U * strips;  // vectors
      T* scratch = static_cast<T*>(scratch_bytes);
      ColumnWalk c;
      c.n = n;
      c.strips = strips;
      c.x = scratch;
      c.slot = scratch + copy * N;
      c.level = scratch + (copy + slots) * N;
      c.lanes = c.level + levels * N * strips * N;
      const char* x = static_cast<const char*>(xv);
      char* y = static_cast<char*>(yv);
      // Pass 1: the copy, the max and the range check (MaxAcc: max from kLow, in any order).
      M bad = V::mask_none();
      const R high = V::set1(C::kHigh);
      for (std::size_t g = 0; g < strips; ++g) c.mu[g] = V::set1(C::kLow);
      for (std::size_t i = 0; i < n; ++i) {
        const T* xi = reinterpret_cast<const T*>(x + std::int64_t(i) * xs);
        if (i + kColumnPrefetch < n)
          for (std::size_t b = 0; b < strips * N * sizeof(T); b += 64)
            V::prefetch(x + std::int64_t(i + kColumnPrefetch) * xs + std::int64_t(b));
        for (std::size_t g = 0; g < strips; ++g) {
          const R v = V::loadu(xi + g * N);
          V::storeu(c.xp(i, g), v);
          bad = V::mask_or(bad, V::above_or_nan(v, high));
          c.mu[g] = V::max(c.mu[g], v);
        }
      }
      for (std::size_t g = 0; g < strips; ++g) bad = V::mask_or(bad, V::above_or_nan(V::set1(-C::kHigh), c.mu[g]));
      if (V::mask_any(bad)) return false;
      // Pass 2: the sums (reload also keeps e^(x - mu), or x - mu, in the copy).
      R sigma[kColumnStrips];
      if (!reload) c.template sums<false, false>(sigma);
      else if (log) c.template sums<true, true>(sigma);
      else c.template sums<true, false>(sigma);
      // Per column, the row runner's scalar glue: the one chunk's sum in double (three_pass),
      // then the last pass's constant.
      alignas(64) T col_mu[kColumnStrips * N], col_sigma[kColumnStrips * N], col_c[kColumnStrips * N];
      for (std::size_t g = 0; g < strips; ++g) {
        V::storeu(col_mu + g * N, c.mu[g]);
        V::storeu(col_sigma + g * N, sigma[g]);
      }
      for (std::size_t k = 0; k < strips * N; ++k) {
        double sum = 0;
        sum += double(col_sigma[k]);
        col_c[k] = three_pass_constant(log, reload, col_mu[k], sum);
      }
      R cv[kColumnStrips];
      for (std::size_t g = 0; g < strips; ++g) cv[g] = V::loadu(col_c + g * N);
      // Pass 3: reload_scale / reload_sub, or write_exp_scaled / write_sub, into y.
      for (std::size_t i = 0; i < n; ++i) {
        T* yi = reinterpret_cast<T*>(y + std::int64_t(i) * ys);
        if (i + kColumnPrefetch < n)  // for writing: y's lines are far apart too
          for (std::size_t b = 0; b < strips * N * sizeof(T); b += 64)
            __builtin_prefetch(y + std::int64_t(i + kColumnPrefetch) * ys + std::int64_t(b), 1);
        for (std::size_t g = 0; g < strips; ++g) {
          const R v = V::loadu(c.xp(i, g));
          R out;
          if (reload) out = log ? V::sub(v, cv[g]) : V::mul(v, cv[g]);
          else out = log ? V::sub(v, cv[g]) : V::mul(exp_shifted(v, c.mu[g]), cv[g]);
          V::storeu(yi + g * N, out);
        }
      }
      return true;
    }
  }

  // The same primitives as direct calls, for the short-row loop inside the tier.
  struct Direct {
    static void pair_sum(std::size_t n, const S* x, T* m, T* e) { prim_pair_sum(n, x, m, e); }
    static void online_sum(std::size_t n, const S* x, T* mu, T* s) { prim_online_sum(n, x, mu, s); }
    static bool max(std::size_t n, const S* x, T* mu) { return prim_max(n, x, mu); }
    static T sum_exp(std::size_t n, const S* x, T mu) { return prim_sum_exp(n, x, mu); }
    static T store_exp(std::size_t n, const S* x, T* w, T mu) { return prim_store_exp(n, x, w, mu); }
    static T store_shifted(std::size_t n, const S* x, T* w, T mu) { return prim_store_shifted(n, x, w, mu); }
    static void write_pair(std::size_t n, const S* x, S* y, T inv, T e, bool st) { prim_write_pair(n, x, y, inv, e, st); }
    static void write_exp_scaled(std::size_t n, const S* x, S* y, T mu, T inv, bool st) {
      prim_write_exp_scaled(n, x, y, mu, inv, st);
    }
    static void write_sub(std::size_t n, const S* x, S* y, T c, bool st) { prim_write_sub(n, x, y, c, st); }
    static void reload_scale(std::size_t n, const T* w, S* y, T inv, bool st) { prim_reload_scale(n, w, y, inv, st); }
    static void reload_sub(std::size_t n, const T* w, S* y, T c, bool st) { prim_reload_sub(n, w, y, c, st); }
    static void exact_row(std::size_t n, const S* x, S* y, bool log) { Passes::exact_row(n, x, y, log); }
  };
  // float32 tiles of non-last-axis rows move in 8x8 register transposes where the tier has one.
  template <class W, class = void>
  struct Transposer : NoBlockTranspose {};
  template <class W>
  struct Transposer<W, decltype(void(&W::transpose8x8))> {
    static constexpr std::size_t kBlock = std::is_same<S, float>::value ? 8 : 0;
    __attribute__((always_inline)) static void transpose(const void* s, std::int64_t ss, void* d, std::int64_t ds) {
      W::transpose8x8(s, ss, d, ds);
    }
  };
  // The tile walk's layout hooks (rows.h, for_rows): block transposes, and the column
  // kernel where S is the compute type.
  struct Layout : Transposer<V> {
    static constexpr std::size_t kColumnWidth = std::is_same<S, T>::value ? N : 0;  // columns per strip
    static constexpr std::size_t kColumnStrips = Passes::kColumnStrips;
    static constexpr std::size_t kColumnCopyBytes = Passes::kColumnCopyBytes;
    static bool three_pass_columns(std::size_t n, const void* x, std::int64_t xs, void* y, std::int64_t ys,
                                   std::size_t strips, bool log, bool reload, void* scratch) {
      return prim_three_pass_columns(n, x, xs, y, ys, strips, log, reload, scratch);
    }
    static std::size_t column_scratch_bytes(std::size_t n, std::size_t strips) {
      return Passes::column_scratch_bytes(n, strips);
    }
  };
  static void prim_rows(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch) {
    run_short_rows<S>(Direct{}, job, r0, r1, scratch, Layout{});
  }
  static std::size_t prim_rows_scratch_bytes(const RowsJob& job) { return scratch_layout<S, Layout>(job).bytes(); }

  static const Primitives<S>& primitives() {
    static const Primitives<S> p = {&prim_pair_sum,      &prim_online_sum,       &prim_max,
                                    &prim_sum_exp,       &prim_store_exp,        &prim_store_shifted,
                                    &prim_write_pair,    &prim_write_exp_scaled, &prim_write_sub,
                                    &prim_reload_scale,  &prim_reload_sub,       &exact_row,
                                    &prim_rows,          &prim_rows_scratch_bytes, softmax_table(&p)};
    return p;
  }
  static const Primitives<S>* softmax_table(const Primitives<S>* self) {
    if constexpr (sizeof(S) == 2 && !kExp16) return &Passes<V, S, true>::primitives();
    else return self;
  }

  // ---- memory-only patterns (the roofline) -------------------------------------------

  struct SumAcc {
    using State = R;
    static State init() { return V::set1(T(0)); }
    R update(State& s, R x) const { s = V::add(s, x); return x; }
    static State merge(State a, State b) { return V::add(a, b); }
  };
  static double read_pass(std::size_t n, const S* x) {
    bool unused;
    return double(V::reduce_add(reduce_row<SumAcc, false>(SumAcc{}, n, x, nullptr, unused)));
  }
  // The last write of each pattern goes through write_row, as in the real kernels.
  static void scale_pass(std::size_t n, const S* x, S* y, T c, bool last) {
    const R cv = V::set1(c);
    const auto f = [cv](R v) { return V::mul(v, cv); };
    if (last) write_row(n, x, y, n * sizeof(S) >= streaming_threshold_bytes(), f);
    else map_row(n, x, y, f);
  }
  static double pattern_read(std::size_t n, const void* x, void*) { return read_pass(n, static_cast<const S*>(x)); }
  static double pattern_copy(std::size_t n, const void* xv, void* yv) {
    map_row(n, static_cast<const S*>(xv), static_cast<S*>(yv), [](R v) { return v; });
    return 0;
  }
  static double pattern_two_pass(std::size_t n, const void* xv, void* yv) {  // R; R+W
    const S* x = static_cast<const S*>(xv);
    const double s = read_pass(n, x);
    scale_pass(n, x, static_cast<S*>(yv), s == 0 ? T(1) : T(0.5), true);
    return 0;
  }
  // R; R+W; R+W (for 16-bit storage the real algorithm keeps its middle row in float32,
  // so this pattern is a lower bound for it).
  static double pattern_three_pass_reload(std::size_t n, const void* xv, void* yv) {
    const S* x = static_cast<const S*>(xv);
    S* y = static_cast<S*>(yv);
    const double s = read_pass(n, x);
    scale_pass(n, x, y, s == 0 ? T(1) : T(0.5), false);
    scale_pass(n, y, y, T(2), true);
    return 0;
  }
  static double pattern_three_pass_recompute(std::size_t n, const void* xv, void* yv) {  // R; R; R+W
    const S* x = static_cast<const S*>(xv);
    const double s = read_pass(n, x) + read_pass(n, x);
    scale_pass(n, x, static_cast<S*>(yv), s == 0 ? T(1) : T(0.5), true);
    return 0;
  }
  static const PatternTable& pattern_table() {
    static const PatternTable t = {
#define FASTSOFTMAX_PATTERN_PTR(pat, pat_name) &pattern_##pat,
        FASTSOFTMAX_FOR_EACH_PATTERN(FASTSOFTMAX_PATTERN_PTR)
#undef FASTSOFTMAX_PATTERN_PTR
    };
    return t;
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax

// Defines, for the current tier and one dtype of kernels.inc, the chunk primitives and the
// memory-only patterns: fastsoftmax::<tier>::<dtype>_primitives() and <dtype>_patterns().
#define FASTSOFTMAX_DEFINE_DTYPE(dt, stype)                                                     \
  const Primitives<stype>& dt##_primitives() { return Passes<Vec<compute_t<stype>>, stype>::primitives(); } \
  const PatternTable& dt##_patterns() { return Passes<Vec<compute_t<stype>>, stype>::pattern_table(); }
