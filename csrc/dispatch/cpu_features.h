// What the CPU (and the OS) can run, and the cache sizes the "auto" rule and the
// benchmark harness use. Built without ISA flags.
#pragma once
#include <cstddef>
#include <string>

namespace fastsoftmax {

struct CpuFeatures {
  bool avx = false, fma = false, f16c = false, avx2 = false;
  bool avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  bool avx512_bf16 = false, avx512_fp16 = false;
  bool os_ymm = false;  // XGETBV: the OS saves YMM state
  bool os_zmm = false;  // XGETBV: the OS saves ZMM and opmask state
  bool neon = false;    // AArch64 Advanced SIMD: baseline there, so true on every AArch64 build
};

// CPUID + XGETBV, read once (thread-safe).
const CpuFeatures& cpu_features();

// One named predicate per tier: exactly what that tier's code uses.
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

}  // namespace fastsoftmax
