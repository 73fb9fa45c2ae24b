#include "dispatch/registry.h"

#include <cstdlib>
#include <iterator>
#include <stdexcept>

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

// The lists' names (kernels.inc): the API's, and the identifiers kernel names are made of.
#define FSM_NAME(id, id_name) id_name,
#define FSM_IDENT(id, id_name) #id,
#define FSM_DTYPE_NAME(dt, stype, dt_name) dt_name,
#define FSM_DTYPE_IDENT(dt, stype) #dt,
#define FSM_DTYPE_SIZE(dt, stype) sizeof(stype),
const char* const kOpNames[kOps] = {FASTSOFTMAX_FOR_EACH_OP(FSM_NAME)};
const char* const kOpIdents[kOps] = {FASTSOFTMAX_FOR_EACH_OP(FSM_IDENT)};
const char* const kAlgorithmNames[kAlgorithms] = {FASTSOFTMAX_FOR_EACH_ALGORITHM(FSM_NAME)};
const char* const kAlgorithmIdents[kAlgorithms] = {FASTSOFTMAX_FOR_EACH_ALGORITHM(FSM_IDENT)};
const char* const kDTypeNames[kDTypes] = {FASTSOFTMAX_FOR_EACH_DTYPE_NAMED(FSM_DTYPE_NAME)};
const char* const kDTypeIdents[kDTypes] = {FASTSOFTMAX_FOR_EACH_DTYPE(FSM_DTYPE_IDENT)};
const std::size_t kItemsizes[kDTypes] = {FASTSOFTMAX_FOR_EACH_DTYPE(FSM_DTYPE_SIZE)};
const char* const kTierNames[kTiers] = {FASTSOFTMAX_FOR_EACH_ISA(FSM_NAME)};
const char* const kPatternNames[] = {FASTSOFTMAX_FOR_EACH_PATTERN(FSM_NAME)};
#undef FSM_DTYPE_SIZE
static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2, "16-bit dtypes are stored in 2 bytes");
#undef FSM_DTYPE_IDENT
#undef FSM_DTYPE_NAME
#undef FSM_IDENT
#undef FSM_NAME

template <class E, int N>
bool from_name(const std::string& name, const char* const (&names)[N], E* out) {
  for (int i = 0; i < N; ++i)
    if (name == names[i]) {
      *out = static_cast<E>(i);
      return true;
    }
  return false;
}

// What one tier compiled for one dtype: its primitives and its patterns.
struct DTypeTables {
  const void* prims;
  const PatternTable* patterns;
};

// [tier * kDTypes + dtype]
std::vector<DTypeTables> compiled_tables() {
  std::vector<DTypeTables> t;
#define FSM_TABLES_OF_DTYPE(dt, stype) t.push_back({&tier_ns::dt##_primitives(), &tier_ns::dt##_patterns()});
#define FSM_TABLES_OF_TIER(isa, isa_name)           \
  {                                                 \
    namespace tier_ns = ::fastsoftmax::isa;         \
    FASTSOFTMAX_FOR_EACH_DTYPE(FSM_TABLES_OF_DTYPE) \
  }
  FASTSOFTMAX_FOR_EACH_ISA(FSM_TABLES_OF_TIER)
#undef FSM_TABLES_OF_TIER
#undef FSM_TABLES_OF_DTYPE
#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
  // Where the CPU has AVX512-BF16, the avx512 tier's bfloat16 kernels round with it.
  if (cpu_features().avx512_bf16 && can_run_avx512(cpu_features()))
    t[std::size_t(Tier::avx512) * kDTypes + std::size_t(DType::bf16)] = {&avx512_bf16::bf16_primitives(),
                                                                         &avx512_bf16::bf16_patterns()};
#endif
  return t;
}

const std::vector<DTypeTables>& tables() {
  static const std::vector<DTypeTables> t = compiled_tables();
  return t;
}

std::size_t kernel_index(Tier tier, DType dtype, Op op, Algorithm algorithm) {
  return ((std::size_t(tier) * kDTypes + std::size_t(dtype)) * kOps + std::size_t(op)) * kAlgorithms +
         std::size_t(algorithm);
}

// In kernel_index order.
std::vector<KernelEntry> build_kernels() {
  std::vector<KernelEntry> t;
  for (int ti = 0; ti < kTiers; ++ti)
    for (int di = 0; di < kDTypes; ++di)
      for (int oi = 0; oi < kOps; ++oi)
        for (int ai = 0; ai < kAlgorithms; ++ai)
          t.push_back({std::string(kDTypeIdents[di]) + "_" + kAlgorithmIdents[ai] + "_" + kOpIdents[oi] + "_" +
                           kTierNames[ti],
                       Tier(ti), DType(di), Op(oi), Algorithm(ai), tables()[std::size_t(ti) * kDTypes + di].prims});
  return t;
}

std::vector<PatternEntry> build_patterns() {
  std::vector<PatternEntry> t;
  for (int ti = 0; ti < kTiers; ++ti)
    for (int di = 0; di < kDTypes; ++di) {
      const PatternTable& p = *tables()[std::size_t(ti) * kDTypes + di].patterns;
      const std::string prefix = std::string(kDTypeIdents[di]) + "_pattern_", suffix = std::string("_") + kTierNames[ti];
#define FSM_PATTERN_ENTRY(pat, pat_name) t.push_back({prefix + #pat + suffix, Tier(ti), DType(di), pat_name, p.pat});
      FASTSOFTMAX_FOR_EACH_PATTERN(FSM_PATTERN_ENTRY)
#undef FSM_PATTERN_ENTRY
    }
  return t;
}

std::string known_list() {
  std::string s;
  for (const auto& i : compiled_isas()) s += (s.empty() ? "" : ", ") + i;
  return s;
}

}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }
const char* algorithm_name(Algorithm algorithm) { return kAlgorithmNames[static_cast<int>(algorithm)]; }
const char* dtype_name(DType d) { return kDTypeNames[static_cast<int>(d)]; }
const char* tier_name(Tier tier) { return kTierNames[static_cast<int>(tier)]; }
bool op_from_name(const std::string& name, Op* op) { return from_name(name, kOpNames, op); }
bool algorithm_from_name(const std::string& name, Algorithm* a) { return from_name(name, kAlgorithmNames, a); }
bool dtype_from_name(const std::string& name, DType* d) { return from_name(name, kDTypeNames, d); }
bool tier_from_name(const std::string& name, Tier* tier) { return from_name(name, kTierNames, tier); }
std::size_t itemsize(DType d) { return kItemsizes[static_cast<int>(d)]; }

const std::vector<std::string>& pattern_names() {
  static const std::vector<std::string> v(std::begin(kPatternNames), std::end(kPatternNames));
  return v;
}

const std::vector<KernelEntry>& all_kernels() {
  static const std::vector<KernelEntry> t = build_kernels();
  return t;
}

const std::vector<PatternEntry>& all_patterns() {
  static const std::vector<PatternEntry> t = build_patterns();
  return t;
}

const KernelEntry& find_kernel(Tier tier, DType dtype, Op op, Algorithm algorithm) {
  return all_kernels()[kernel_index(tier, dtype, op, algorithm)];  // called on every call: an index
}

const PatternEntry* find_pattern(Tier tier, DType dtype, const std::string& pattern) {
  for (const auto& p : all_patterns())
    if (p.tier == tier && p.dtype == dtype && pattern == p.pattern) return &p;
  return nullptr;
}

const std::vector<std::string>& compiled_isas() {
  static const std::vector<std::string> v(std::begin(kTierNames), std::end(kTierNames));
  return v;
}

bool tier_runnable(Tier tier, const CpuFeatures& f) {
  switch (tier) {
#define FSM_RUNNABLE(isa, isa_name) \
  case Tier::isa: return can_run_##isa(f);
    FASTSOFTMAX_FOR_EACH_ISA(FSM_RUNNABLE)
#undef FSM_RUNNABLE
  }
  return false;
}

bool isa_runnable(const std::string& isa, const CpuFeatures& f) {
  Tier t;
  return tier_from_name(isa, &t) && tier_runnable(t, f);
}

std::string select_isa(const CpuFeatures& f, const std::string& cap) {
  Tier capped = Tier(0);  // no cap: the best tier
  if (!cap.empty() && !tier_from_name(cap, &capped))
    throw std::invalid_argument("unknown instruction-set tier '" + cap + "' (this build has: " + known_list() + ")");
  for (int t = static_cast<int>(capped); t < kTiers; ++t)  // best first
    if (tier_runnable(Tier(t), f)) return kTierNames[t];
  return "scalar";
}

namespace {
struct Active {
  std::string cap;    // FASTSOFTMAX_ISA; empty when unset
  std::string isa;    // the tier selected, when error is empty
  Tier tier = Tier(0);
  std::string error;  // a bad FASTSOFTMAX_ISA
};
const Active& active() {
  static const Active a = [] {
    Active r;
    const char* env = std::getenv("FASTSOFTMAX_ISA");
    if (env) r.cap = env;
    try {
      r.isa = select_isa(cpu_features(), r.cap);
      tier_from_name(r.isa, &r.tier);
    } catch (const std::invalid_argument& e) {
      r.error = std::string("FASTSOFTMAX_ISA: ") + e.what();
    }
    return r;
  }();
  return a;
}
}  // namespace

const std::string& active_isa() {
  const Active& a = active();
  if (!a.error.empty()) throw std::invalid_argument(a.error);
  return a.isa;
}

Tier active_tier() {
  const Active& a = active();
  if (!a.error.empty()) throw std::invalid_argument(a.error);
  return a.tier;
}

const std::string& isa_cap() { return active().cap; }

TierRefusal pick_tier(const std::string* requested, Tier* tier) {
  if (!requested) {
    *tier = active_tier();
    return TierRefusal::none;
  }
  if (!tier_from_name(*requested, tier)) return TierRefusal::unknown;
  if (!tier_runnable(*tier, cpu_features())) return TierRefusal::not_runnable;
  // The operator's cap binds a named tier too (a bad cap: active_tier() throws).
  Tier cap;
  if (!isa_cap().empty() && tier_from_name(isa_cap(), &cap) && *tier < cap) return TierRefusal::above_cap;
  if (!isa_cap().empty()) active_tier();  // an unknown cap: its error, never a silent pass
  return TierRefusal::none;
}

bool avx512_bf16_rounding() {
#if defined(FASTSOFTMAX_X86) && defined(FASTSOFTMAX_HAVE_AVX512_BF16)
  return tables()[std::size_t(Tier::avx512) * kDTypes + std::size_t(DType::bf16)].prims ==
         &avx512_bf16::bf16_primitives();
#else
  return false;
#endif
}

}  // namespace fastsoftmax
