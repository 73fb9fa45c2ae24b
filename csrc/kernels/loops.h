// The row loops of the fast passes over a vector type V (see passes.h): loads and stores
// by storage type, software prefetch, the unrolled block over A independent accumulators,
// the cascade over blocks, the elementwise map and the final write. Included by passes.h,
// inside the tier's namespace (FASTSOFTMAX_TIER).

// Once per translation unit: a unit holds one tier.
#pragma once

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including loops.h"
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/accumulators.h"

namespace fastsoftmax {

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

// The loops over V (the tier's vector of the compute type T); S: the storage type of x and y;
// kExp16: over Exp16's accumulators (softmax with 16-bit storage).
template <class V, class S = typename V::T, bool kExp16 = false>
struct Loops : Accumulators<V, S, kExp16> {
  using T = typename V::T;
  using IO = Io<V, S>;
  using R = typename V::reg;
  using M = typename V::mask;
  using C = Constants<T>;
  static constexpr std::size_t N = V::N;
  static constexpr std::size_t A = V::kAccumulators;  // independent accumulators
  static constexpr std::size_t U = N * A;              // elements per unrolled step
  static constexpr std::size_t B = U * 16;             // elements per cascade block

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
  template <class Acc, class = void>
  struct IsPaired { static constexpr bool value = false; };
  template <class Acc>
  struct IsPaired<Acc, decltype(void(Acc::kPaired))> { static constexpr bool value = Acc::kPaired; };

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
    std::size_t j = 0;
    if constexpr (IsPaired<Acc>::value) {
      // State a takes its vectors of two consecutive steps of U at once (columns.h
      // reproduces this order for SumExpAcc).
      for (; j + 2 * U <= count; j += 2 * U) {
        if (pf) prefetch_ahead(x + j, 2 * U);
        for (std::size_t a = 0; a < A; ++a) {
          const R v = IO::loadu(x + j + a * N), w = IO::loadu(x + j + U + a * N);
          if (kCheck) bad = V::mask_or(bad, V::mask_or(V::above_or_nan(v, high), V::above_or_nan(w, high)));
          R ov, ow;
          acc.update_pair(s[a], v, w, ov, ow);
          if (kStore) {
            V::storeu(y + j + a * N, ov);
            V::storeu(y + j + U + a * N, ow);
          }
        }
      }
    }
    for (; j < count; j += U) {
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
    if (!stream || !can_stream(y)) return map_row(n, x, y, f);
    stream_row(n, x, y, f);
    V::stream_fence();
  }
  // Whether stream_row can write y: a vector tier, y aligned to its element size.
  template <class Out>
  static bool can_stream(const Out* y) {
    return N > 1 && reinterpret_cast<std::uintptr_t>(y) % sizeof(Out) == 0;
  }
  // y = f(x) with non-temporal stores from y's first vector-aligned element, masked stores
  // before it and after the last whole vector; unfenced (the caller fences before y is
  // read elsewhere). y: can_stream(y).
  template <class In, class Out, class F>
  static void stream_row(std::size_t n, const In* x, Out* y, F f) {
    const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(y);
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
    map_tail(i, n, x, y, f);
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
