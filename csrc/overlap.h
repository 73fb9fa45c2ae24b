// Whether an array's elements overlap one another in memory: such an array cannot hold one
// result per element (an out= of several elements on the same bytes would keep only the
// last write). Reading from such an array (a broadcast input) is fine; only outputs are checked.
#pragma once
#include <cstdint>

namespace fastsoftmax {

enum class SelfOverlap { no, yes, unknown };

// Steps the exact search may take before it gives up with `unknown`.
constexpr std::int64_t kSelfOverlapMaxWork = std::int64_t{1} << 16;

// Element (i_0, ..., i_{ndim-1}) of an array (strides in bytes, of any sign) occupies the bytes
// [sum_d i_d * strides[d], that + itemsize). The array overlaps itself iff two distinct
// elements share a byte; an axis of length 0 means no elements, and axes of length 1 do not
// count. The answer is exact, except `unknown` when the search for two such elements
// takes more than max_work steps or the array spans 2^62 bytes or more (no real array
// does); callers treat `unknown` as an overlap.
//
// The common layouts are decided without a search: sort the axes by |stride|; if each
// |stride| is at least the extent of the block of the axes below it, no two elements
// overlap (C and Fortran order, slices, transposes, reversals all pass). Otherwise the
// search looks for index differences k != 0, |k_d| < shape[d], with
// |sum_d k_d * |strides[d]|| < itemsize (a bounded integer equation, which is NP-hard in
// general, hence the bound on the work).
SelfOverlap self_overlap(int ndim, const std::int64_t* shape, const std::int64_t* strides, std::int64_t itemsize,
                         std::int64_t max_work = kSelfOverlapMaxWork);

}  // namespace fastsoftmax
