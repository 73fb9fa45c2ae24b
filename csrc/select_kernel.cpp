#include "select_kernel.h"

#include "softmax.h"

namespace fastsoftmax {

bool algorithm_choice_from_name(const std::string& name, AlgorithmChoice* choice) {
  if (name == kAutoName) {
    *choice = std::nullopt;
    return true;
  }
  Algorithm a;
  if (!algorithm_from_name(name, &a)) return false;
  *choice = a;
  return true;
}

const KernelEntry* select_kernel(const std::string* isa, DType dtype, Op op, AlgorithmChoice algorithm,
                                 std::size_t row_length, TierRefusal* refusal, std::size_t rows) {
  Tier tier;
  *refusal = pick_tier(isa, &tier);
  if (*refusal != TierRefusal::none) return nullptr;
  const Algorithm a = algorithm ? *algorithm : auto_algorithm(dtype, row_length, rows);
  return &find_kernel(tier, dtype, op, a);
}

}  // namespace fastsoftmax
