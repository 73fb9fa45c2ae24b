// The kernel of one call, for every entry point (the Python bindings, the C API).
#pragma once
#include <cstddef>
#include <optional>
#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// algorithm= of a call: one of kernels.inc's algorithms, or "auto" (nullopt).
using AlgorithmChoice = std::optional<Algorithm>;
constexpr const char* kAutoName = "auto";
// "auto" or an algorithm's name; false for anything else.
bool algorithm_choice_from_name(const std::string& name, AlgorithmChoice* choice);

// Picks the tier (pick_tier: `isa`, or the active tier when null), resolves "auto" for a job
// of `rows` rows of row_length elements (auto_algorithm), and finds the kernel. A refused
// tier: nullptr, with the reason in *refusal. A bad FASTSOFTMAX_ISA throws
// std::invalid_argument.
const KernelEntry* select_kernel(const std::string* isa, DType dtype, Op op, AlgorithmChoice algorithm,
                                 std::size_t row_length, TierRefusal* refusal, std::size_t rows = 1);

}  // namespace fastsoftmax
