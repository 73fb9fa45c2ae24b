// The exp of the fast passes, written once over a vector type V (see passes.h): the
// Cody-Waite reduction, the polynomials and their constants per compute type, and the
// float64 table scheme of tiers with a 16-entry lookup. Included by passes.h, inside the
// tier's namespace (FASTSOFTMAX_TIER).

// Once per translation unit: a unit holds one tier.
#pragma once

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including exp.h"
#endif

#include <cstddef>
#include <type_traits>

#include "kernels/primitives.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

template <class T>
struct Constants;

// float32: the p5 exp (degree-5 polynomial, the coefficients XNNPACK, oneDNN and PyTorch
// share), e^t ~ 1 + t*(c1 + t*(c2 + t*(c3 + t*(c4 + t*c5)))) on [-ln2/2, ln2/2], about 2 ULP,
// reduced with ONE ln2 constant (kMinusLn2, float's ln2): t = x - n*ln2_f. Each exp is then
// off by the factor e^(n (LN2 - ln2_f)) = e^(n * 2^-28.97). Softmax divides by a sum of
// exps carrying the same factors, so only the differences of n between a result and the
// row's large terms are left: |x_i - max x| * 2^-28.4 at most, a twentieth of the
// |x_i - max x| * 2^-24 of the accuracy bound. A logsumexp (and cross-entropy, log-softmax)
// is off by a weighted mean of n*2^-28.97, at most max|x| * 2^-28.4 absolute: a twentieth
// of the half ulp of max|x| that the input's own rounding allows. One fma per exp is saved;
// the two-pass passes are compute-bound on cores that run 512-bit vectors in halves.
template <>
struct Constants<float> {
  static constexpr float kLog2e = 0x1.715476p+0f;
  static constexpr float kRoundBias = 0x1.8p23f;
  static constexpr float kMinusLn2 = -0x1.62E430p-1f;
  static constexpr int kDegree = 5;
  // c_degree ... c1, then the constant term 1.
  static constexpr float kPoly[kDegree] = {0x1.0F9F9Cp-7f, 0x1.573A1Ap-5f, 0x1.555A80p-3f,
                                           0x1.FFFDC6p-2f, 0x1.FFFFF6p-1f};
  // |n| stays below 2^18 on the fast path, so n = round(x*log2e) is exact in float, and
  // fma(n, -ln2_f, x) rounds once: |t| error <= 2^-26.
  static constexpr float kHigh = FastRange<float>::kHigh;  // fast path: x <= kHigh
  static constexpr float kLow = -131072.0f;                 // clamp for -inf / very negative
  static constexpr float kInitExponent = -0x1p30f;     // empty pair accumulator (m = 0)
  static constexpr float kShiftFloor = -87.5f;  // exp_shifted_fast: n = round(z log2e) >= -126
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
  static constexpr double kShiftFloor = -708.5;  // exp_shifted_fast: n >= -1022
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

// Tiers whose vector type adds an integer to the exponent field more cheaply than it
// multiplies by 2^n (V::add_exponent; exp_shifted_fast).
template <class V, class = void>
struct HasAddExponent : std::false_type {};
template <class V>
struct HasAddExponent<V, decltype(void(&V::add_exponent))> : std::true_type {};

template <class V, class = void>
struct HasTableExp : std::false_type {};
template <class V>
struct HasTableExp<V, decltype(void(V::kTableExp))> : std::integral_constant<bool, V::kTableExp> {};

// Softmax with float16/bfloat16 results: an exp accurate to what a 16-bit result keeps
// (tools/derive_exp_16.py): float32's one ln2 constant and degree 3, e^t ~ 1 + t*(c1 + t*(c2 + t*c3)).
// Relative error <= 2^-13.25 against e^(x + n*kMinusLn2) for every 16-bit input of the fast
// path; the single constant makes each exp of a row off by e^(n*(LN2 - ln2)), a factor that
// the two passes share, so only the differences of n within a row are left (<= 2^-23 for any
// element that a 16-bit result can show). A softmax result is then within 2 x 2^-13.25 plus
// float32's rounding of the exact value: under half of float16's ulp, a twentieth of bfloat16's.
struct Exp16 {
  static constexpr int kDegree = 3;
  static constexpr float kPoly[kDegree] = {0x1.524572p-3f, 0x1.022066p-1f, 0x1.000cfap+0f};
};

// The exp building blocks over V (the tier's vector of the compute type T); S: the storage
// type of the rows (T itself, or a 16-bit type computed in float32). kExp16: the exps of
// softmax with 16-bit storage (Exp16) by default; kExp = false in a call picks float32's.
template <class V, class S = typename V::T, bool kExp16 = false>
struct Exp {
  using T = typename V::T;
  using R = typename V::reg;
  using C = Constants<T>;
  static_assert(!kExp16 || (sizeof(S) == 2 && std::is_same<T, float>::value), "Exp16 is for 16-bit storage");
  // float32 (Exp16 included) reduces with one ln2 constant (Constants<float>); float64 with two.
  static constexpr bool kOneLn2 = std::is_same<T, float>::value;

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
    if constexpr (kOneLn2) {
      t = V::fmadd(n, V::set1(Constants<float>::kMinusLn2), x);
    } else {
      t = V::fmadd(n, V::set1(C::kMinusLn2Hi), x);
      t = V::fmadd(n, V::set1(C::kMinusLn2Lo), t);
    }
    return n;
  }
  // e^t for |t| <= ln2/2, the mantissa of ExtExp (in [0.7, 1.42]).
  template <bool kExp = kExp16>
  static R mantissa(R t) {
    using P = std::conditional_t<kExp, Exp16, C>;
    R p = V::set1(P::kPoly[0]);
    for (int k = 1; k < P::kDegree; ++k) p = V::fmadd(p, t, V::set1(P::kPoly[k]));
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
  // exp_parts of K vectors, each step written for all K before the next (the same bits as K
  // calls): the K dependency chains side by side in the instruction stream, so that a core
  // with a small out-of-order window overlaps them.
  template <std::size_t K, bool kExp = kExp16>
  static void exp_parts_n(const R* x, R* n, R* m) {
    if constexpr (kTableExp) {
      for (std::size_t k = 0; k < K; ++k) n[k] = exp_parts<kExp>(x[k], m[k]);
    } else {
      using P = std::conditional_t<kExp, Exp16, C>;
      const R bias = V::set1(C::kRoundBias), log2e = V::set1(C::kLog2e);
      R t[K];
      for (std::size_t k = 0; k < K; ++k) n[k] = V::sub(V::fmadd(x[k], log2e, bias), bias);
      if constexpr (kOneLn2) {
        const R ln2 = V::set1(Constants<float>::kMinusLn2);
        for (std::size_t k = 0; k < K; ++k) t[k] = V::fmadd(n[k], ln2, x[k]);
      } else {
        const R hi = V::set1(C::kMinusLn2Hi), lo = V::set1(C::kMinusLn2Lo);
        for (std::size_t k = 0; k < K; ++k) t[k] = V::fmadd(n[k], hi, x[k]);
        for (std::size_t k = 0; k < K; ++k) t[k] = V::fmadd(n[k], lo, t[k]);
      }
      for (std::size_t k = 0; k < K; ++k) m[k] = V::set1(P::kPoly[0]);
      for (int d = 1; d < P::kDegree; ++d) {
        const R c = V::set1(P::kPoly[d]);
        for (std::size_t k = 0; k < K; ++k) m[k] = V::fmadd(m[k], t[k], c);
      }
      const R one = V::set1(T(1));
      for (std::size_t k = 0; k < K; ++k) m[k] = V::fmadd(m[k], t[k], one);
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
  // e^(x - mu) for the finite x <= mu of a three-pass row on the fast path (the max pass has
  // sent NaN and +inf rows to the exact path). z is clamped at kShiftFloor, so n >= the
  // smallest normal exponent and 2^n joins the mantissa as an integer added to its exponent
  // bits (V::add_exponent: two operations where pow2 and a multiply take four). Below
  // float's normal range (z < -87.3) the bits may be a subnormal's, which the kernels'
  // flush-to-zero mode (FlushDenormals) reads as 0, as it reads exp_shifted's there.
  // float32 reduces with one ln2 constant (Constants<float>), n in [-126, 0] here.
  template <bool kExp = kExp16>
  static R exp_shifted_fast(R x, R mu) {
    if constexpr (HasAddExponent<V>::value && !kTableExp) {
      const R z = V::max(V::set1(C::kShiftFloor), V::sub(x, mu));
      const R bias = V::set1(C::kRoundBias);
      const R k = V::fmadd(z, V::set1(C::kLog2e), bias);  // n in the low bits
      const R n = V::sub(k, bias);
      R t;
      if constexpr (kOneLn2) {
        t = V::fmadd(n, V::set1(Constants<float>::kMinusLn2), z);
      } else {
        t = V::fmadd(n, V::set1(C::kMinusLn2Hi), z);
        t = V::fmadd(n, V::set1(C::kMinusLn2Lo), t);
      }
      return V::add_exponent(mantissa<kExp>(t), k);
    } else {
      return exp_shifted<kExp>(x, mu);
    }
  }
  // exp_shifted_fast of two vectors, each step written for both before the next: the same
  // bits, with the two dependency chains side by side in the instruction stream, so that a
  // core with a small out-of-order window overlaps them.
  template <bool kExp = kExp16>
  static void exp_shifted_fast2(R v, R w, R mu, R& ev, R& ew) {
    if constexpr (HasAddExponent<V>::value && !kTableExp && kOneLn2) {
      using P = std::conditional_t<kExp, Exp16, C>;
      const R lo = V::set1(C::kShiftFloor), bias = V::set1(C::kRoundBias), log2e = V::set1(C::kLog2e);
      const R ln2 = V::set1(Constants<float>::kMinusLn2);
      const R zv = V::max(lo, V::sub(v, mu)), zw = V::max(lo, V::sub(w, mu));
      const R kv = V::fmadd(zv, log2e, bias), kw = V::fmadd(zw, log2e, bias);
      const R nv = V::sub(kv, bias), nw = V::sub(kw, bias);
      const R tv = V::fmadd(nv, ln2, zv), tw = V::fmadd(nw, ln2, zw);
      R pv = V::set1(P::kPoly[0]), pw = pv;
      for (int k = 1; k < P::kDegree; ++k) {
        const R c = V::set1(P::kPoly[k]);
        pv = V::fmadd(pv, tv, c);
        pw = V::fmadd(pw, tw, c);
      }
      const R one = V::set1(T(1));
      pv = V::fmadd(pv, tv, one);
      pw = V::fmadd(pw, tw, one);
      ev = V::add_exponent(pv, kv);
      ew = V::add_exponent(pw, kw);
    } else {
      ev = exp_shifted_fast<kExp>(v, mu);
      ew = exp_shifted_fast<kExp>(w, mu);
    }
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
