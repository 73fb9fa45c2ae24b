// The hot passes of sample() (csrc/sampling.cpp), compiled once per tier from
// sampling_body.h. Every function computes the same bits on every tier: the arithmetic is
// written element by element (no FMA contraction: -ffp-contract=off) and every sum runs in a
// fixed lane structure (kLanes float lanes over blocks of kBlock elements, the lanes widened
// to double after each block, then reduced in a fixed tree), so the vector width a tier
// uses never changes a result.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fastsoftmax {

namespace sampling {

constexpr std::size_t kLanes = 16;      // float lanes of every sum
constexpr std::size_t kBlock = 128;     // elements per block (8 per lane); the walk's block too
constexpr std::size_t kMaxBlock = 64;   // elements per block of the per-block maxima
constexpr std::size_t kCodes = 1024;   // weight buckets: 8 per octave over (0, 1]
constexpr int kThresholds = 8;          // thresholds per mass_above pass

// The storage types the kernels read: float32, float16, bfloat16 (computed in float32).
enum Storage : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// What the walk keeps: every token (kAll), the prefix {key > t} plus the first r tokens
// (in index order) with key == t (kPrefix), or the tokens with y >= lmp (kMinP).
enum WalkMode : int { kAll = 0, kPrefix = 1, kMinP = 2 };

struct WalkSpec {
  int mode;
  std::uint32_t t;   // kPrefix
  std::uint64_t r;   // kPrefix
  float lmp;         // kMinP
  float mx, inv_t;   // y = (x - mx) * inv_t (float)
  double target;     // draw the first kept token whose running weight exceeds target
};

struct Kernels {
  // Pass 1: the largest key of every kMaxBlock-element block (bmax, ceil(n / kMaxBlock)
  // values) and of the row; *bad != 0 when the row holds a NaN or an infinity.
  void (*stats)(const void* x, std::size_t n, std::uint32_t* bmax, std::uint32_t* max_key, int* bad);
  // Pass 2: w_i = exp(y_i) into w, z = sum w, zm = sum of w over y_i >= lmp (when do_m).
  void (*weights)(const void* x, std::size_t n, float mx, float inv_t, float lmp, int do_m, float* w,
                  double* z, double* zm);
  // For each of kThresholds thresholds (> 0), the weight of {w_i >= thr[t]}.
  void (*mass_above)(const float* w, std::size_t n, const float* thr, double* mass);
  // The weight of each weight_code over the tokens with lo <= w_i < hi (mass: 16 * kCodes
  // doubles of scratch; the first kCodes hold the result), and those tokens' indices in
  // index order (list: room for n; *listed: their count).
  void (*code_mass)(const float* w, std::size_t n, float lo, float hi, double* mass, std::size_t* list,
                    std::size_t* listed);
  // The keys and indices of the tokens with key >= t (only blocks whose bmax >= t are read).
  std::size_t (*gather_ge)(const void* x, std::size_t n, const std::uint32_t* bmax, std::uint32_t t,
                           std::uint32_t* keys, std::size_t* idx);
  // The walk (docs/sampling.md, step 7): the chosen index, or the last kept token with a
  // positive weight when rounding leaves the walk short.
  std::int64_t (*walk)(const void* x, const float* w, std::size_t n, const WalkSpec& s);
};

}  // namespace sampling

namespace scalar { const sampling::Kernels* sampling_kernels(int storage); }
#if defined(FASTSOFTMAX_X86)
namespace avx2 { const sampling::Kernels* sampling_kernels(int storage); }
namespace avx512 { const sampling::Kernels* sampling_kernels(int storage); }
#endif
#if defined(FASTSOFTMAX_AARCH64)
namespace neon { const sampling::Kernels* sampling_kernels(int storage); }
#endif

// Shared by the tiers and sampling.cpp; internal linkage, so that no copy compiled with a
// tier's flags can be picked by the linker for the baseline code.
namespace {

// Order-preserving unsigned keys of float bits (-0 just below +0; NaNs outside +-inf).
inline std::uint32_t float_key(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, 4);
  return b ^ (std::uint32_t(std::int32_t(b) >> 31) | 0x80000000u);
}
inline float key_value(std::uint32_t k) {
  const std::uint32_t b = (k & 0x80000000u) ? (k ^ 0x80000000u) : ~k;
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

// The core of exp_nonpositive for a float or a 16-lane vector of them (sampling_vec.h's
// exp_vec): *n = y / ln 2 rounded to nearest, and e^(y - n ln 2) (Cody-Waite reduction,
// Cephes' expf polynomial), the same operations for both, so the same bits.
template <class F>
inline __attribute__((always_inline)) F exp_reduced(F yc, F* n_out) {
  const F n = (yc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  F r = yc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F q = F{} + 1.9875691500E-4f;
  q = q * r + 1.3981999507E-3f;
  q = q * r + 8.3334519073E-3f;
  q = q * r + 4.1665795894E-2f;
  q = q * r + 1.6666665459E-1f;
  q = q * r + 5.0000001201E-1f;
  q = q * (r * r) + r + 1.0f;
  *n_out = n;
  return q;
}

// exp(y) for y <= 0 in float32 (Cody-Waite reduction, Cephes' expf polynomial), branch-free
// so that loops over it vectorize; 0 below -87.33654 (where exp(y) leaves the normal
// floats) and for y = -inf or NaN. exp(0) = 1 exactly.
inline float exp_nonpositive(float y) {
  const std::int32_t keep = -std::int32_t(y >= -87.33654f);  // all ones, or 0 (also for NaN)
  std::int32_t yb, lob;
  const float lo = -87.33654f;
  std::memcpy(&yb, &y, 4);
  std::memcpy(&lob, &lo, 4);
  const std::int32_t ycb = (yb & keep) | (lob & ~keep);
  float yc;
  std::memcpy(&yc, &ycb, 4);
  float n;
  const float q = exp_reduced(yc, &n);
  const std::int32_t bits = (std::int32_t(n) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, 4);
  const float e = q * s;
  std::int32_t eb;
  std::memcpy(&eb, &e, 4);
  eb &= keep;
  float out;
  std::memcpy(&out, &eb, 4);
  return out;
}

// The bucket of a weight w in [0, 1]: 8 buckets per octave, from the exponent e and the top
// three fraction bits f of w's bits: (127 - e) * 8 + (7 - f). w = 1 is code 7, [1/2, 1)
// codes 8..15, ..., 0 (and subnormals) codes 1016..1023. A larger weight never gets a
// larger code, so every code's tokens are a range of the ranking.
inline std::uint32_t weight_code(float w) {
  std::uint32_t b;
  std::memcpy(&b, &w, 4);
  return ((127u - (b >> 23)) << 3) | (7u - ((b >> 20) & 7u));
}

// The smallest weight with code c (c < 1016): weight_code(w) <= c exactly when w >= it.
inline float code_floor(std::uint32_t c) {
  const std::uint32_t b = ((127u - (c >> 3)) << 23) | ((7u - (c & 7u)) << 20);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// float16 bits to float32, exactly, branch-free (vectorizes), and without arithmetic on
// subnormal floats, so a flush-to-zero / denormals-are-zero mode (which some libraries leave
// set on a thread) cannot change it: normal halves move their bits (exponent rebiased by
// 127 - 15), subnormal halves are their 10-bit integer times 2^-24 (a normal float32),
// infinities and NaNs get the all-ones exponent.
inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t em = std::uint32_t(h & 0x7FFFu);
  const std::uint32_t normal = (em << 13) + 0x38000000u;
  const float sub = float(std::int32_t(em)) * 5.9604644775390625e-08f;  // 2^-24
  std::uint32_t sub_bits;
  std::memcpy(&sub_bits, &sub, 4);
  const std::uint32_t is_sub = -std::uint32_t(em < 0x0400u);
  const std::uint32_t is_special = -std::uint32_t(em >= 0x7C00u);
  std::uint32_t b = (normal & ~is_sub) | (sub_bits & is_sub);
  b = (b & ~is_special) | (((em << 13) | 0x7F800000u) & is_special);
  b |= sign;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace

}  // namespace fastsoftmax
