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
//
// The pieces, each in its own header: exp.h (the exp), accumulators.h (pass-1 states and
// their cascade), loops.h (the row loops), columns.h (three-pass over the columns of a
// tile), patterns.h (the memory-only patterns); the exact path is kernels/exact.cpp,
// compiled once without ISA flags. This file assembles the chunk primitives of a tier and
// their table.

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including passes.h"
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/exact.h"
#include "kernels/primitives.h"

#define FASTSOFTMAX_ROWS_NS FASTSOFTMAX_TIER
#include "kernels/rows.h"

#include "kernels/columns.h"
#include "kernels/loops.h"
#include "kernels/patterns.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

// V: the tier's vector of the compute type T; S: the storage type of x and y (T itself,
// or a 16-bit type computed in float32). kExp16: the passes of softmax with 16-bit storage S,
// over Exp16 (primitives() hands softmax.cpp that table for op softmax); the statistics API
// and log-softmax keep float32's exp.
template <class V, class S = typename V::T, bool kExp16 = false>
struct Passes : Loops<V, S, kExp16> {
  using T = typename V::T;
  using R = typename V::reg;
  using C = Constants<T>;
  static constexpr std::size_t N = V::N;
  using L = Loops<V, S, kExp16>;
  using Col = Columns<V, S>;
  using Acc = Accumulators<V, S, kExp16>;
  using MaxAcc = typename Acc::MaxAcc;
  using PairAcc = typename Acc::PairAcc;
  using OnlineAcc = typename Acc::OnlineAcc;
  template <bool kStoreShifted>
  using SumExpAcc = typename Acc::template SumExpAcc<kStoreShifted>;
  using E = Exp<V, S, kExp16>;
  using E::exp_parts;
  using E::exp_shifted;
  using L::write_row;

  // ---- row statistics ---------------------------------------------------------------

  struct PairSum { T m, e; };
  static PairSum pair_sum(std::size_t n, const S* x) {
    bool unused;
    const typename PairAcc::State s = L::template reduce_row<PairAcc, false>(PairAcc{}, n, x, nullptr, unused);
    const T e = V::reduce_max(s.e);
    const T m = V::reduce_add(V::scale(s.m, V::sub(s.e, V::set1(e))));
    return {m, e};
  }

  struct MaxSum { T mu, sigma; };
  static T sum_exp(std::size_t n, const S* x, T mu) {
    bool unused;
    return V::reduce_add(L::template reduce_row<SumExpAcc<false>, false>({V::set1(mu)}, n, x, nullptr, unused));
  }
  static MaxSum online_sum(std::size_t n, const S* x) {
    bool unused;
    const typename OnlineAcc::State s = L::template reduce_row<OnlineAcc, false>(OnlineAcc{}, n, x, nullptr, unused);
    const T mu = V::reduce_max(s.mx);
    const T sigma = V::reduce_add(V::mul(s.s, E::template exp_shifted<false>(s.mx, V::set1(mu))));
    return {mu, sigma};
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
    *mu = V::reduce_max(L::template reduce_row<MaxAcc, true>(MaxAcc{}, n, x, nullptr, bad));
    return bad;
  }
  static T prim_sum_exp(std::size_t n, const S* x, T mu) { return sum_exp(n, x, mu); }
  static T prim_store_exp(std::size_t n, const S* x, T* w, T mu) {  // w = e^(x-mu); sum
    bool unused;
    return V::reduce_add(L::template reduce_row<SumExpAcc<false>, false, true>({V::set1(mu)}, n, x, w, unused));
  }
  static T prim_store_shifted(std::size_t n, const S* x, T* w, T mu) {  // w = x-mu; sum e^(x-mu)
    bool unused;
    return V::reduce_add(L::template reduce_row<SumExpAcc<true>, false, true>({V::set1(mu)}, n, x, w, unused));
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
    write_row(n, x, y, stream, [=](R v) { return V::mul(E::exp_shifted_fast(v, muv), invv); });
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

  // ---- short rows, three-pass reload -------------------------------------------------
  // Up to kRowBatch contiguous rows of at most kLeanBlocks blocks (lean_fits: up to 16384
  // float32 elements on AVX-512), phase by phase as RowRunner::three_pass_batch, with the same
  // arithmetic in the same order: MaxAcc's range check and max; SumExpAcc's steps as
  // reduce_row takes them (per block: paired steps, a last single step, merge_tree, single
  // vectors, the masked tail padded with kLow; blocks merged by a Cascade when there are
  // several), reduce_add, sum_in_chunk_order and three_pass_constant; the reload pass. One
  // function with no per-pass set-up, which short rows paid for in the layered loops
  // (docs/results.md, "Batched rows against one long row"). The middle row is y itself for
  // the compute type, else a float32 row of `middle`, the thread's scratch (kRowBatch rows
  // lean_stride(n) apart: scratch_layout). Rows outside the fast range take the exact path.
  static constexpr std::size_t kLeanBlocks = 16;
  static bool lean_fits(std::size_t n) { return n > 0 && n <= kLeanBlocks * L::B; }
  // One block of lean_reload's exp pass: `count` elements of x (at most B), their e^(x - mu)
  // (or x - mu) stored to w, summed into one state in partial_block's order. pf: the same
  // elements of the next batch's row, fetched into the L2 a step at a time, so that memory
  // keeps working while the exps compute (a burst of prefetches before the pass left it
  // idle for most of the pass), unrolled (prefetch_lines_to_l2).
  template <bool kLog, bool kSteps>
  __attribute__((always_inline)) static typename SumExpAcc<kLog>::State lean_exp_block_inline(
      const SumExpAcc<kLog>& acc, const S* x, T* w, std::size_t count, const char* pf) {
    using IO = typename L::IO;
    using Acc = SumExpAcc<kLog>;
    constexpr std::size_t A = V::kAccumulators, U = L::U;
    const std::size_t whole = kSteps ? count : count / U * U, rest = kSteps ? count : count - count % N;
    const R low = V::set1(C::kLow);
    typename Acc::State st = Acc::init();
    std::size_t j = 0;
    if (whole) {  // block(): paired steps, then a single step
      typename Acc::State s[A];
      for (std::size_t a = 0; a < A; ++a) s[a] = Acc::init();
      for (; j + 2 * U <= whole; j += 2 * U) {
        if (pf) prefetch_lines_to_l2<2 * U * sizeof(S)>(pf + j * sizeof(S));
        for (std::size_t a = 0; a < A; ++a) {
          R ov, ow;
          acc.update_pair(s[a], IO::loadu(x + j + a * N), IO::loadu(x + j + U + a * N), ov, ow);
          V::storeu(w + j + a * N, ov);
          V::storeu(w + j + U + a * N, ow);
        }
      }
      if constexpr (!kSteps)
        for (; j < whole; j += U)
          for (std::size_t a = 0; a < A; ++a) V::storeu(w + j + a * N, acc.update(s[a], IO::loadu(x + j + a * N)));
      st = L::template merge_tree<Acc, A>(s);
    }
    if constexpr (!kSteps) {
      if (pf && j < count) prefetch_to_l2(pf + j * sizeof(S), (count - j) * sizeof(S));
      for (j = whole; j < rest; j += N) V::storeu(w + j, acc.update(st, IO::loadu(x + j)));
      if (const std::size_t tail_n = count - rest) {
        const typename V::mask tail = V::tail_mask(tail_n);
        V::store_tail(w + rest, acc.update(st, V::select(tail, IO::load_tail(x + rest, tail_n, tail), low)), tail);
      }
    }
    return st;
  }
  // The same, inlined where the compiler chooses: for the blocks of a longer row, and for
  // the rows of a job that fetches the next ones (kStream). Forced inline there, those jobs
  // and one-block rows of other lengths measured slower; one-block rows of jobs that fetch
  // nothing take the inline form (docs/results.md).
  template <bool kLog, bool kSteps>
  static typename SumExpAcc<kLog>::State lean_exp_block(const SumExpAcc<kLog>& acc, const S* x, T* w,
                                                         std::size_t count, const char* pf) {
    return lean_exp_block_inline<kLog, kSteps>(acc, x, w, count, pf);
  }
  // kSteps: n is a multiple of two unrolled steps (128 float32 on AVX-512), the common
  // attention rows: no single step, vectors or tail, and the loops known to be whole.
  // kStream: the job cannot stay in the last-level cache; the middle rows are in `middle`
  // for every dtype, and y is written with non-temporal stores (no read-for-ownership; the
  // caller fences them once, after its last batch: Direct::stream_fence).
  // next: the next batch's rows (next_count of them), each fetched into the L2 while a row
  // of this batch computes its exps (RowRunner::prefetch_row's reason).
  template <bool kLog, bool kSteps, bool kStream>
  static void lean_reload(int count, const S* const* x, S* const* y, std::size_t n, int next_count,
                          const S* const* next, T* middle) {
    using IO = typename L::IO;
    constexpr bool kSame = std::is_same<S, T>::value && !kStream;
    constexpr std::size_t A = V::kAccumulators, U = L::U, B = L::B;
    using M = typename V::mask;
    const std::size_t whole = kSteps ? n : n / U * U, rest = kSteps ? n : n - n % N;  // rest: end of the whole vectors
    const std::size_t tail_n = n - rest;
    const M tail = V::tail_mask(tail_n);
    T mu[kRowBatch], sigma[kRowBatch];
    bool fast[kRowBatch];
    const std::size_t stride = lean_stride(n);
    const auto w = [&](int i) { return kSame ? reinterpret_cast<T*>(y[i]) : middle + std::size_t(i) * stride; };
    const R high = V::set1(C::kHigh), low = V::set1(C::kLow);
    for (int i = 0; i < count; ++i) {
      const S* xi = x[i];
      typename MaxAcc::State m[A];
      for (std::size_t a = 0; a < A; ++a) m[a] = MaxAcc::init();
      M bad = V::mask_none();
      for (std::size_t j = 0; j < whole; j += U)
        for (std::size_t a = 0; a < A; ++a) {
          const R v = IO::loadu(xi + j + a * N);
          bad = V::mask_or(bad, V::above_or_nan(v, high));
          m[a] = V::max(m[a], v);
        }
      R mm = L::template merge_tree<MaxAcc, A>(m);  // a max: any order gives the same bits
      if constexpr (!kSteps) {
        for (std::size_t j = whole; j < rest; j += N) {
          const R v = IO::loadu(xi + j);
          bad = V::mask_or(bad, V::above_or_nan(v, high));
          mm = V::max(mm, v);
        }
        if (tail_n) {
          const R v = V::select(tail, IO::load_tail(xi + rest, tail_n, tail), low);
          bad = V::mask_or(bad, V::above_or_nan(v, high));
          mm = V::max(mm, v);
        }
      }
      const T mx = V::reduce_max(mm);
      mu[i] = max_in_chunk_order(&mx, 1);
      fast[i] = three_pass_fast(V::mask_any(bad), mu[i]);
    }
    for (int i = 0; i < count; ++i) {
      const char* pf = i < next_count ? reinterpret_cast<const char*>(next[i]) : nullptr;
      if (!fast[i]) {
        if (pf) prefetch_to_l2(pf, n * sizeof(S));
        continue;
      }
      using Acc = SumExpAcc<kLog>;
      const Acc acc{V::set1(mu[i])};
      const S* xi = x[i];
      T* wi = w(i);
      typename Acc::State st;
      if (n <= B) {
        if constexpr (kStream) st = lean_exp_block<kLog, kSteps>(acc, xi, wi, n, pf);
        else st = lean_exp_block_inline<kLog, kSteps>(acc, xi, wi, n, nullptr);
      } else {  // reduce_row's cascade of blocks
        Cascade<Acc> cascade;
        for (std::size_t b = 0; b < n; b += B)
          cascade.push(lean_exp_block<kLog, kSteps>(acc, xi + b, wi + b, std::min(B, n - b), pf ? pf + b * sizeof(S) : nullptr));
        st = cascade.total();
      }
      sigma[i] = V::reduce_add(st);
    }
    for (int i = 0; i < count; ++i) {
      if (!fast[i]) {
        exact::row(n, x[i], y[i], kLog);
        continue;
      }
      const R c = V::set1(three_pass_constant(kLog, true, mu[i], sum_in_chunk_order(&sigma[i], 1)));
      const auto f = [c](R v) { return kLog ? V::sub(v, c) : V::mul(v, c); };
      const T* wi = w(i);
      S* yi = y[i];
      std::size_t j = 0;
      if constexpr (kStream) {
        if (L::can_stream(yi)) {
          L::stream_row(n, wi, yi, f);
          continue;
        }
      }
      for (; j + U <= n; j += U)
        for (std::size_t a = 0; a < A; ++a) IO::storeu(yi + j + a * N, f(V::loadu(wi + j + a * N)));
      if constexpr (!kSteps) {
        for (; j < rest; j += N) IO::storeu(yi + j, f(V::loadu(wi + j)));
        if (tail_n) IO::store_tail(yi + rest, f(V::load_tail(wi + rest, tail)), tail_n, tail);
      }
    }
  }

  // The same primitives as direct calls, for the short-row loop inside the tier.
  struct Direct {
    static bool lean_fits(std::size_t n) { return Passes::lean_fits(n); }
    static void lean_reload(int count, const S* const* x, S* const* y, std::size_t n, bool log, bool stream, int next_count,
                            const S* const* next, T* middle) {
      if (stream) {
        if (log) Passes::lean_reload<true, false, true>(count, x, y, n, next_count, next, middle);
        else Passes::lean_reload<false, false, true>(count, x, y, n, next_count, next, middle);
      } else if (n % (2 * L::U) == 0) {
        if (log) Passes::lean_reload<true, true, false>(count, x, y, n, next_count, next, middle);
        else Passes::lean_reload<false, true, false>(count, x, y, n, next_count, next, middle);
      } else {
        if (log) Passes::lean_reload<true, false, false>(count, x, y, n, next_count, next, middle);
        else Passes::lean_reload<false, false, false>(count, x, y, n, next_count, next, middle);
      }
    }
    static void stream_fence() { V::stream_fence(); }
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
    static void exact_row(std::size_t n, const S* x, S* y, bool log) { exact::row(n, x, y, log); }
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
  // The row walk's layout hooks (row_walk.h, RowWalk): block transposes, and the column
  // kernel where S is the compute type.
  struct Layout : Transposer<V> {
    static constexpr std::size_t kColumnWidth = std::is_same<S, T>::value ? N : 0;  // columns per strip
    static constexpr std::size_t kColumnStrips = Col::kColumnStrips;
    static constexpr std::size_t kColumnCopyBytes = Col::kColumnCopyBytes;
    static constexpr std::size_t kLeanMax = kLeanBlocks * L::B;
    static bool three_pass_columns(std::size_t n, const void* x, std::int64_t xs, void* y, std::int64_t ys,
                                   std::size_t strips, bool log, bool reload, bool stream, void* scratch) {
      return Col::prim_three_pass_columns(n, x, xs, y, ys, strips, log, reload, stream, scratch);
    }
    static std::size_t column_scratch_bytes(std::size_t n, std::size_t strips) {
      return Col::column_scratch_bytes(n, strips);
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
                                    &prim_reload_scale,  &prim_reload_sub,       &exact::row<S>,
                                    &prim_rows,          &prim_rows_scratch_bytes, softmax_table(&p)};
    return p;
  }
  static const Primitives<S>* softmax_table(const Primitives<S>* self) {
    if constexpr (sizeof(S) == 2 && !kExp16) return &Passes<V, S, true>::primitives();
    else return self;
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax

// Defines, for the current tier and one dtype of kernels.inc, the chunk primitives and the
// memory-only patterns: fastsoftmax::<tier>::<dtype>_primitives() and <dtype>_patterns().
#define FASTSOFTMAX_DEFINE_DTYPE(dt, stype)                                                     \
  const Primitives<stype>& dt##_primitives() { return Passes<Vec<compute_t<stype>>, stype>::primitives(); } \
  const PatternTable& dt##_patterns() { return Patterns<Vec<compute_t<stype>>, stype>::pattern_table(); }
