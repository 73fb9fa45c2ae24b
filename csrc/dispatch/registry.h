// The kernel table (built from kernels.inc) and the tier selection.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "dispatch/cpu_features.h"
#include "kernels/primitives.h"

namespace fastsoftmax {

// The dtypes of kernels.inc, in its order (f16 and bf16 are computed in float32).
enum class DType { f32, f64, f16, bf16 };
constexpr int kDTypes = 4;

std::size_t itemsize(DType d);

struct KernelEntry {
  std::string name;       // e.g. f32_two_pass_softmax_avx2
  const char* isa;        // "scalar" | "avx2" | "avx512"
  DType dtype;
  const char* op;         // "softmax" | "log_softmax", or "pattern" for roofline kernels
  const char* algorithm;  // "two-pass", ... ; for patterns the pattern name
  Op op_id;               // kernels only
  Algorithm algorithm_id; // kernels only
  const void* prims;      // kernels: the Primitives<S> of the dtype's storage type S
  PatternFn fn;           // patterns
};

// Every compiled kernel and pattern, tiers in priority order.
const std::vector<KernelEntry>& all_kernels();

// Tier names compiled into this build, best first.
const std::vector<std::string>& compiled_isas();

bool isa_known(const std::string& isa);
bool isa_runnable(const std::string& isa, const CpuFeatures& f);

// The best tier that `f` can run, capped at `cap` (empty = no cap). An unknown cap
// throws std::invalid_argument naming the valid tiers: never a silent fallback.
std::string select_isa(const CpuFeatures& f, const std::string& cap);

// select_isa(cpu_features(), $FASTSOFTMAX_ISA), resolved once per process.
const std::string& active_isa();

// nullptr when absent.
const KernelEntry* find_kernel(const std::string& isa, DType dtype, const std::string& op,
                               const std::string& algorithm);

// "float32", "float64", "float16", "bfloat16"; dtype_from_name: false if unknown.
const char* dtype_name(DType d);

// True when the avx512 tier's bfloat16 kernels round with AVX512-BF16's vcvtneps2bf16 (this
// CPU has it and the compiler built it), false when they round with shifts.
bool avx512_bf16_rounding();
bool dtype_from_name(const std::string& name, DType* d);

}  // namespace fastsoftmax
