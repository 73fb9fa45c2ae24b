// kernels.inc's lists as enums, in its order: what a kernel is (op, algorithm, dtype) and the
// tiers this build compiles, best first. Their names: dispatch/registry.h.
#pragma once
#include "kernels/kernels.inc"

namespace fastsoftmax {

#define FASTSOFTMAX_ENUMERATOR(id, ...) id,
#define FASTSOFTMAX_COUNT(id, ...) +1
enum class Op { FASTSOFTMAX_FOR_EACH_OP(FASTSOFTMAX_ENUMERATOR) };
enum class Algorithm { FASTSOFTMAX_FOR_EACH_ALGORITHM(FASTSOFTMAX_ENUMERATOR) };
enum class DType { FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_ENUMERATOR) };
enum class Tier { FASTSOFTMAX_FOR_EACH_ISA(FASTSOFTMAX_ENUMERATOR) };
constexpr int kOps = 0 FASTSOFTMAX_FOR_EACH_OP(FASTSOFTMAX_COUNT);
constexpr int kAlgorithms = 0 FASTSOFTMAX_FOR_EACH_ALGORITHM(FASTSOFTMAX_COUNT);
constexpr int kDTypes = 0 FASTSOFTMAX_FOR_EACH_DTYPE(FASTSOFTMAX_COUNT);
constexpr int kTiers = 0 FASTSOFTMAX_FOR_EACH_ISA(FASTSOFTMAX_COUNT);
#undef FASTSOFTMAX_COUNT
#undef FASTSOFTMAX_ENUMERATOR

}  // namespace fastsoftmax
