#include "overlap.h"

#include <algorithm>
#include <cstdint>

namespace fastsoftmax {
namespace {

// Arrays spanning this many bytes or more are `unknown`: below it no sum the search forms
// (at most two spans plus an itemsize) can overflow an int64.
constexpr std::int64_t kMaxSpan = std::int64_t{1} << 62;
constexpr int kMaxAxes = 64;  // NumPy's NPY_MAXDIMS

struct Axis {
  std::int64_t stride;  // |stride| in bytes, > 0
  std::int64_t count;   // shape - 1 >= 1: the largest index difference along the axis
};

std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

// Depth-first search for index differences k (|k_i| <= count_i, k != 0) with
// |sum_i k_i * stride_i| < w, over the axes in order of decreasing stride. A solution's
// negation is one too, so the first nonzero k_i is taken positive.
struct Search {
  const Axis* axes;
  int m;
  std::int64_t w;
  const std::int64_t* reach;  // reach[i] = sum_{j >= i} stride_j * count_j; reach[m] = 0
  std::int64_t work_left;

  // Is there k_i, ..., k_{m-1} with |s + sum_{j >= i} k_j * stride_j| < w, and k != 0
  // overall (nonzero: some k_j, j < i, already is)?
  SelfOverlap find(int i, std::int64_t s, bool nonzero) {
    const Axis& a = axes[i];
    const std::int64_t r = reach[i + 1];  // the most the axes after i can still move s
    // s + k * stride must lie in (-w - r, w + r).
    const std::int64_t lo = std::max(ceil_div(-w - r + 1 - s, a.stride), nonzero ? -a.count : std::int64_t{0});
    const std::int64_t hi = std::min(floor_div(w + r - 1 - s, a.stride), a.count);
    if (i == m - 1) return std::max(lo, nonzero ? lo : std::int64_t{1}) <= hi ? SelfOverlap::yes : SelfOverlap::no;
    for (std::int64_t k = lo; k <= hi; ++k) {
      if (--work_left < 0) return SelfOverlap::unknown;
      const SelfOverlap f = find(i + 1, s + k * a.stride, nonzero || k != 0);
      if (f != SelfOverlap::no) return f;
    }
    return SelfOverlap::no;
  }
};

}  // namespace

SelfOverlap self_overlap(int ndim, const std::int64_t* shape, const std::int64_t* strides, std::int64_t itemsize,
                         std::int64_t max_work) {
  if (ndim > kMaxAxes || itemsize < 1 || itemsize >= kMaxSpan) return SelfOverlap::unknown;
  for (int d = 0; d < ndim; ++d)
    if (shape[d] == 0) return SelfOverlap::no;  // no elements
  Axis axes[kMaxAxes];
  int m = 0;
  std::int64_t span = itemsize;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SelfOverlap::unknown;
    if (shape[d] == 1) continue;
    if (strides[d] == 0) return SelfOverlap::yes;
    if (strides[d] <= -kMaxSpan || strides[d] >= kMaxSpan) return SelfOverlap::unknown;
    const Axis a{strides[d] < 0 ? -strides[d] : strides[d], shape[d] - 1};
    if (a.count >= kMaxSpan / a.stride) return SelfOverlap::unknown;
    span += a.stride * a.count;  // < 2^63: both terms are below 2^62
    if (span >= kMaxSpan) return SelfOverlap::unknown;
    axes[m++] = a;
  }
  // The common case: with the axes by increasing stride, each stride steps over the whole
  // block of the axes below it, so the blocks it repeats are disjoint.
  std::sort(axes, axes + m, [](const Axis& a, const Axis& b) { return a.stride < b.stride; });
  std::int64_t extent = itemsize;
  int fits = 0;
  while (fits < m && axes[fits].stride >= extent) {
    extent += axes[fits].stride * axes[fits].count;
    ++fits;
  }
  if (fits == m) return SelfOverlap::no;
  std::reverse(axes, axes + m);
  std::int64_t reach[kMaxAxes + 1];
  reach[m] = 0;
  for (int i = m - 1; i >= 0; --i) reach[i] = reach[i + 1] + axes[i].stride * axes[i].count;
  Search search{axes, m, itemsize, reach, max_work};
  return search.find(0, 0, false);
}

}  // namespace fastsoftmax
