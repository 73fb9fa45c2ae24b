// The exact path: rows outside the fast passes' range (NaN, +inf, a max beyond the fast
// range, see passes.h), computed in long double with SciPy's semantics, and the statistics
// of such rows. Compiled once, in kernels/exact.cpp, without ISA flags: nothing here is
// vectorised or on the fast path, and every tier's kernels and the generic row code
// (rows.h) call the same functions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/half.h"

namespace fastsoftmax {

// ln 2 = kLn2[0] + kLn2[1] + kLn2[2] + O(2^-164).
constexpr double kLn2[3] = {0x1.62e42fefa39efp-1, 0x1.abc9e3b39803fp-56, 0x1.7b57a079a1934p-111};

// ---- statistics of rows outside the fast range ---------------------------------------------
// A row's statistics say sum of e^x = m * 2^e * e^shift. Fast-range rows have the pair
// (m, e) of pass 1 and shift = 0; |e| <= 1.5e6. Rows outside it (NaN, inf, |max| beyond
// the fast range) get theirs from the exact path: NaN and inf rows the special values of
// RowRunner::stats; a finite row the shift form, shift = mu = max x, e = 0 and
// m = sigma = sum of e^(x - mu), in [1, n], summed in long double. A pair cannot hold
// such rows: log2 of the sum needs more than a float64 exponent once |mu| > 2^63 ln 2 (and
// more than float64 itself beyond float max ln 2 ~ 1.2457e308), and m = sigma e^(mu - e ln2)
// carries the rounding of mu - e ln2, which cancels all of mu's bits. In the shift form
// x - log-sum-exp is (x - mu) - log m, with x - mu exact (Sterbenz) wherever the result is
// above e^-745: pass 2 from the statistics is the max-based exact algorithm. Statistics
// of a pair form that from_stats cannot hand to the fast pass (made by hand: any e) are
// taken exactly too, with e ln 2 to 2^-100 (times_ln2).

namespace exact {

// softmax (log: log_softmax) of the row x[0..n) into y[0..n), SciPy's semantics.
template <class S>
void row(std::size_t n, const S* x, S* y, bool log);

// The statistics of a row outside the fast range: the shift form, from its max and sum of
// e^(x - max) in long double (see above); NaN -> m = NaN, e = 0; max +inf -> m = inf,
// e = 0; all -inf -> m = 0, e = -inf. Element i of the row at x + i * step (bytes).
template <class S>
void stats(std::size_t n, const char* x, std::int64_t step, double* m, double* e, double* shift);

// Pass 2 from statistics that the fast pass cannot take (shift != 0, or m, e outside its
// range): y = e^(x - lse) or x - lse with lse = log m + e ln2 + shift, x - lse formed
// without cancellation (StatsShift, exact.cpp).
template <class S>
void from_stats(std::size_t n, const S* x, S* y, bool log, double m, double e, double shift);

// Each is instantiated in exact.cpp for the storage types of kernels.inc.

}  // namespace exact
}  // namespace fastsoftmax
