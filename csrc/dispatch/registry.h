// The kernel table and the pattern table (both built from kernels.inc), the names of
// kernels.inc's lists, and the tier selection.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "dispatch/cpu_features.h"
#include "kernels/kernels.inc"
#include "kernels/kinds.h"
#include "kernels/primitives.h"

namespace fastsoftmax {

// Names, as the Python API and the kernel names spell them ("log_softmax", "two-pass",
// "float32", "avx2"); *_from_name: false for a name that is not one (compared whole: a name
// holding a NUL is not a prefix's).
const char* op_name(Op op);
const char* algorithm_name(Algorithm algorithm);
const char* dtype_name(DType d);
const char* tier_name(Tier tier);
bool op_from_name(const std::string& name, Op* op);
bool algorithm_from_name(const std::string& name, Algorithm* algorithm);
bool dtype_from_name(const std::string& name, DType* d);
bool tier_from_name(const std::string& name, Tier* tier);

// The memory-only patterns' names, in kernels.inc's order.
const std::vector<std::string>& pattern_names();

std::size_t itemsize(DType d);

// One kernel: all_kernels() holds one for every (tier, dtype, op, algorithm).
struct KernelEntry {
  std::string name;  // <dtype>_<algorithm>_<op>_<tier>, e.g. f32_two_pass_softmax_avx2
  Tier tier;
  DType dtype;
  Op op_id;
  Algorithm algorithm_id;
  const void* prims;  // the Primitives<S> of the dtype's storage type S
};

// One memory-only pattern of one tier and dtype (the harness's roofline; not a kernel).
struct PatternEntry {
  std::string name;     // <dtype>_pattern_<pattern>_<tier>, e.g. f32_pattern_read_avx2
  Tier tier;
  DType dtype;
  const char* pattern;  // "read", "copy", "two-pass", ...
  PatternFn fn;
};

// Every compiled kernel / pattern: tiers in priority order, then dtypes, ops, algorithms
// (patterns) in kernels.inc's order.
const std::vector<KernelEntry>& all_kernels();
const std::vector<PatternEntry>& all_patterns();

// The kernel of each (tier, dtype, op, algorithm): every one exists.
const KernelEntry& find_kernel(Tier tier, DType dtype, Op op, Algorithm algorithm);
// nullptr for a name that is not a pattern.
const PatternEntry* find_pattern(Tier tier, DType dtype, const std::string& pattern);

// Tier names compiled into this build, best first.
const std::vector<std::string>& compiled_isas();

bool isa_runnable(const std::string& isa, const CpuFeatures& f);
bool tier_runnable(Tier tier, const CpuFeatures& f);

// The best tier that `f` can run, capped at `cap` (empty = no cap). An unknown cap
// throws std::invalid_argument naming the valid tiers: never a silent fallback.
std::string select_isa(const CpuFeatures& f, const std::string& cap);

// select_isa(cpu_features(), $FASTSOFTMAX_ISA), resolved once per process; a bad
// FASTSOFTMAX_ISA throws std::invalid_argument (every time).
const std::string& active_isa();
Tier active_tier();
// FASTSOFTMAX_ISA as this process read it (once); empty when unset.
const std::string& isa_cap();

// Why a tier a caller named is refused.
enum class TierRefusal { none, unknown, not_runnable, above_cap };
// The tier a call runs on: the active one when `requested` is null, else the named tier if
// this build has it, this CPU (and OS) runs it and it is not above FASTSOFTMAX_ISA's cap.
// A bad FASTSOFTMAX_ISA throws std::invalid_argument whenever one is set.
TierRefusal pick_tier(const std::string* requested, Tier* tier);

// True when the avx512 tier's bfloat16 kernels round with AVX512-BF16's vcvtneps2bf16 (this
// CPU has it and the compiler built it), false when they round with shifts.
bool avx512_bf16_rounding();

}  // namespace fastsoftmax
