// The memory-only patterns (the roofline) of one storage type over a vector type V: the
// reads and writes of each algorithm without its arithmetic, through the same loops as the
// kernels (loops.h). Included by passes.h, inside the tier's namespace (FASTSOFTMAX_TIER).

// Once per translation unit: a unit holds one tier.
#pragma once

#ifndef FASTSOFTMAX_TIER
#error "define FASTSOFTMAX_TIER (the tier's namespace) before including patterns.h"
#endif

#include <cstddef>

#include "kernels/loops.h"
#include "kernels/primitives.h"

namespace fastsoftmax {

// Output rows of at least this many bytes are written with non-temporal stores (set
// from the cache sizes at run time; defined in softmax.cpp, outside the ISA files).
std::size_t streaming_threshold_bytes();

namespace FASTSOFTMAX_TIER {

// The patterns over V (the tier's vector of the compute type T); S: the storage type.
template <class V, class S = typename V::T>
struct Patterns : Loops<V, S> {
  using L = Loops<V, S>;
  using T = typename V::T;
  using R = typename V::reg;
  using SumAcc = typename Accumulators<V, S>::SumAcc;
  using L::map_row;
  using L::write_row;

  static double read_pass(std::size_t n, const S* x) {
    bool unused;
    return double(V::reduce_add(L::template reduce_row<SumAcc, false>(SumAcc{}, n, x, nullptr, unused)));
  }
  // The last write of each pattern goes through write_row, as in the real kernels.
  static void scale_pass(std::size_t n, const S* x, S* y, T c, bool last) {
    const R cv = V::set1(c);
    const auto f = [cv](R v) { return V::mul(v, cv); };
    if (last) write_row(n, x, y, n * sizeof(S) >= streaming_threshold_bytes(), f);
    else map_row(n, x, y, f);
  }
  static double pattern_read(std::size_t n, const void* x, void*) { return read_pass(n, static_cast<const S*>(x)); }
  static double pattern_copy(std::size_t n, const void* xv, void* yv) {
    map_row(n, static_cast<const S*>(xv), static_cast<S*>(yv), [](R v) { return v; });
    return 0;
  }
  static double pattern_two_pass(std::size_t n, const void* xv, void* yv) {  // R; R+W
    const S* x = static_cast<const S*>(xv);
    const double s = read_pass(n, x);
    scale_pass(n, x, static_cast<S*>(yv), s == 0 ? T(1) : T(0.5), true);
    return 0;
  }
  // R; R+W; R+W (for 16-bit storage the real algorithm keeps its middle row in float32,
  // so this pattern is a lower bound for it).
  static double pattern_three_pass_reload(std::size_t n, const void* xv, void* yv) {
    const S* x = static_cast<const S*>(xv);
    S* y = static_cast<S*>(yv);
    const double s = read_pass(n, x);
    scale_pass(n, x, y, s == 0 ? T(1) : T(0.5), false);
    scale_pass(n, y, y, T(2), true);
    return 0;
  }
  static double pattern_three_pass_recompute(std::size_t n, const void* xv, void* yv) {  // R; R; R+W
    const S* x = static_cast<const S*>(xv);
    const double s = read_pass(n, x) + read_pass(n, x);
    scale_pass(n, x, static_cast<S*>(yv), s == 0 ? T(1) : T(0.5), true);
    return 0;
  }
  static const PatternTable& pattern_table() {
    static const PatternTable t = {
#define FASTSOFTMAX_PATTERN_PTR(pat, pat_name) &pattern_##pat,
        FASTSOFTMAX_FOR_EACH_PATTERN(FASTSOFTMAX_PATTERN_PTR)
#undef FASTSOFTMAX_PATTERN_PTR
    };
    return t;
  }
};

}  // namespace FASTSOFTMAX_TIER
}  // namespace fastsoftmax
