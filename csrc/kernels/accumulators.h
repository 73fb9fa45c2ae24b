// The pass-1 accumulators of the fast passes (see passes.h) over a vector type V, and the
// binary cascade that merges their per-block states. Included by passes.h, inside the
// tier's namespace (FASTSOFTMAX_TIER).

// Once per translation unit: a unit holds one tier.
#pragma once

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including accumulators.h"
#endif

#include <cstddef>
#include <cstdint>

#include "kernels/exp.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

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

// The accumulators over V (the tier's vector of the compute type T), S the rows' storage type;
// kExp16: over Exp16 (exp.h), for softmax with 16-bit storage.
template <class V, class S = typename V::T, bool kExp16 = false>
struct Accumulators : Exp<V, S, kExp16> {
  using T = typename V::T;
  using R = typename V::reg;
  using C = Constants<T>;
  using E = Exp<V, S, kExp16>;
  static constexpr std::size_t A = V::kAccumulators;  // independent accumulators
  using E::exp_parts;
  using E::integral_exponent;
  using E::exp_shifted;

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
      R c[A], n[A], p[A];
      for (std::size_t a = 0; a < A; ++a) c[a] = V::max(V::set1(C::kLow), v[a]);  // NaN-preserving clamp
      E::template exp_parts_n<A>(c, n, p);
      R e = s.e;
      for (std::size_t a = 0; a < A; ++a) e = V::max(e, n[a]);
      e = integral_exponent(e);
      // The group's A terms are added as a pairwise tree and the tree joins the running sum
      // by one addition: each group lengthens the sum's chain of roundings by one, not A.
      static_assert(A >= 2, "the group tree pairs terms");
      R t[A / 2];
      for (std::size_t a = 0; a < A / 2; ++a)
        t[a] = V::scale_add(p[2 * a], V::sub(n[2 * a], e), V::scale(p[2 * a + 1], V::sub(n[2 * a + 1], e)));
      for (std::size_t w = A / 2; w > 1; w /= 2)
        for (std::size_t a = 0; a < w / 2; ++a) t[a] = V::add(t[2 * a], t[2 * a + 1]);
      s = {V::scale_add(s.m, V::sub(s.e, e), t[0]), e};
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
  // Paired: two vectors share one rescaling.
  struct OnlineAcc {
    struct State { R mx, s; };
    static constexpr bool kPaired = true;
    static State init() { return {V::set1(C::kLow), V::set1(T(0))}; }
    R update(State& st, R x) const {
      const R xc = V::max(V::set1(C::kLow), x);
      const R mx = V::max(st.mx, xc);
      st.s = V::fmadd(st.s, E::template exp_shifted<false>(st.mx, mx), E::template exp_shifted<false>(xc, mx));
      st.mx = mx;
      return x;
    }
    void update_pair(State& st, R v, R w, R& out_v, R& out_w) const {
      const R vc = V::max(V::set1(C::kLow), v), wc = V::max(V::set1(C::kLow), w);
      const R mx = V::max(st.mx, V::max(vc, wc));
      const R terms = V::add(E::template exp_shifted<false>(vc, mx), E::template exp_shifted<false>(wc, mx));
      st.s = V::fmadd(st.s, E::template exp_shifted<false>(st.mx, mx), terms);
      st.mx = mx;
      out_v = v;
      out_w = w;
    }
    static State merge(State a, State b) {
      const R mx = V::max(a.mx, b.mx);
      return {mx, V::fmadd(a.s, E::template exp_shifted<false>(a.mx, mx),
                           V::mul(b.s, E::template exp_shifted<false>(b.mx, mx)))};
    }
  };

  // Sum of e^(x - mu); when storing, also writes e^(x - mu) (three-pass reload) or
  // x - mu (log-softmax reload).
  // Paired (update_pair): the block loop (Loops::block) adds two vectors' terms at a time,
  // which halves each state's chain of roundings.
  template <bool kStoreShifted>
  struct SumExpAcc {
    using State = R;
    static constexpr bool kPaired = true;
    R mu;
    static State init() { return V::set1(T(0)); }
    R update(State& s, R x) const {
      const R e = E::exp_shifted_fast(x, mu);
      s = V::add(s, e);
      return kStoreShifted ? V::sub(x, mu) : e;
    }
    void update_pair(State& s, R v, R w, R& out_v, R& out_w) const {
      R ev, ew;
      E::exp_shifted_fast2(v, w, mu, ev, ew);
      s = V::add(s, V::add(ev, ew));
      out_v = kStoreShifted ? V::sub(v, mu) : ev;
      out_w = kStoreShifted ? V::sub(w, mu) : ew;
    }
    static State merge(State a, State b) { return V::add(a, b); }
  };
  // The plain sum (the memory-only patterns, the backward passes).
  struct SumAcc {
    using State = R;
    static State init() { return V::set1(T(0)); }
    R update(State& s, R x) const { s = V::add(s, x); return x; }
    static State merge(State a, State b) { return V::add(a, b); }
  };
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
