// What the CPU (and the OS) can run, and the cache sizes the "auto" rule and the
// benchmark harness use. Built without ISA flags.
#pragma once
#include <cstddef>
#include <string>

namespace fastsoftmax {

// X(feature): every feature CpuFeatures records, by the name Python's cpu_features() gives
// it. os_ymm / os_zmm: XGETBV says the OS saves the YMM / the ZMM and opmask state; neon:
// AArch64 Advanced SIMD, baseline there, so true on every AArch64 build.
#define FASTSOFTMAX_FOR_EACH_CPU_FEATURE(X)                                                        \
  X(avx) X(fma) X(f16c) X(avx2) X(avx512f) X(avx512dq) X(avx512bw) X(avx512vl) X(avx512_bf16) \
  X(avx512_fp16) X(os_ymm) X(os_zmm) X(neon)

struct CpuFeatures {
#define FASTSOFTMAX_FEATURE_FIELD(feature) bool feature = false;
  FASTSOFTMAX_FOR_EACH_CPU_FEATURE(FASTSOFTMAX_FEATURE_FIELD)
#undef FASTSOFTMAX_FEATURE_FIELD
};

// CPUID + XGETBV, read once (thread-safe).
const CpuFeatures& cpu_features();

// One named predicate per tier (can_run_<tier>): exactly what that tier's code uses.
inline bool can_run_scalar(const CpuFeatures&) { return true; }
inline bool can_run_avx2(const CpuFeatures& f) { return f.avx && f.avx2 && f.fma && f.f16c && f.os_ymm; }
inline bool can_run_avx512(const CpuFeatures& f) { return f.avx512f && f.fma && f.os_zmm; }
// Everything the neon tier uses (FMLA, FCVTL/FCVTN half conversions) is ARMv8-A baseline.
inline bool can_run_neon(const CpuFeatures& f) { return f.neon; }

struct CacheSizes {
  std::size_t l1d = 0, l2 = 0, l3 = 0;  // bytes; 0 = unknown
  std::string source;                   // where they were read from
};
// sysfs (Linux) first, CPUID leaf 4 / 0x8000001D otherwise; read once.
const CacheSizes& cache_sizes();

std::string cpu_brand();

// AVX-512 that the core executes as two 256-bit halves: AMD family 19h (Zen 4; Zen 3, the
// same family, has no AVX-512). Its vector arithmetic per cycle is that of AVX2.
bool splits_512_bit_ops();

// AVX2 that the core executes as two 128-bit halves: AMD families 15h and 16h, family 17h
// before model 30h (Zen, Zen+) and Hygon family 18h (Zen). Half the vector arithmetic per
// cycle of a core with 256-bit units.
bool splits_256_bit_ops();

}  // namespace fastsoftmax
