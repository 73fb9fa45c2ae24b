#include "dispatch/registry.h"

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "kernels/kernels.inc"

// Declarations of every tier's primitives and patterns, from the same list that defines them.
#define FSM_DECLARE_DTYPE(dt, stype)          \
  const Primitives<stype>& dt##_primitives(); \
  const PatternTable& dt##_patterns();
#define FSM_DECLARE_TIER(isa, isa_name)              \
  namespace isa {                                    \
  FASTSOFTMAX_FOR_EACH_DTYPE(FSM_DECLARE_DTYPE)      \
  }
namespace fastsoftmax {
FASTSOFTMAX_FOR_EACH_ISA(FSM_DECLARE_TIER)
#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
namespace avx512_bf16 {  // the avx512 tier's bfloat16 kernels with AVX512-BF16 rounding
FSM_DECLARE_DTYPE(bf16, BFloat16)
}
#endif
}

namespace fastsoftmax {
namespace {

#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
PatternFn bf16_pattern(const PatternTable& p, const std::string& name) {
#define FSM_PATTERN_BY_NAME(pat, pat_name) \
  if (name == pat_name) return p.pat;
  FASTSOFTMAX_FOR_EACH_PATTERN(FSM_PATTERN_BY_NAME)
  return nullptr;
}
#endif

std::vector<KernelEntry> build_table() {
  std::vector<KernelEntry> t;
#define FSM_ENTRY_KERNEL(op, alg, op_name, alg_name)                                                  \
  t.push_back({std::string(prefix) + "_" #alg "_" #op "_" + tier, tier, dt, op_name, alg_name, Op::op, \
               Algorithm::alg, prims, nullptr});
#define FSM_ENTRY_PATTERN(pat, pat_name)                                                                 \
  t.push_back({std::string(prefix) + "_pattern_" #pat "_" + tier, tier, dt, "pattern", pat_name, Op::softmax, \
               Algorithm::two_pass, nullptr, patterns.pat});
#define FSM_ENTRIES_OF_DTYPE(dtn, stype)                           \
  {                                                                \
    const char* prefix = #dtn;                                     \
    const DType dt = DType::dtn;                                   \
    const void* prims = &tier_ns::dtn##_primitives();              \
    const PatternTable& patterns = tier_ns::dtn##_patterns();      \
    FASTSOFTMAX_FOR_EACH_VARIANT(FSM_ENTRY_KERNEL)                 \
    FASTSOFTMAX_FOR_EACH_PATTERN(FSM_ENTRY_PATTERN)                \
  }
#define FSM_ENTRIES_OF_TIER(isa, isa_name)               \
  {                                                      \
    namespace tier_ns = ::fastsoftmax::isa;              \
    const char* tier = isa_name;                         \
    FASTSOFTMAX_FOR_EACH_DTYPE(FSM_ENTRIES_OF_DTYPE)     \
  }
  FASTSOFTMAX_FOR_EACH_ISA(FSM_ENTRIES_OF_TIER)
#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
  // Where the CPU has AVX512-BF16, the avx512 tier's bfloat16 kernels round with it.
  if (cpu_features().avx512_bf16 && can_run_avx512(cpu_features()))
    for (auto& k : t)
      if (k.dtype == DType::bf16 && std::string(k.isa) == "avx512") {
        if (k.prims) k.prims = &avx512_bf16::bf16_primitives();
        else k.fn = bf16_pattern(avx512_bf16::bf16_patterns(), k.algorithm);
      }
#endif
  return t;
}

std::string known_list() {
  std::string s;
  for (const auto& i : compiled_isas()) s += (s.empty() ? "" : ", ") + i;
  return s;
}

}  // namespace

const std::vector<KernelEntry>& all_kernels() {
  static const std::vector<KernelEntry> t = build_table();
  return t;
}

const std::vector<std::string>& compiled_isas() {
#define FSM_ISA_NAME(isa, isa_name) isa_name,
  static const std::vector<std::string> v = {FASTSOFTMAX_FOR_EACH_ISA(FSM_ISA_NAME)};
  return v;
}

bool isa_known(const std::string& isa) {
  for (const auto& i : compiled_isas())
    if (i == isa) return true;
  return false;
}

bool isa_runnable(const std::string& isa, const CpuFeatures& f) {
  if (isa == "scalar") return true;
  if (!isa_known(isa)) return false;
  if (isa == "avx2") return can_run_avx2(f);
  if (isa == "avx512") return can_run_avx512(f);
  if (isa == "neon") return can_run_neon(f);
  return false;
}

std::string select_isa(const CpuFeatures& f, const std::string& cap) {
  if (!cap.empty() && !isa_known(cap))
    throw std::invalid_argument("unknown instruction-set tier '" + cap + "' (this build has: " + known_list() + ")");
  bool allowed = cap.empty();
  for (const auto& isa : compiled_isas()) {  // best first
    if (isa == cap) allowed = true;
    if (allowed && isa_runnable(isa, f)) return isa;
  }
  return "scalar";
}

const std::string& active_isa() {
  static std::once_flag once;
  static std::string isa, error;
  std::call_once(once, [] {
    const char* env = std::getenv("FASTSOFTMAX_ISA");
    try {
      isa = select_isa(cpu_features(), env ? std::string(env) : std::string());
    } catch (const std::invalid_argument& e) {
      error = std::string("FASTSOFTMAX_ISA: ") + e.what();
    }
  });
  if (!error.empty()) throw std::invalid_argument(error);
  return isa;
}

namespace {
int op_index(const std::string& op) { return op == "softmax" ? 0 : op == "log_softmax" ? 1 : op == "pattern" ? 2 : -1; }
int name_index(const std::string& name, const char* const* names, int count) {
  for (int i = 0; i < count; ++i)
    if (name == names[i]) return i;
  return -1;
}
int isa_index(const std::string& isa) {
  const auto& isas = compiled_isas();
  for (std::size_t j = 0; j < isas.size(); ++j)
    if (isas[j] == isa) return static_cast<int>(j);
  return -1;
}
const char* const kAlgorithmNames[] = {"two-pass", "three-pass-reload", "three-pass-recompute", "online",
                                       "read", "copy"};
#define FSM_COUNT_ISA(isa, isa_name) +1
constexpr int kNames = 6, kIsas = 0 FASTSOFTMAX_FOR_EACH_ISA(FSM_COUNT_ISA);
#undef FSM_COUNT_ISA
}  // namespace

const KernelEntry* find_kernel(const std::string& isa, DType dtype, const std::string& op,
                               const std::string& algorithm) {
  // Called on every Python call: a table indexed by small integers, built once.
  static const std::vector<const KernelEntry*> table = [] {
    std::vector<const KernelEntry*> t(std::size_t(kIsas) * kDTypes * 3 * kNames, nullptr);
    for (const auto& k : all_kernels()) {
      const int ii = isa_index(k.isa);
      const int oi = op_index(k.op), ai = name_index(k.algorithm, kAlgorithmNames, kNames);
      if (ii >= 0 && oi >= 0 && ai >= 0)
        t[((std::size_t(ii) * kDTypes + std::size_t(k.dtype)) * 3 + std::size_t(oi)) * kNames + std::size_t(ai)] = &k;
    }
    return t;
  }();
  const int ii = isa_index(isa);
  const int oi = op_index(op), ai = name_index(algorithm, kAlgorithmNames, kNames);
  if (ii < 0 || oi < 0 || ai < 0) return nullptr;
  return table[((std::size_t(ii) * kDTypes + std::size_t(dtype)) * 3 + std::size_t(oi)) * kNames + std::size_t(ai)];
}

namespace {
const char* const kDTypeNames[kDTypes] = {"float32", "float64", "float16", "bfloat16"};
const std::size_t kItemsizes[kDTypes] = {4, 8, 2, 2};
}  // namespace

bool avx512_bf16_rounding() {
  for (const auto& k : all_kernels())
    if (k.dtype == DType::bf16 && std::string(k.isa) == "avx512" && k.prims) {
#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
      return k.prims == &avx512_bf16::bf16_primitives();
#else
      return false;
#endif
    }
  return false;
}

const char* dtype_name(DType d) { return kDTypeNames[static_cast<int>(d)]; }
std::size_t itemsize(DType d) { return kItemsizes[static_cast<int>(d)]; }
bool dtype_from_name(const std::string& name, DType* d) {
  for (int i = 0; i < kDTypes; ++i)
    if (name == kDTypeNames[i]) {
      *d = static_cast<DType>(i);
      return true;
    }
  return false;
}

}  // namespace fastsoftmax
