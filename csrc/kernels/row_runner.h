// The per-row algorithms: which chunk primitive runs when, and the exact scalar glue
// between them (RowRunner), over a primitive table or the tier's direct functions.
// Included through rows.h, which the includer has given its namespace.
#pragma once
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

#include "kernels/exact.h"
#include "kernels/primitives.h"
#include "kernels/row_rules.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

// The statistics of rows outside the fast range, and the exact path that computes them:
// kernels/exact.h.

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
  // Three-pass reload's middle row when S is not T (n elements); for a batch of rows that
  // lean_reload takes, kRowBatch middle rows lean_stride(n) apart (16-bit storage, or a job
  // that streams y).
  T* reload = nullptr;
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

// Fetches `bytes` from p into the L2 (the next batch's rows while this batch computes; see
// RowRunner::prefetch_row for why).
inline void prefetch_to_l2(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 2);
}

// Whether RowRunner writes each row's y with non-temporal stores: rows too big for the
// cache alone, and in a job too big for it (prefetch_rows) the rows whose last pass reads x
// (two-pass, online, recompute), which y's read-for-ownership would otherwise slow. Reload's
// last pass reads its middle row, y itself for the compute type; lean_reload streams its
// batches itself.
inline bool stream_rows_of(const RowsJob& job) {
  return job.stream || (job.prefetch_rows && job.algorithm != Algorithm::three_pass_reload);
}

// The distance between lean_reload's middle rows in the scratch: whole 64-byte lines.
constexpr std::size_t lean_stride(std::size_t n) { return (n + 15) / 16 * 16; }

// prefetch_to_l2 of kBytes, the prefetches unrolled: as a loop, inside a function that
// was inlined into lean_reload, they lost their effect (docs/results.md).
template <std::size_t kBytes>
__attribute__((always_inline)) inline void prefetch_lines_to_l2(const char* p) {
#pragma GCC unroll 64
  for (std::size_t b = 0; b < kBytes; b += 64) __builtin_prefetch(p + b, 0, 2);
}

// Whether P (the tier's direct functions) has the lean form of a batch of short reload rows.
template <class P, class = void>
struct HasLeanReload : std::false_type {};
template <class P>
struct HasLeanReload<P, decltype(void(&P::lean_reload))> : std::true_type {};

// One row's algorithm over primitives P (a Primitives<S> table of pointers, or the tier's
// direct functions) and a chunk executor Chunks (serial, or spread over threads). S is the
// storage type of the rows, T the type they are computed in.
template <class S, class P, class Chunks>
class RowRunner {
  using T = compute_t<S>;

 public:
  // scratch: what scratch_layout() sized for the job (unused parts null).
  RowRunner(const P& p, Chunks chunks, Op op, Algorithm alg, std::size_t n, bool stream, RunnerScratch<T> scratch)
      : p_(p),
        chunks_exec_(chunks),
        log_(op == Op::log_softmax),
        alg_(alg),
        n_(n),
        chunks_(chunk_count(n)),
        stream_(stream),
        scratch_(scratch) {}

  // Up to kRowBatch rows at once: the same steps as row() on each (so the same bits: the
  // batch rule of row_rules.h), phase by phase, so that the short dependency chains of
  // one-chunk rows -- horizontal reductions, the division -- overlap instead of running back
  // to back. Reload rows that the tier's lean_reload takes (at most Passes::kLeanBlocks
  // blocks; auto's choice for such rows), any dtype: lean_reload; other three-pass rows of
  // float32/float64: three_pass_batch; others one by one.
  // next: the next batch's x rows (next_count of them), prefetched meanwhile (prefetch_row).
  // stream_job: the job cannot stay in the last-level cache (lean_reload streams y).
  void rows(int count, const S* const* x, S* const* y, int next_count = 0, const S* const* next = nullptr,
            bool stream_job = false) const {
    if constexpr (HasLeanReload<P>::value) {
      // The tier's one-function form of three_pass_batch for reload rows of at most
      // kLeanBlocks blocks (Passes::lean_reload): the same steps, the same bits.
      if (alg_ == Algorithm::three_pass_reload && chunks_ == 1 && !stream_ && p_.lean_fits(n_)) {
        return p_.lean_reload(count, x, y, n_, log_, stream_job, next_count, next, scratch_.reload);
      }
    }
    const bool three = alg_ == Algorithm::three_pass_reload || alg_ == Algorithm::three_pass_recompute;
    if (std::is_same<S, T>::value && chunks_ == 1 && three && count > 1)
      return three_pass_batch(count, x, y, next_count, next);
    for (int i = 0; i < count; ++i) {
      if (i < next_count) prefetch_row(next[i]);
      row(x[i], y[i]);
    }
  }

  // After the last rows() with stream_job: the non-temporal stores ordered before what follows.
  void stream_fence() const {
    if constexpr (HasLeanReload<P>::value) p_.stream_fence();
  }

  // Rows of a batch are short, and the hardware prefetcher, which follows demand loads,
  // stops running ahead while a row's exp pass computes from cache: so the next batch's
  // rows are fetched into the L2 during that pass, and its max pass finds them there
  // (docs/results.md, "Design measurements"). Rows up to kPrefetchRowBytes.
  static constexpr std::size_t kPrefetchRowBytes = 16384;
  void prefetch_row(const S* x) const {
    const std::size_t bytes = n_ * sizeof(S);
    if (bytes <= kPrefetchRowBytes) prefetch_to_l2(x, bytes);
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
  // The row's two-pass statistics: sum of e^x = m * 2^e * e^shift (see kernels/exact.h). Rows
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
    fastsoftmax::exact::from_stats(n_, x, y, log_, m, e, shift);
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
    merge_pair_chunks(m, e, chunks_, sum_out, e_out);
    // !(sum < inf) also catches NaN (a NaN or +inf input reaches the sum as NaN).
    return *sum_out < std::numeric_limits<double>::infinity() && *e_out >= FastRange<T>::kMinRowExponent &&
           *e_out <= FastRange<T>::kMaxRowExponent;
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

  // The statistics of a row outside the fast range (kernels/exact.h).
  void exact_stats(const S* x, double* m, double* e, double* shift) const {
    fastsoftmax::exact::stats<S>(n_, reinterpret_cast<const char*>(x), std::int64_t(sizeof(S)), m, e, shift);
  }
  void exact_stats(const StridedRow& x, double* m, double* e, double* shift) const {
    fastsoftmax::exact::stats<S>(n_, x.x, x.step, m, e, shift);
  }

  void write_from_pair(const S* x, S* y, double sum, double e_max) const {
    if (log_) {
      const T c0 = static_cast<T>(std::log(sum) + e_max * kLn2[0]);
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
    double mu_max, sum;
    merge_online_chunks(mu, sigma, chunks_, &mu_max, &sum);
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
    const T mu_max = max_in_chunk_order(mu, chunks_);
    bool any_bad = false;
    for (std::size_t c = 0; c < chunks_; ++c) any_bad = any_bad || bad[c];
    if (!three_pass_fast(any_bad, mu_max)) return exact(x, y);
    T* w = reload_row(y);
    each_chunk([&](std::size_t c) { sigma[c] = exp_pass(size(c), x + begin(c), w ? w + begin(c) : nullptr, mu_max); });
    finish_three_pass(x, y, w, mu_max, sum_in_chunk_order(sigma, chunks_));
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
  // rows before the next (see rows()); three_pass's steps, row by row (row_rules.h).
  void three_pass_batch(int count, const S* const* x, S* const* y, int next_count, const S* const* next) const {
    T mu[kRowBatch], sigma[kRowBatch];
    bool fast[kRowBatch];
    for (int i = 0; i < count; ++i) {
      T m;
      const bool bad = p_.max(n_, x[i], &m);
      mu[i] = max_in_chunk_order(&m, 1);
      fast[i] = three_pass_fast(bad, mu[i]);
    }
    // S == T: reload keeps its middle row in y, as ReloadBuffer does.
    const auto w = [y](int i) { return reinterpret_cast<T*>(y[i]); };
    for (int i = 0; i < count; ++i) {
      if (i < next_count) prefetch_row(next[i]);
      if (fast[i]) sigma[i] = exp_pass(n_, x[i], w(i), mu[i]);
    }
    for (int i = 0; i < count; ++i) {
      if (!fast[i]) {
        exact(x[i], y[i]);
        continue;
      }
      finish_three_pass(x[i], y[i], w(i), mu[i], sum_in_chunk_order(&sigma[i], 1));
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

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
