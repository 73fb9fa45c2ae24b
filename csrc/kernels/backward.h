// The backward passes of softmax and log-softmax, written once over the vector type V like
// passes.h (which each tier's kernels_<isa>.cpp includes first: this file uses its Passes,
// Io and Cascade in the same namespace). Each tier instantiates them with
// FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_DEFINE_BACKWARD).
//
// For y = softmax(x) and an incoming gradient g = dL/dy:
//   softmax:     dx = y * (g - s), s = sum_j g_j y_j
//   log-softmax: dx = g - e^y * s, s = sum_j g_j        (y = log_softmax(x))
// Pass 1 reads the row(s) for s (sums in the compute type: per block of B elements A
// independent accumulators, blocks merged in Cascade's binary order, lanes by reduce_add;
// the order depends on n alone); pass 2 reads them again and writes dx, with non-temporal
// stores when the caller says the row does not fit in cache. backward.cpp splits rows
// longer than kChunk into chunks and adds their sums in double in chunk order.

#ifndef FASTSOFTMAX_TIER
#error "include passes.h (with FASTSOFTMAX_TIER defined) before backward.h"
#endif

#include <cstddef>
#include <cstdint>

#include "kernels/backward_primitives.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_TIER {

template <class V, class S = typename V::T>
struct BackwardPasses {
  using P = Passes<V, S>;
  using T = typename V::T;
  using IO = Io<V, S>;
  using R = typename V::reg;
  using M = typename V::mask;
  static constexpr std::size_t N = V::N;
  static constexpr std::size_t A = V::kAccumulators;
  static constexpr std::size_t U = N * A;
  static constexpr std::size_t B = U * 16;  // elements per cascade block

  // Element i of the row's terms: g[i] * y[i] (kDot) or g[i].
  template <bool kDot>
  static R term(const S* g, const S* y, std::size_t i) {
    if constexpr (kDot) return V::mul(IO::loadu(g + i), IO::loadu(y + i));
    else return IO::loadu(g + i);
  }
  template <bool kDot>
  static R acc_term(R acc, const S* g, const S* y, std::size_t i) {
    if constexpr (kDot) return V::fmadd(IO::loadu(g + i), IO::loadu(y + i), acc);
    else return V::add(acc, IO::loadu(g + i));
  }

  // The sum of count <= B terms, lane by lane: whole groups of U into A accumulators,
  // then whole vectors and the masked tail into the first.
  template <bool kDot>
  static R block_sum(const S* g, const S* y, std::size_t count, bool pf) {
    R s[A];
    for (std::size_t a = 0; a < A; ++a) s[a] = V::set1(T(0));
    std::size_t i = 0;
    for (; i + U <= count; i += U) {
      if (pf) {
        P::prefetch_ahead(g + i, U);
        if constexpr (kDot) P::prefetch_ahead(y + i, U);
      }
      for (std::size_t a = 0; a < A; ++a) s[a] = acc_term<kDot>(s[a], g, y, i + a * N);
    }
    for (; i + N <= count; i += N) s[0] = acc_term<kDot>(s[0], g, y, i);
    if (i < count) {
      const std::size_t k = count - i;
      const M m = V::tail_mask(k);
      R t = IO::load_tail(g + i, k, m);
      if constexpr (kDot) t = V::mul(t, IO::load_tail(y + i, k, m));
      s[0] = V::add(s[0], V::select(m, t, V::set1(T(0))));
    }
    return P::template merge_tree<typename P::SumAcc, A>(s);
  }

  template <bool kDot>
  static T row_sum(std::size_t n, const S* g, const S* y) {
    const bool pf = P::prefetch_for(n);  // the forward passes' rule (loops.h)
    if (n <= B) return V::reduce_add(block_sum<kDot>(g, y, n, pf));
    Cascade<typename P::SumAcc> cascade;
    std::size_t i = 0;
    for (; i + B <= n; i += B) cascade.push(block_sum<kDot>(g + i, y ? y + i : y, B, pf));
    if (i < n) cascade.push(block_sum<kDot>(g + i, y ? y + i : y, n - i, pf));
    return V::reduce_add(cascade.total());
  }
  static T prim_dot(std::size_t n, const S* g, const S* y) { return row_sum<true>(n, g, y); }
  static T prim_sum(std::size_t n, const S* g) { return row_sum<false>(n, g, nullptr); }

  // dx[i] = f(y[i], g[i]): unrolled by A, then whole vectors, then one masked vector. With
  // stream, dx is written with non-temporal stores from its first vector-aligned element.
  template <class F>
  static void write_dx(std::size_t n, const S* y, const S* g, S* dx, bool stream, F f) {
    std::size_t i = 0;
    const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(dx);
    const auto masked = [&](std::size_t at, std::size_t k) {
      const M m = V::tail_mask(k);
      IO::store_tail(dx + at, f(IO::load_tail(y + at, k, m), IO::load_tail(g + at, k, m)), k, m);
    };
    if (N > 1 && stream && addr % sizeof(S) == 0) {
      std::size_t head = (N - (addr / sizeof(S)) % N) % N;
      if (head > n) head = n;
      if (head) masked(0, head);
      const bool pf = P::prefetch_for(n);
      for (i = head; i + U <= n; i += U) {
        R a[A], b[A];
        if (pf) {
          P::prefetch_ahead(y + i, U);
          P::prefetch_ahead(g + i, U);
        }
        for (std::size_t k = 0; k < A; ++k) a[k] = IO::loadu(y + i + k * N);
        for (std::size_t k = 0; k < A; ++k) b[k] = IO::loadu(g + i + k * N);
        for (std::size_t k = 0; k < A; ++k) IO::stream(dx + i + k * N, f(a[k], b[k]));
      }
      V::stream_fence();
    } else {  // the row was just read by pass 1 and is in cache: no software prefetch
      for (; i + U <= n; i += U) {
        R a[A], b[A];
        for (std::size_t k = 0; k < A; ++k) a[k] = IO::loadu(y + i + k * N);
        for (std::size_t k = 0; k < A; ++k) b[k] = IO::loadu(g + i + k * N);
        for (std::size_t k = 0; k < A; ++k) IO::storeu(dx + i + k * N, f(a[k], b[k]));
      }
    }
    for (; i + N <= n; i += N) IO::storeu(dx + i, f(IO::loadu(y + i), IO::loadu(g + i)));
    if (i < n) masked(i, n - i);
  }

  static void prim_softmax_dx(std::size_t n, const S* y, const S* g, S* dx, T s, bool stream) {
    const R sv = V::set1(s);
    write_dx(n, y, g, dx, stream, [sv](R yv, R gv) { return V::mul(yv, V::sub(gv, sv)); });
  }
  // e^y by the forward's exp (exp.h, exp_shifted with mu = 0: y <= 0 for log-probabilities;
  // -inf and anything below kLow give exactly 0); g - e^y s rounded once (fma).
  static void prim_log_softmax_dx(std::size_t n, const S* y, const S* g, S* dx, T s, bool stream) {
    const R minus_s = V::set1(-s), zero = V::set1(T(0));
    write_dx(n, y, g, dx, stream, [=](R yv, R gv) { return V::fmadd(P::exp_shifted(yv, zero), minus_s, gv); });
  }

  // The roofline: the same reads and writes with trivial arithmetic (log: pass 1 reads g
  // alone, as log-softmax's sum of g does).
  static double prim_pattern(std::size_t n, const S* y, const S* g, S* dx, bool log) {
    R acc = V::set1(T(0));
    std::size_t i = 0;
    if (log)
      for (; i + N <= n; i += N) acc = V::add(acc, IO::loadu(g + i));
    else
      for (; i + N <= n; i += N) acc = V::add(acc, V::add(IO::loadu(y + i), IO::loadu(g + i)));
    const T c = V::reduce_add(acc) == T(0) ? T(1) : T(0.5);
    const R cv = V::set1(c);
    write_dx(n, y, g, dx, n * sizeof(S) >= streaming_threshold_bytes(),
             [cv](R yv, R gv) { return V::fmadd(yv, cv, gv); });
    return 0;
  }

  static const BackwardPrimitives<S>& primitives() {
    static const BackwardPrimitives<S> p = {&prim_dot, &prim_sum, &prim_softmax_dx, &prim_log_softmax_dx,
                                            &prim_pattern};
    return p;
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax

// fastsoftmax::<tier>::<dtype>_backward() for the current tier and one dtype of kernels.inc.
#define FASTSOFTMAX_DEFINE_BACKWARD(dt, stype)        \
  const BackwardPrimitives<stype>& dt##_backward() { \
    return BackwardPasses<Vec<compute_t<stype>>, stype>::primitives(); \
  }
