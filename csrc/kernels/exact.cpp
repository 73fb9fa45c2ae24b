// The exact path (see exact.h): long double, one copy for all tiers, built without ISA
// flags like the rest of the library outside csrc/kernels/<isa>/.
#include "kernels/exact.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/kernels.inc"

namespace fastsoftmax {
namespace exact {
namespace {

// ln 2 in long double, from kLn2 (the sum rounds once to the long double format).
constexpr long double kLn2Long =
    static_cast<long double>(kLn2[0]) + static_cast<long double>(kLn2[1]) + static_cast<long double>(kLn2[2]);

// hi + lo, unevaluated (double-double): error-free sums and products.
struct TwoDouble {
  double hi, lo;
};
inline TwoDouble two_sum(double a, double b) {
  const double s = a + b, bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
inline TwoDouble two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}

// e ln 2 = big + small.hi + small.lo, big = RN(e kLn2[0]), within 2^-100 for |e| < 2^63;
// |small| < 2^10. (Pass 1's exponents are below 2^21; statistics made by hand may hold any.)
struct ScaledLn2 {
  double big;
  TwoDouble small;
};
inline ScaledLn2 times_ln2(double e) {
  const TwoDouble p1 = two_prod(e, kLn2[0]), p2 = two_prod(e, kLn2[1]);
  const TwoDouble s = two_sum(p1.lo, p2.hi);
  const TwoDouble small = two_sum(s.hi, s.lo + (p2.lo + e * kLn2[2]));
  return {p1.hi, small};
}

// The row from the statistics' point of view: log-sum-exp = big + small.hi + small.lo +
// log m, so that x - log-sum-exp = ((x - big) - small) - log m, where x - big is exact for
// every x whose result is above e^-745 (x and big are within a factor of 2: Sterbenz).
struct StatsShift {
  double big;
  TwoDouble small;
};
inline StatsShift stats_shift(double e, double shift) {
  const ScaledLn2 t = times_ln2(e);
  if (shift == 0) return {t.big, t.small};
  // The shift form (e = 0: shift itself), or statistics made by hand.
  const TwoDouble s = two_sum(t.big, t.small.hi);
  return {shift, two_sum(s.hi, s.lo + t.small.lo)};
}
// x - big - small, as a long double; -inf stays -inf.
inline long double shifted(double x, const StatsShift& s) {
  const double t = x - s.big;
  if (!(std::fabs(t) < std::numeric_limits<double>::infinity())) return t;
  const TwoDouble z = two_sum(t, -s.small.hi);
  return static_cast<long double>(z.hi) + (static_cast<long double>(z.lo) - s.small.lo);
}

template <class S>
long double at(const char* x, std::int64_t step, std::size_t i) {
  S v;
  std::memcpy(&v, x + std::int64_t(i) * step, sizeof(S));
  return Storage<S>::widen(v);
}

}  // namespace

template <class S>
void row(std::size_t n, const S* x, S* y, bool log) {
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

template <class S>
void stats(std::size_t n, const char* x, std::int64_t step, double* m, double* e, double* shift) {
  using L = long double;
  *shift = 0;
  L mu = -std::numeric_limits<L>::infinity();
  for (std::size_t i = 0; i < n; ++i) {
    const L v = at<S>(x, step, i);
    if (v != v) {
      *m = std::numeric_limits<double>::quiet_NaN();
      *e = 0;
      return;
    }
    mu = std::max(mu, v);
  }
  if (mu == std::numeric_limits<L>::infinity() || mu == -std::numeric_limits<L>::infinity()) {
    *m = mu > 0 ? std::numeric_limits<double>::infinity() : 0.0;
    *e = mu > 0 ? 0.0 : -std::numeric_limits<double>::infinity();
    return;
  }
  L sigma = 0;  // x - mu is exact for every term above 2^-64 of the largest
  for (std::size_t i = 0; i < n; ++i) sigma += std::exp(at<S>(x, step, i) - mu);
  *m = static_cast<double>(sigma);
  *e = 0;
  *shift = static_cast<double>(mu);  // exact: mu is an element
}

template <class S>
void from_stats(std::size_t n, const S* x, S* y, bool log, double m, double e, double shift) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  using St = Storage<S>;
  using L = long double;
  if (!(m > 0 && m < inf && std::fabs(e) < inf && std::fabs(shift) < inf)) {
    // NaN, +inf or empty / all -inf statistics: y as SciPy's for such rows.
    const L lse = std::log(L(m)) + L(e) * kLn2Long + L(shift);
    const bool nan_out = lse != lse || lse == std::numeric_limits<L>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
      const L v = St::widen(x[i]);
      if (log) y[i] = St::narrow(v - lse);
      else y[i] = St::narrow(nan_out ? std::numeric_limits<L>::quiet_NaN() : std::exp(v - lse));
    }
    return;
  }
  const StatsShift s = stats_shift(e, shift);
  if (log) {
    const L log_m = std::log(L(m));
    for (std::size_t i = 0; i < n; ++i) y[i] = St::narrow(shifted(double(St::widen(x[i])), s) - log_m);
  } else {
    const L inv_m = L(1) / L(m);
    for (std::size_t i = 0; i < n; ++i) y[i] = St::narrow(std::exp(shifted(double(St::widen(x[i])), s)) * inv_m);
  }
}

#define FASTSOFTMAX_EXACT_INSTANTIATE(dt, stype)                                                     \
  template void row<stype>(std::size_t, const stype*, stype*, bool);                               \
  template void stats<stype>(std::size_t, const char*, std::int64_t, double*, double*, double*); \
  template void from_stats<stype>(std::size_t, const stype*, stype*, bool, double, double, double);
FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_EXACT_INSTANTIATE)
#undef FASTSOFTMAX_EXACT_INSTANTIATE

}  // namespace exact
}  // namespace fastsoftmax
