// The per-row algorithms (which primitive runs when, and the exact glue between them)
// and the walk over the rows of an array, written once. Included by softmax.cpp (over
// primitive tables, with chunks spread over threads) and by each tier's kernel file (over
// its own functions, for short rows): so the includer picks the namespace, like passes.h.
#ifndef FASTSOFTMAX_ROWS_NS
#error "define FASTSOFTMAX_ROWS_NS (the namespace for this copy) before including rows.h"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(FASTSOFTMAX_X86)
#include <xmmintrin.h>  // _mm_getcsr/_mm_setcsr: SSE, part of the x86-64 baseline
#endif

#include "kernels/primitives.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

// Rows longer than this are computed as chunks of this many elements whose statistics
// are merged in chunk order. The chunking depends on the row length alone, never on the
// thread count, so the result is bitwise the same for any number of threads.
constexpr std::size_t kChunk = std::size_t{1} << 16;

// Contiguous one-chunk rows handed to RowRunner::rows at once by for_rows.
constexpr int kRowBatch = 4;

// The constant of three-pass's last pass, from the row's max and its sum of e^(x - mu) in
// double: 1/sum (softmax); log(sum) (log_softmax, reload: the middle row holds x - mu); or
// mu + log(sum) (log_softmax, recompute). Shared by the row runner and the column kernel
// (passes.h), whose results must be bitwise the same.
template <class T>
T three_pass_constant(bool log, bool reload, T mu, double sum) {
  if (!log) return static_cast<T>(1.0 / sum);
  return reload ? static_cast<T>(std::log(sum)) : static_cast<T>(double(mu) + std::log(sum));
}

// Flush-to-zero and denormals-are-zero while a task runs (MXCSR is per thread; restored
// on exit). Subnormal results -- outputs below ~1e-38 (f32), tiny contributions when pass 1
// rescales -- otherwise take microcode assists of ~100 cycles each on Intel: a
// U[-1000, 1000] row ran 10x slower. Only outputs below the smallest normal number change
// (to 0); the AVX2 exponent-bit 2^d already flushes there.
class FlushDenormals {
 public:
#if defined(FASTSOFTMAX_X86)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

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

// ln 2 = kLn2[0] + kLn2[1] + kLn2[2] + O(2^-164).
constexpr double kLn2[3] = {0x1.62e42fefa39efp-1, 0x1.abc9e3b39803fp-56, 0x1.7b57a079a1934p-111};

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

// Where a row is read from: contiguous memory, or elements `step` bytes apart (the
// statistics of a long strided row; each chunk gathered on its own, see RowRunner).
struct StridedRow {
  const char* x;
  std::int64_t step;
};

// The scratch memory RowRunner needs for rows longer than one chunk, or for 16-bit reload
// rows (see ScratchLayout): given to it, never allocated by it.
template <class T>
struct RunnerScratch {
  T* stats = nullptr;   // two per chunk (the chunks' statistics)
  char* bad = nullptr;  // one per chunk (three-pass: the chunk needs the exact path)
  T* reload = nullptr;  // n: three-pass reload's middle row when S is not T
  // kChunk elements of S: where one chunk of a StridedRow is gathered (its statistics),
  // for the chunks run by an executor that gives them no buffer of their own.
  unsigned char* gather = nullptr;
};

// A chunk executor runs f(c, scratch) for every chunk c in [0, chunks), where scratch is a
// buffer of its own for the thread that runs c (at least kChunk elements of the row's
// storage type, 64-byte aligned), or null: then the chunk uses RunnerScratch::gather. Only
// the chunks of a StridedRow use it; executors that never see one pass null.
// Runs chunks one after another.
struct SerialChunks {
  template <class F>
  void operator()(std::size_t chunks, F& f) const {
    for (std::size_t c = 0; c < chunks; ++c) f(c, nullptr);
  }
};

// One row's algorithm over primitives P (a Primitives<S> table of pointers, or the tier's
// direct functions) and a chunk executor Chunks (serial, or spread over threads). S is the
// storage type of the rows, T the type they are computed in.
template <class S, class P, class Chunks>
class RowRunner {
  using T = compute_t<S>;
  using St = Storage<S>;

 public:
  // scratch: what scratch_layout() sized for the job (unused parts null).
  RowRunner(const P& p, Chunks chunks, Op op, Algorithm alg, std::size_t n, bool stream, RunnerScratch<T> scratch)
      : p_(p),
        chunks_exec_(chunks),
        log_(op == Op::log_softmax),
        alg_(alg),
        n_(n),
        chunks_((n + kChunk - 1) / kChunk),
        stream_(stream),
        scratch_(scratch) {}

  // Up to kRowBatch rows at once: the same operations as row() on each (so the same bits),
  // phase by phase, so that the short dependency chains of one-chunk rows -- horizontal
  // reductions, the division -- overlap instead of running back to back. Three-pass rows
  // (auto's choice for short rows) of float32/float64; others one by one.
  void rows(int count, const S* const* x, S* const* y) const {
    const bool three = alg_ == Algorithm::three_pass_reload || alg_ == Algorithm::three_pass_recompute;
    if (std::is_same<S, T>::value && chunks_ == 1 && three && count > 1) return three_pass_batch(count, x, y);
    for (int i = 0; i < count; ++i) row(x[i], y[i]);
  }

  // One row; its chunks spread over threads_ threads.
  void row(const S* x, S* y) const {
    switch (alg_) {
      case Algorithm::two_pass: return two_pass(x, y);
      case Algorithm::online: return online(x, y);
      case Algorithm::three_pass_recompute:
      case Algorithm::three_pass_reload: return three_pass(x, y);
    }
  }

 private:
  std::size_t begin(std::size_t c) const { return c * kChunk; }
  std::size_t size(std::size_t c) const { return std::min(kChunk, n_ - c * kChunk); }

  // f(c) for every chunk; each_chunk_scratch: f(c, buffer), buffer the executor's for the
  // thread that runs c or else the runner's gather buffer (see SerialChunks).
  template <class F>
  void each_chunk(F&& f) const {
    if (chunks_ == 1) return f(std::size_t{0});
    auto g = [&f](std::size_t c, unsigned char*) { f(c); };
    chunks_exec_(chunks_, g);
  }
  template <class F>
  void each_chunk_scratch(F&& f) const {
    auto g = [this, &f](std::size_t c, unsigned char* buffer) { f(c, buffer ? buffer : scratch_.gather); };
    if (chunks_ == 1) return g(std::size_t{0}, nullptr);
    chunks_exec_(chunks_, g);
  }
  // Two statistics per chunk: on the stack for the common one-chunk row, else in the
  // thread's scratch.
  struct ChunkStats {
    T one[2];
    T* p;
    explicit ChunkStats(const RowRunner& r) : p(r.chunks_ > 1 ? r.scratch_.stats : one) {}
    T* data() { return p; }
  };

  void exact(const S* x, S* y) const { p_.exact_row(n_, x, y, log_); }

  // Rows outside the fast range take the statistics path (exact_stats, then from_stats):
  // the statistics API computes what two-pass writes, bit for bit.
  void two_pass(const S* x, S* y) const {
    double sum, e_max;
    if (!pair_stats(x, &sum, &e_max)) {
      double shift;
      exact_stats(x, &sum, &e_max, &shift);
      return from_stats(x, y, sum, e_max, shift);
    }
    write_from_pair(x, y, sum, e_max);
  }

 public:
  // The row's two-pass statistics: sum of e^x = m * 2^e * e^shift (see above). Rows
  // outside the fast range get them from the exact (long double) computation, with SciPy's
  // logsumexp semantics: NaN -> m = NaN, e = 0; max +inf -> m = inf, e = 0; all -inf ->
  // m = 0, e = -inf. x: a contiguous row, or a StridedRow.
  template <class Src>
  void stats(const Src& x, double* m, double* e, double* shift) const {
    *shift = 0;
    if (pair_stats(x, m, e)) return;
    exact_stats(x, m, e, shift);
  }
  // Pass 2 from statistics (possibly merged from other pieces of the row): the same
  // arithmetic as two_pass for fast-range statistics; else y = e^(x - lse) or x - lse
  // with lse = log m + e ln2 + shift, x - lse formed without cancellation (StatsShift).
  void from_stats(const S* x, S* y, double m, double e, double shift) const {
    constexpr double inf = std::numeric_limits<double>::infinity();
    if (shift == 0 && m > 0 && m < inf && e >= FastRange<T>::kMinRowExponent && e <= FastRange<T>::kMaxRowExponent)
      return write_from_pair(x, y, m, e);
    using L = long double;
    if (!(m > 0 && m < inf && std::fabs(e) < inf && std::fabs(shift) < inf)) {
      // NaN, +inf or empty / all -inf statistics: y as SciPy's for such rows.
      const L lse = std::log(L(m)) + L(e) * 0.693147180559945309417232121458176568L + L(shift);
      const bool nan_out = lse != lse || lse == std::numeric_limits<L>::infinity();
      for (std::size_t i = 0; i < n_; ++i) {
        const L v = St::widen(x[i]);
        if (log_) y[i] = St::narrow(v - lse);
        else y[i] = St::narrow(nan_out ? std::numeric_limits<L>::quiet_NaN() : std::exp(v - lse));
      }
      return;
    }
    const StatsShift s = stats_shift(e, shift);
    if (log_) {
      const L log_m = std::log(L(m));
      for (std::size_t i = 0; i < n_; ++i) y[i] = St::narrow(shifted(double(St::widen(x[i])), s) - log_m);
    } else {
      const L inv_m = L(1) / L(m);
      for (std::size_t i = 0; i < n_; ++i) y[i] = St::narrow(std::exp(shifted(double(St::widen(x[i])), s)) * inv_m);
    }
  }

 private:
  // Pass 1 of two-pass over the chunks, merged exactly in chunk order. False: the row is
  // outside the fast range (NaN, inf, or a max beyond +-kHigh).
  template <class Src>
  bool pair_stats(const Src& x, double* sum_out, double* e_out) const {
    ChunkStats s(*this);
    T* m = s.data();
    T* e = m + chunks_;
    each_chunk_scratch(
        [&](std::size_t c, unsigned char* buffer) { p_.pair_sum(size(c), chunk(x, c, buffer), &m[c], &e[c]); });
    double e_max = -std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < chunks_; ++c) e_max = std::max(e_max, double(e[c]));
    double sum = 0;  // exact rescaling by powers of two, in chunk order
    for (std::size_t c = 0; c < chunks_; ++c) {
      const double d = double(e[c]) - e_max;
      // A NaN (from a NaN or +inf input) must survive any rescaling, even to nothing.
      if (m[c] != m[c] || d != d) sum = std::numeric_limits<double>::quiet_NaN();
      else if (d >= -2000.0) sum += std::ldexp(double(m[c]), static_cast<int>(d));
    }
    *sum_out = sum;
    *e_out = e_max;
    // !(sum < inf) also catches NaN (a NaN or +inf input reaches the sum as NaN).
    return sum < std::numeric_limits<double>::infinity() && e_max >= FastRange<T>::kMinRowExponent &&
           e_max <= FastRange<T>::kMaxRowExponent;
  }

  // Chunk c of a row: in place, or (a strided row) gathered into `buffer`, kChunk elements
  // of the scratch of the thread that runs the chunk (allocated before the call, see
  // each_chunk_scratch) -- a strided row is never copied whole, and pass 1 sees the same
  // chunks, so the statistics are bitwise those of the row laid out contiguously.
  const S* chunk(const S* x, std::size_t c, unsigned char*) const { return x + begin(c); }
  const S* chunk(const StridedRow& x, std::size_t c, unsigned char* buffer) const {
    S* b = reinterpret_cast<S*>(buffer);
    const char* p = x.x + std::int64_t(begin(c)) * x.step;
    for (std::size_t i = 0, n = size(c); i < n; ++i) std::memcpy(&b[i], p + std::int64_t(i) * x.step, sizeof(S));
    return b;
  }
  static long double at(const S* x, std::size_t i) { return St::widen(x[i]); }
  static long double at(const StridedRow& x, std::size_t i) {
    S v;
    std::memcpy(&v, x.x + std::int64_t(i) * x.step, sizeof(S));
    return St::widen(v);
  }

  // The statistics of a row outside the fast range: the shift form, from its max and sum of
  // e^(x - max) in long double (see "statistics of rows outside the fast range" above).
  template <class Src>
  void exact_stats(const Src& x, double* m, double* e, double* shift) const {
    using L = long double;
    *shift = 0;
    L mu = -std::numeric_limits<L>::infinity();
    for (std::size_t i = 0; i < n_; ++i) {
      const L v = at(x, i);
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
    for (std::size_t i = 0; i < n_; ++i) sigma += std::exp(at(x, i) - mu);
    *m = static_cast<double>(sigma);
    *e = 0;
    *shift = static_cast<double>(mu);  // exact: mu is an element
  }

  void write_from_pair(const S* x, S* y, double sum, double e_max) const {
    if (log_) {
      const T c0 = static_cast<T>(std::log(sum) + e_max * 0x1.62e42fefa39efp-1);
      each_chunk([&](std::size_t c) { p_.write_sub(size(c), x + begin(c), y + begin(c), c0, stream_); });
    } else {
      const T inv = static_cast<T>(1.0 / sum), et = static_cast<T>(e_max);
      each_chunk([&](std::size_t c) { p_.write_pair(size(c), x + begin(c), y + begin(c), inv, et, stream_); });
    }
  }

  void online(const S* x, S* y) const {
    ChunkStats s(*this);
    T* mu = s.data();
    T* sigma = mu + chunks_;
    each_chunk([&](std::size_t c) { p_.online_sum(size(c), x + begin(c), &mu[c], &sigma[c]); });
    double mu_max = -std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < chunks_; ++c) mu_max = std::max(mu_max, double(mu[c]));
    double sum = 0;
    for (std::size_t c = 0; c < chunks_; ++c) sum += double(sigma[c]) * std::exp(double(mu[c]) - mu_max);
    if (!(sum < std::numeric_limits<double>::infinity()) ||
        !(mu_max >= -FastRange<T>::kHigh && mu_max <= FastRange<T>::kHigh))
      return exact(x, y);
    finish_max_based(x, y, static_cast<T>(mu_max), sum);
  }

  void three_pass(const S* x, S* y) const {
    ChunkStats s(*this);
    T* mu = s.data();
    T* sigma = mu + chunks_;
    char bad_one = 0;
    char* bad = chunks_ > 1 ? scratch_.bad : &bad_one;
    each_chunk([&](std::size_t c) { bad[c] = p_.max(size(c), x + begin(c), &mu[c]); });
    T mu_max = -std::numeric_limits<T>::infinity();
    bool any_bad = false;
    for (std::size_t c = 0; c < chunks_; ++c) {
      mu_max = std::max(mu_max, mu[c]);
      any_bad = any_bad || bad[c];
    }
    if (any_bad || !(mu_max >= -FastRange<T>::kHigh)) return exact(x, y);
    T* w = reload_row(y);
    each_chunk([&](std::size_t c) { sigma[c] = exp_pass(size(c), x + begin(c), w ? w + begin(c) : nullptr, mu_max); });
    double sum = 0;
    for (std::size_t c = 0; c < chunks_; ++c) sum += double(sigma[c]);
    finish_three_pass(x, y, w, mu_max, sum);
  }

  // Pass 2 of three-pass over n elements: sum of e^(x - mu); reload also stores e^(x - mu)
  // (or x - mu for log_softmax) in w.
  T exp_pass(std::size_t n, const S* x, T* w, T mu) const {
    if (alg_ != Algorithm::three_pass_reload) return p_.sum_exp(n, x, mu);
    return log_ ? p_.store_shifted(n, x, w, mu) : p_.store_exp(n, x, w, mu);
  }

  // Pass 3 of three-pass from the row's max and sum (w: reload's middle row).
  void finish_three_pass(const S* x, S* y, const T* w, T mu, double sum) const {
    if (alg_ != Algorithm::three_pass_reload) return finish_max_based(x, y, mu, sum);
    const T c = three_pass_constant(log_, true, mu, sum);
    if (log_) each_chunk([&](std::size_t k) { p_.reload_sub(size(k), w + begin(k), y + begin(k), c, stream_); });
    else each_chunk([&](std::size_t k) { p_.reload_scale(size(k), w + begin(k), y + begin(k), c, stream_); });
  }

  // three_pass for count <= kRowBatch one-chunk rows with S == T, each phase over all the
  // rows before the next (see rows()); the arithmetic of three_pass, row by row.
  void three_pass_batch(int count, const S* const* x, S* const* y) const {
    T mu[kRowBatch], sigma[kRowBatch];
    bool fast[kRowBatch];
    for (int i = 0; i < count; ++i) {
      T m;
      const bool bad = p_.max(n_, x[i], &m);
      mu[i] = std::max(-std::numeric_limits<T>::infinity(), m);
      fast[i] = !(bad || !(mu[i] >= -FastRange<T>::kHigh));
    }
    // S == T: reload keeps its middle row in y, as ReloadBuffer does.
    const auto w = [y](int i) { return reinterpret_cast<T*>(y[i]); };
    for (int i = 0; i < count; ++i)
      if (fast[i]) sigma[i] = exp_pass(n_, x[i], w(i), mu[i]);
    for (int i = 0; i < count; ++i) {
      if (!fast[i]) {
        exact(x[i], y[i]);
        continue;
      }
      double sum = 0;  // as three_pass's sum over its one chunk
      sum += double(sigma[i]);
      finish_three_pass(x[i], y[i], w(i), mu[i], sum);
    }
  }

  // Where three-pass reload keeps e^(x - mu) (or x - mu) between its passes: y itself when
  // y holds the compute type (the paper's algorithm), else a float32 row of the thread's
  // scratch, so that 16-bit outputs are rounded once (4 extra bytes written and read per
  // element). Null for three-pass recompute, which has no middle row.
  T* reload_row(S* y) const {
    if (alg_ != Algorithm::three_pass_reload) return nullptr;
    if constexpr (std::is_same<S, T>::value) return y;
    else return scratch_.reload;
  }

  // y = e^(x - mu) / sum, or y = x - (mu + log sum).
  void finish_max_based(const S* x, S* y, T mu, double sum) const {
    const T c = three_pass_constant(log_, false, mu, sum);
    if (log_) each_chunk([&](std::size_t k) { p_.write_sub(size(k), x + begin(k), y + begin(k), c, stream_); });
    else each_chunk([&](std::size_t k) { p_.write_exp_scaled(size(k), x + begin(k), y + begin(k), mu, c, stream_); });
  }

  const P& p_;
  const Chunks chunks_exec_;
  const bool log_;
  const Algorithm alg_;
  const std::size_t n_, chunks_;
  const bool stream_;
  const RunnerScratch<T> scratch_;
};

// Calls row(r, x_row, y_row) for rows [r0, r1) of the job, each pointing at n contiguous
// elements. Strided rows are gathered into the output row when that is contiguous, else
// into a buffer, computed in place there and scattered back. A job without y (y == null:
// statistics only) gets y_row = null, and strided rows gathered into the buffer. When the rows are strided but
// neighbouring rows are adjacent in memory (softmax over a non-last axis of a C-order
// array), up to kTile of them are gathered together, so that each cache line read or
// written carries up to 16 useful elements instead of one, and each page visited (one per
// element of the row: the rows' stride is usually >= 4 KiB) serves kTile rows; software
// prefetch runs ahead of both walks, which the hardware prefetcher does not follow across
// pages. float32 tiles move in 8x8 register transposes on the AVX tiers (Tr). Measured on
// (1, 3072, 1024) float32 with axis=1, one thread, on a Xeon: 22 ns/element element by
// element without tiles, 2.7 with scalar tile moves, 2.0-2.4 with the transposes (last
// axis: 0.45-0.8). Tile width, on an EPYC (Zen 5, 1 MiB L2), same shape, ns/element: 16
// columns 0.65, 32 0.62, 64 0.42-0.44, 128 0.29-0.35, 256 0.28-0.29; (4, 128, 8192):
// 64 0.55, 128 0.37-0.39 -- longer contiguous reads per row pay more than keeping the
// tile buffer (2 MiB at 128 x 3072 floats) inside L2. Three-pass rows (what auto runs on
// rows that fit the cache) skip the tiles: Tr's column kernel computes them in place of
// the transposes (the same shape: 0.22 ns/element, 0.37 with tiles).
constexpr std::size_t kTile = 128;
constexpr std::size_t kTilePrefetch = 8;  // rows of the axis ahead
constexpr std::size_t kTileBytes = std::size_t{1} << 21;  // tile buffer bound

// Block transposes for the tile walk: Tr::kBlock > 0 when Tr::transpose(src, src_stride,
// dst, dst_stride) moves a kBlock x kBlock block of T (byte strides); else element by element.
struct NoBlockTranspose {
  static constexpr std::size_t kBlock = 0;
  static void transpose(const void*, std::int64_t, void*, std::int64_t) {}
};

// Tr::kColumnWidth > 0 when Tr::three_pass_columns computes three-pass rows that are the
// columns of a tile directly, kColumnWidth columns a strip, up to Tr::kColumnStrips strips
// a call (passes.h): no transposes, bitwise the rows' result.
template <class Tr, class = void>
struct ColumnWidth : std::integral_constant<std::size_t, 0> {};
template <class Tr>
struct ColumnWidth<Tr, decltype(void(Tr::kColumnWidth))> : std::integral_constant<std::size_t, Tr::kColumnWidth> {};

// How for_rows walks the rows of a job (T: their storage type), and the scratch it needs.
template <class T, class Tr = NoBlockTranspose>
struct RowWalk {
  static constexpr std::size_t W = ColumnWidth<Tr>::value;
  std::size_t n, inner, tile, pitch;
  bool read_only, x_contig, y_contig, tiles, columns;
  std::size_t buffer;         // elements of the tile (or strided-row) buffer; 0: not used
  std::size_t column_strips;  // the most strips one column-kernel call takes; 0: none

  explicit RowWalk(const RowsJob& job) {
    const int nd = job.ndim;
    n = static_cast<std::size_t>(job.shape[nd - 1]);
    read_only = job.y == nullptr;
    x_contig = job.x_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.x, job.x_strides);
    y_contig = !read_only && job.y_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.y, job.y_strides);
    inner = nd >= 2 ? static_cast<std::size_t>(job.shape[nd - 2]) : 1;
    tiles = !x_contig && (read_only || !y_contig) && nd >= 2 && job.x_strides[nd - 2] == std::int64_t(sizeof(T)) &&
            (read_only || job.y_strides[nd - 2] == std::int64_t(sizeof(T)));
    tile = tiles ? std::max<std::size_t>(1, std::min(kTile, kTileBytes / (n * sizeof(T)))) : 1;
    // Tile rows sit `pitch` elements apart, an odd number of cache lines: with a pitch of a
    // multiple of 4 KiB (n = 1024, 3072, ...) the gather's stores would all hit one L1 set.
    pitch = n;
    if (tile > 1) {
      const std::size_t lines = (n * sizeof(T) + 63) / 64;
      pitch = (lines | 1) * 64 / sizeof(T);
    }
    // Contiguous rows are used in place; a strided row read into a contiguous y row is
    // gathered there; others (and tiles) go through the buffer.
    const bool in_place = (x_contig && (y_contig || read_only)) || (tile == 1 && y_contig);
    buffer = in_place ? 0 : pitch * (tile - 1) + n;
    // Three-pass rows of a tile (auto's choice for rows that fit the cache) go to the column
    // kernel, strips of W columns; other algorithms, 16-bit storage, misaligned arrays,
    // rows longer than a chunk and the columns left over take the transposing tile walk.
    columns = W > 0 && tiles && !read_only && n <= kChunk &&
              (job.algorithm == Algorithm::three_pass_reload || job.algorithm == Algorithm::three_pass_recompute) &&
              aligned(nd, job.x, job.x_strides) && aligned(nd, job.y, job.y_strides);
    column_strips = 0;
    if constexpr (W > 0) {
      if (columns) column_strips = std::min({inner / W, Tr::kColumnStrips, column_fit(n)});
    }
  }

  // Strips of a column-kernel call whose copy stays within Tr::kColumnCopyBytes (at least 1).
  static std::size_t column_fit(std::size_t n) {
    if constexpr (W > 0) return std::max<std::size_t>(1, Tr::kColumnCopyBytes / (n * W * sizeof(T)));
    else return 0;
  }

  // Bytes of for_rows' scratch: the buffer, which the column kernel's copy shares.
  std::size_t scratch_bytes() const {
    std::size_t b = buffer * sizeof(T);
    if constexpr (W > 0) {
      if (column_strips) b = std::max(b, Tr::column_scratch_bytes(n, column_strips));
    }
    return b;
  }

  // Rows the kernels may read as T*: contiguous and aligned to T (NumPy allows misaligned
  // arrays; dereferencing them is undefined behaviour). Others are gathered with memcpy.
  static bool aligned(int nd, const char* base, const std::int64_t* strides) {
    bool ok = reinterpret_cast<std::uintptr_t>(base) % alignof(T) == 0;
    for (int d = 0; d < nd; ++d) ok = ok && strides[d] % std::int64_t(alignof(T)) == 0;
    return ok;
  }
};

inline std::size_t round_up64(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

// The scratch memory one thread needs for rows of a job (S: their storage type), in 64-byte
// multiples, one after another in one block: for_rows' tile (or strided-row) buffer, which
// the column kernel's copy shares (they are never in use at once); then the statistics of
// the chunks of a row longer than one chunk; then three-pass reload's middle row where y
// cannot hold it (16-bit storage); then, for the statistics of a long strided row read in
// place (strided_stats_layout), the buffer one chunk of it is gathered into. softmax.cpp
// allocates a block for every thread of a call before the call writes anything; nothing
// here allocates.
struct ScratchLayout {
  std::size_t walk = 0, chunks = 0, reload = 0, gather = 0;
  std::size_t bytes() const { return walk + chunks + reload + gather; }
};

// The buffer one chunk of a StridedRow of storage type S is gathered into.
template <class S>
constexpr std::size_t gather_bytes() {
  return (kChunk * sizeof(S) + 63) / 64 * 64;
}

template <class S, class Tr = NoBlockTranspose>
ScratchLayout scratch_layout(const RowsJob& job) {
  using T = compute_t<S>;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  ScratchLayout l;
  l.walk = round_up64(RowWalk<S, Tr>(job).scratch_bytes());
  if (chunks > 1) l.chunks = round_up64(chunks * (2 * sizeof(T) + 1));
  if (!std::is_same<S, T>::value && job.algorithm == Algorithm::three_pass_reload) l.reload = round_up64(n * sizeof(T));
  return l;
}

// The scratch of the thread that computes the statistics of n-long StridedRows (n > kChunk;
// softmax.cpp's strided_row_stats): the chunk statistics, and with `gather` the buffer for
// the chunks that this thread runs itself (rows spread over the threads, each row's chunks
// in turn). When a row's chunks are spread over the threads instead, each of those threads
// gets a gather_bytes<S>() block of its own (the chunk executor passes it).
template <class S>
ScratchLayout strided_stats_layout(std::size_t n, bool gather) {
  using T = compute_t<S>;
  ScratchLayout l;
  l.chunks = round_up64(((n + kChunk - 1) / kChunk) * (2 * sizeof(T) + 1));
  if (gather) l.gather = gather_bytes<S>();
  return l;
}

// RowRunner's part of a scratch block laid out by l.
template <class S>
RunnerScratch<compute_t<S>> runner_scratch(unsigned char* block, const ScratchLayout& l, std::size_t n) {
  using T = compute_t<S>;
  RunnerScratch<T> s;
  if (l.chunks) {
    s.stats = reinterpret_cast<T*>(block + l.walk);
    s.bad = reinterpret_cast<char*>(s.stats + 2 * ((n + kChunk - 1) / kChunk));
  }
  if (l.reload) s.reload = reinterpret_cast<T*>(block + l.walk + l.chunks);
  if (l.gather) s.gather = block + l.walk + l.chunks + l.reload;
  return s;
}

// scratch: the walk part of a block laid out by scratch_layout (64-byte aligned; may be
// null when that part is empty). Batch: nullptr, or batch(count, xs, ys) taking up to
// kRowBatch contiguous rows at once (in order).
template <class T, class RowFn, class Tr = NoBlockTranspose, class Batch = std::nullptr_t>
void for_rows(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, RowFn&& row, Tr = {},
              Batch batch = nullptr) {
  const RowWalk<T, Tr> walk(job);
  const int nd = job.ndim;
  const std::size_t n = walk.n, inner = walk.inner, tile = walk.tile, pitch = walk.pitch;
  const std::int64_t x_step = job.x_strides[nd - 1], y_step = job.y_strides[nd - 1];
  const bool read_only = walk.read_only, x_contig = walk.x_contig, y_contig = walk.y_contig;
  T* const buffer = reinterpret_cast<T*>(scratch);
  constexpr std::size_t W = RowWalk<T, Tr>::W;
  const bool columns = walk.columns;
  constexpr bool kBatched = !std::is_same<Batch, std::nullptr_t>::value;
  const T* bx[kRowBatch];
  T* by[kRowBatch];
  int bk = 0;
  for (std::size_t r = r0; r < r1;) {
    std::int64_t xo = 0, yo = 0;  // unravel r over the outer axes (2-D: no division)
    if (nd == 2) {
      xo = std::int64_t(r) * job.x_strides[0];
      yo = std::int64_t(r) * job.y_strides[0];
    } else {
      for (std::size_t rest = r, d = std::size_t(nd - 1); d-- > 0;) {
        const std::int64_t i = static_cast<std::int64_t>(rest % std::size_t(job.shape[d]));
        rest /= std::size_t(job.shape[d]);
        xo += i * job.x_strides[d];
        yo += i * job.y_strides[d];
      }
    }
    const char* xr = job.x + xo;
    char* yr = read_only ? nullptr : job.y + yo;
    if (x_contig && (y_contig || read_only)) {
      if constexpr (kBatched) {
        if (!read_only) {
          bx[bk] = reinterpret_cast<const T*>(xr);
          by[bk] = reinterpret_cast<T*>(yr);
          if (++bk == kRowBatch) {
            batch(bk, bx, by);
            bk = 0;
          }
          ++r;
          continue;
        }
      }
      row(r, reinterpret_cast<const T*>(xr), reinterpret_cast<T*>(yr));
      ++r;
      continue;
    }
    // g rows r..r+g-1: adjacent in memory (tiles), or just row r.
    const std::size_t g = tile > 1 ? std::min({tile, inner - r % inner, r1 - r}) : 1;
    if constexpr (W > 0) {
      // All the adjacent rows at once (the tile buffer's bound does not apply: each group
      // copies only its own strips).
      const std::size_t gc = columns ? std::min(inner - r % inner, r1 - r) : 0;
      if (gc >= W) {
        const bool log = job.op == Op::log_softmax, reload = job.algorithm == Algorithm::three_pass_reload;
        const std::size_t fit = walk.column_fit(n);
        std::size_t done = 0;  // columns done; a group that needs the exact path stops here
        while (gc - done >= W) {
          const std::size_t strips = std::min({(gc - done) / W, Tr::kColumnStrips, fit});
          if (!Tr::three_pass_columns(n, xr + done * sizeof(T), x_step, yr + done * sizeof(T), y_step, strips, log, reload,
                                      scratch))
            break;
          done += strips * W;
        }
        if (done) {
          r += done;
          continue;
        }
      }
    }
    T* work = g == 1 && y_contig ? reinterpret_cast<T*>(yr) : buffer;
    const std::int64_t pitch_bytes = std::int64_t(pitch * sizeof(T));
    constexpr std::size_t kB = Tr::kBlock;
    // Whole kB x kB blocks of (axis position, row of the tile) in registers; the rest below.
    std::size_t i0 = 0;
    if (kB && g >= kB) {
      const std::size_t gb = g / kB * kB;
      for (; i0 + kB <= n; i0 += kB) {
        const char* src = xr + std::int64_t(i0) * x_step;
        for (std::size_t k = 0; k < gb; k += kB)
          Tr::transpose(src + k * sizeof(T), x_step, &work[k * pitch + i0], pitch_bytes);
        for (std::size_t k = gb; k < g; ++k)
          for (std::size_t i = i0; i < i0 + kB; ++i)
            std::memcpy(&work[k * pitch + i], xr + std::int64_t(i) * x_step + k * sizeof(T), sizeof(T));
      }
    }
    for (std::size_t i = i0; i < n; ++i) {
      const char* src = xr + std::int64_t(i) * x_step;
      if (g > 1 && i + kTilePrefetch < n)
        for (std::size_t b = 0; b < g * sizeof(T); b += 64) __builtin_prefetch(src + kTilePrefetch * x_step + b);
      for (std::size_t k = 0; k < g; ++k) std::memcpy(&work[k * pitch + i], src + k * sizeof(T), sizeof(T));
    }
    for (std::size_t k = 0; k < g; ++k) row(r + k, work + k * pitch, read_only ? nullptr : work + k * pitch);
    if (!read_only && (g > 1 || !y_contig)) {
      std::size_t j0 = 0;
      if (kB && g >= kB) {
        const std::size_t gb = g / kB * kB;
        for (; j0 + kB <= n; j0 += kB) {
          char* dst = yr + std::int64_t(j0) * y_step;
          for (std::size_t k = 0; k < gb; k += kB)
            Tr::transpose(&work[k * pitch + j0], pitch_bytes, dst + k * sizeof(T), y_step);
          for (std::size_t k = gb; k < g; ++k)
            for (std::size_t i = j0; i < j0 + kB; ++i)
              std::memcpy(yr + std::int64_t(i) * y_step + k * sizeof(T), &work[k * pitch + i], sizeof(T));
        }
      }
      for (std::size_t i = j0; i < n; ++i) {
        char* dst = yr + std::int64_t(i) * y_step;
        if (g > 1 && i + kTilePrefetch < n)
          for (std::size_t b = 0; b < g * sizeof(T); b += 64) __builtin_prefetch(dst + kTilePrefetch * y_step + b, 1);
        for (std::size_t k = 0; k < g; ++k) std::memcpy(dst + k * sizeof(T), &work[k * pitch + i], sizeof(T));
      }
    }
    r += g;
  }
  if constexpr (kBatched) {
    if (bk) batch(bk, bx, by);
  }
}

// Rows [r0, r1) of a job of short rows (n <= kChunk), one after another.
// scratch: a block laid out by scratch_layout<S, Tr>(job); null when that is empty.
template <class S, class P, class Tr = NoBlockTranspose>
void run_short_rows(const P& p, const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, Tr tr = {}) {
  FlushDenormals ftz;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const RowRunner<S, P, SerialChunks> runner(
      p, SerialChunks{}, job.op, job.algorithm, n, job.stream,
      scratch ? runner_scratch<S>(scratch, scratch_layout<S, Tr>(job), n) : RunnerScratch<compute_t<S>>{});
  for_rows<S>(job, r0, r1, scratch, [&](std::size_t, const S* x, S* y) { runner.row(x, y); }, tr,
             [&](int count, const S* const* xs, S* const* ys) { runner.rows(count, xs, ys); });
}

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
