// Three-pass softmax over the columns of a tile (softmax along a non-last axis), over a
// vector type V (see passes.h). Included by passes.h, inside the tier's namespace
// (FASTSOFTMAX_TIER), after rows.h (row_rules.h: three_pass_constant, sum_in_chunk_order).

// Once per translation unit: a unit holds one tier.
#pragma once

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including columns.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/loops.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

// The column kernel over V (the tier's vector of the compute type T); S: the storage type
// (the kernel runs where S is T; for 16-bit storage it declines every call).
template <class V, class S = typename V::T>
struct Columns : Loops<V, S> {
  using L = Loops<V, S>;
  using T = typename V::T;
  using R = typename V::reg;
  using M = typename V::mask;
  using C = Constants<T>;
  static constexpr std::size_t N = V::N;
  static constexpr std::size_t A = V::kAccumulators;
  static constexpr std::size_t U = N * A;
  static constexpr std::size_t B = U * 16;
  template <bool kStoreShifted>
  using SumExpAcc = typename Accumulators<V, S>::template SumExpAcc<kStoreShifted>;
  static_assert(SumExpAcc<false>::kPaired, "block below reproduces the paired order of Loops::block");
  using Exp<V, S>::exp_shifted;

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
  // Bound on a group's copy (row_walk.h picks the strips): about the L2, a little over it --
  // wider groups (fewer page visits) gain more than the copy's spill costs up to this size
  // (docs/results.md, "Design measurements").
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
      const R e = Exp<V, S>::exp_shifted_fast(v, mu[g]);
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
      std::size_t j = 0;
      for (; j + 2 * U <= count; j += 2 * U)  // SumExpAcc is paired: two steps of U at a time
        for (std::size_t a = 0; a < A; ++a)
          for (std::size_t l = 0; l < N; ++l)
            for (std::size_t g = 0; g < strips; ++g) {
              R* s = slot_at(a, l, g);
              const R ev = exp_at<kStore, kShifted>(i0 + j + a * N + l, g);
              *s = V::add(*s, V::add(ev, exp_at<kStore, kShifted>(i0 + j + U + a * N + l, g)));
            }
      for (; j < count; j += U)
        for (std::size_t a = 0; a < A; ++a)
          for (std::size_t l = 0; l < N; ++l)
            for (std::size_t g = 0; g < strips; ++g) {
              R* s = slot_at(a, l, g);
              *s = V::add(*s, exp_at<kStore, kShifted>(i0 + j + a * N + l, g));
            }
      for (std::size_t l = 0; l < N; ++l)
        for (std::size_t g = 0; g < strips; ++g) out[l * strips + g] = L::template merge_tree<SumExpAcc<false>, A>(slot_at(0, l, g));
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
  // thread's scratch block, allocated before the call wrote anything: row_scratch.h).
  static bool prim_three_pass_columns(std::size_t n, const void* xv, std::int64_t xs, void* yv, std::int64_t ys,
                                      std::size_t strips, bool log, bool reload, bool stream, void* scratch_bytes) {
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
      // Per column, the row runner's scalar glue (row_rules.h): the one chunk's sum in double,
      // then the last pass's constant.
      alignas(64) T col_mu[kColumnStrips * N], col_sigma[kColumnStrips * N], col_c[kColumnStrips * N];
      for (std::size_t g = 0; g < strips; ++g) {
        V::storeu(col_mu + g * N, c.mu[g]);
        V::storeu(col_sigma + g * N, sigma[g]);
      }
      for (std::size_t k = 0; k < strips * N; ++k)
        col_c[k] = three_pass_constant(log, reload, col_mu[k], sum_in_chunk_order(&col_sigma[k], 1));
      R cv[kColumnStrips];
      for (std::size_t g = 0; g < strips; ++g) cv[g] = V::loadu(col_c + g * N);
      // Pass 3: reload_scale / reload_sub, or write_exp_scaled / write_sub, into y. Where
      // y cannot stay in the last-level cache (stream) and every strip starts on a vector
      // boundary of y, non-temporal stores skip the read-for-ownership of y's lines.
      const auto pass3 = [&](auto store, bool prefetch) {
        for (std::size_t i = 0; i < n; ++i) {
          T* yi = reinterpret_cast<T*>(y + std::int64_t(i) * ys);
          if (prefetch && i + kColumnPrefetch < n)  // for writing: y's lines are far apart too
            for (std::size_t b = 0; b < strips * N * sizeof(T); b += 64)
              __builtin_prefetch(y + std::int64_t(i + kColumnPrefetch) * ys + std::int64_t(b), 1);
          for (std::size_t g = 0; g < strips; ++g) {
            const R v = V::loadu(c.xp(i, g));
            R out;
            if (reload) out = log ? V::sub(v, cv[g]) : V::mul(v, cv[g]);
            else out = log ? V::sub(v, cv[g]) : V::mul(Exp<V, S>::exp_shifted_fast(v, c.mu[g]), cv[g]);
            store(yi + g * N, out);
          }
        }
      };
      const std::size_t vector_bytes = N * sizeof(T);
      if (N > 1 && stream && reinterpret_cast<std::uintptr_t>(y) % vector_bytes == 0 && ys % std::int64_t(vector_bytes) == 0) {
        pass3([](T* p, R v) { V::stream(p, v); }, false);
        V::stream_fence();
      } else {
        pass3([](T* p, R v) { V::storeu(p, v); }, true);
      }
      return true;
    }
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
