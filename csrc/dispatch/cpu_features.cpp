#include "dispatch/cpu_features.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#if defined(FASTSOFTMAX_X86)
#include <cpuid.h>
#endif

namespace fastsoftmax {
namespace {

#if defined(FASTSOFTMAX_X86)
struct Regs { unsigned a = 0, b = 0, c = 0, d = 0; };
Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}
unsigned max_leaf(unsigned base) { return __get_cpuid_max(base, nullptr); }
// XGETBV without -mxsave: encoded by hand so this file needs no ISA flags.
std::uint64_t xgetbv0() {
  std::uint32_t lo, hi;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t{hi} << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(FASTSOFTMAX_X86)
  if (max_leaf(0) < 1) return f;
  const Regs l1 = cpuid(1);
  const bool osxsave = (l1.c >> 27) & 1;
  f.avx = (l1.c >> 28) & 1;
  f.fma = (l1.c >> 12) & 1;
  f.f16c = (l1.c >> 29) & 1;
  if (osxsave) {
    const std::uint64_t xcr0 = xgetbv0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;     // XMM | YMM
    f.os_zmm = (xcr0 & 0xE6) == 0xE6;   // XMM | YMM | opmask | ZMM_Hi256 | Hi16_ZMM
  }
  if (max_leaf(0) >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = (l7.b >> 5) & 1;
    f.avx512f = (l7.b >> 16) & 1;
    f.avx512dq = (l7.b >> 17) & 1;
    f.avx512bw = (l7.b >> 30) & 1;
    f.avx512vl = (l7.b >> 31) & 1;
    f.avx512_fp16 = (l7.d >> 23) & 1;
    if (l7.a >= 1) f.avx512_bf16 = (cpuid(7, 1).a >> 5) & 1;
  }
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;  // Advanced SIMD is mandatory in ARMv8-A (and the OS must save it to run at all)
#endif
  return f;
}

std::size_t parse_size(const std::string& s) {
  std::size_t v = 0, i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + std::size_t(s[i++] - '0');
  if (i < s.size() && (s[i] == 'K' || s[i] == 'k')) v <<= 10;
  else if (i < s.size() && (s[i] == 'M' || s[i] == 'm')) v <<= 20;
  else if (i < s.size() && (s[i] == 'G' || s[i] == 'g')) v <<= 30;
  return v;
}

bool read_line(const std::string& path, std::string& out) {
  std::ifstream in(path);
  return static_cast<bool>(std::getline(in, out));
}

CacheSizes detect_caches() {
  CacheSizes c;
  // sysfs: right on VMs where py-cpuinfo and getconf are known to be wrong.
  for (int idx = 0; idx < 16; ++idx) {
    const std::string base = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
    std::string level, type, size;
    if (!read_line(base + "level", level) || !read_line(base + "type", type) || !read_line(base + "size", size)) break;
    const std::size_t bytes = parse_size(size);
    if (level == "1" && type == "Data") c.l1d = bytes;
    else if (level == "2" && type != "Instruction") c.l2 = bytes;
    else if (level == "3" && type != "Instruction") c.l3 = bytes;
  }
  if (c.l1d || c.l2 || c.l3) { c.source = "sysfs"; return c; }
#if defined(FASTSOFTMAX_X86)
  // Deterministic cache parameters: leaf 4 (Intel) or 0x8000001D (AMD).
  const Regs vendor = cpuid(0);
  const bool amd = vendor.b == 0x68747541;  // "Auth"
  const unsigned leaf = amd ? 0x8000001Du : 4u;
  if ((amd ? max_leaf(0x80000000u) : max_leaf(0)) >= leaf) {
    for (unsigned sub = 0; sub < 16; ++sub) {
      const Regs r = cpuid(leaf, sub);
      const unsigned type = r.a & 0x1F;
      if (type == 0) break;
      const unsigned level = (r.a >> 5) & 0x7;
      const std::size_t ways = ((r.b >> 22) & 0x3FF) + 1, parts = ((r.b >> 12) & 0x3FF) + 1;
      const std::size_t line = (r.b & 0xFFF) + 1, sets = std::size_t(r.c) + 1;
      const std::size_t bytes = ways * parts * line * sets;
      if (level == 1 && type == 1) c.l1d = bytes;
      else if (level == 2 && type != 2) c.l2 = bytes;
      else if (level == 3 && type != 2) c.l3 = bytes;
    }
    c.source = amd ? "cpuid 0x8000001D" : "cpuid 4";
  }
#endif
  return c;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes c = detect_caches();
  return c;
}

#if defined(FASTSOFTMAX_X86)
namespace {
struct FamilyModel {
  unsigned vendor_b, family, model;  // vendor_b: CPUID 0's EBX ("Auth", "Hygo", "Genu")
};
FamilyModel family_model() {
  const unsigned a = cpuid(1).a;
  const unsigned base = (a >> 8) & 0xF;
  const unsigned family = base == 0xF ? base + ((a >> 20) & 0xFF) : base;
  const unsigned model = (base == 0xF || base == 0x6) ? (((a >> 16) & 0xF) << 4) | ((a >> 4) & 0xF) : (a >> 4) & 0xF;
  return {cpuid(0).b, family, model};
}
constexpr unsigned kAmd = 0x68747541, kHygon = 0x6F677948;  // "Auth"enticAMD, "Hygo"nGenuine
}  // namespace
#endif

bool splits_512_bit_ops() {
#if defined(FASTSOFTMAX_X86)
  static const bool split = [] {
    if (max_leaf(0) < 1 || !cpu_features().avx512f) return false;
    const FamilyModel f = family_model();
    return f.vendor_b == kAmd && f.family == 0x19;
  }();
  return split;
#else
  return false;
#endif
}

bool splits_256_bit_ops() {
#if defined(FASTSOFTMAX_X86)
  static const bool split = [] {
    if (max_leaf(0) < 1 || !cpu_features().avx2) return false;
    const FamilyModel f = family_model();
    if (f.vendor_b == kHygon) return f.family == 0x18;
    return f.vendor_b == kAmd && (f.family == 0x15 || f.family == 0x16 || (f.family == 0x17 && f.model < 0x30));
  }();
  return split;
#else
  return false;
#endif
}

std::string cpu_brand() {
#if defined(FASTSOFTMAX_X86)
  if (max_leaf(0x80000000u) >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    std::string s(brand);
    const auto b = s.find_first_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b);
  }
#endif
  return std::string();
}

}  // namespace fastsoftmax
