// The hot passes of sample() (csrc/sampling.cpp), compiled once per tier from
// sampling_body.h. Every function computes the same bits on every tier: the arithmetic is
// written element by element (no FMA contraction: -ffp-contract=off) and every sum runs in a
// fixed lane structure (kLanes float lanes over blocks of kBlock elements, the lanes widened
// to double after each block, then reduced in a fixed tree), so the vector width a tier
// uses never changes a result.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>

namespace fastsoftmax {

namespace sampling {

constexpr std::size_t kLanes = 16;      // float lanes of every sum
constexpr std::size_t kBlock = 128;     // elements per block (8 per lane); the walk's block too
constexpr std::size_t kMaxBlock = 64;   // elements per block of the per-block maxima
constexpr std::size_t kCodes = 1024;   // weight buckets: 8 per octave over (0, 1]
constexpr int kThresholds = 8;          // thresholds per mass_above pass over listed weights
constexpr int kRowThresholds = 4;       // thresholds of top-p's first pass over a row

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
  // Pass 2: w_i = exp(y_i) into w, z = sum w, zm = sum of w over y_i >= lmp (when do_m), and
  // the kLanes float lanes of the same two sums over every kBlock-element block (bsum,
  // bsum_m: kLanes * ceil(n / kBlock) each; bsum_m written when do_m).
  void (*weights)(const void* x, std::size_t n, float mx, float inv_t, float lmp, int do_m, float* w,
                  double* z, double* zm, float* bsum, float* bsum_m);
  // w_i = exp_nonpositive(y_i) for n values of y, in place.
  void (*exps)(float* y, std::size_t n);
  // For each of nt (kThresholds or kRowThresholds) thresholds (> 0), the weight of
  // {w_i >= thr[t]}.
  void (*mass_above)(const float* w, std::size_t n, int nt, const float* thr, double* mass);
  // The tokens with lo <= w_i < hi, in index order: their weights and keys (each array with
  // room for n + 16); returns their count. *above: the weight of {w_i >= hi}. For every block
  // of kBlock elements: its weight of {w_i >= hi} (blk_above; the tree16 of its kLanes float
  // lanes) and the count listed up to its end (blk_end), which the prefix walk reads instead
  // of the row.
  std::size_t (*list_range)(const void* x, const float* w, std::size_t n, float lo, float hi, float* wl,
                            std::uint32_t* kl, double* above, double* blk_above, std::size_t* blk_end);
  // The (weight, key) pairs of the m listed whose weight has code c (weight_code), in order,
  // into wo and ko (room for m + 16 each); returns their count.
  std::size_t (*keep_code)(const float* wl, const std::uint32_t* kl, std::size_t m, std::uint32_t c, float* wo,
                           std::uint32_t* ko);
  // For nb consecutive blocks, block b's listed pairs being [ends[b - 1], ends[b]) (from for
  // the first; the arrays readable 16 past the last): the weight of its pairs with key > t
  // (pair i of the block in float lane i mod kLanes, tree16; gt[b]) and its count of pairs
  // with key == t (eq[b]).
  void (*listed_above)(const float* wl, const std::uint32_t* kl, const std::size_t* ends, std::size_t from,
                       std::size_t nb, std::uint32_t t, double* gt, std::uint32_t* eq);
  // The keys and indices of the tokens with key >= t (only blocks whose bmax >= t are read).
  std::size_t (*gather_ge)(const void* x, std::size_t n, const std::uint32_t* bmax, std::uint32_t t,
                           std::uint32_t* keys, std::size_t* idx);
  // The walk of kAll and kMinP (docs/sampling.md, step 7; kPrefix walks the listed tokens in
  // sampling.cpp): the chosen index, or the last kept token with a positive weight when
  // rounding leaves the walk short. bsum: the weights pass's block sums of the kept set (bsum
  // for kAll, bsum_m for kMinP).
  std::int64_t (*walk)(const void* x, const float* w, std::size_t n, const WalkSpec& s, const float* bsum);
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

// exp(y) for y <= 0 in float32: the float32 scheme of the softmax kernels (kernels/exp.h,
// Constants<float>: two-constant ln2 reduction, degree-5 polynomial, about 2 ULP), every
// multiply-add fused so that each step is rounded once and every tier computes the same bits;
// branch-free so that loops over it vectorize. 0 below -87.33654 (where exp(y) leaves the
// normal floats) and for y = -inf or NaN. The tiers' vector form (sampling_body.h exp_vec)
// is this, operation by operation.
constexpr float kExpLowest = -87.33654f;
constexpr float kLog2e = 0x1.715476p+0f;
constexpr float kMinusLn2Hi = -0x1.62E400p-1f;
constexpr float kMinusLn2Lo = -0x1.7F7D1Cp-20f;
constexpr float kExpPoly[5] = {0x1.0F9F9Cp-7f, 0x1.573A1Ap-5f, 0x1.555A80p-3f, 0x1.FFFDC6p-2f, 0x1.FFFFF6p-1f};
constexpr float kRoundMagic = 0x1.8p23f;  // adding it rounds to an integer
constexpr std::uint32_t kRoundMagicBits = 0x4B400000u;
// yc = n ln2 + r: e^r by the polynomial, and t = n + 1.5 * 2^23 (n in its low bits) -- the
// steps of exp_nonpositive that the tiers' exp_vec repeats lane by lane (F: float or a lane
// vector, fma its fused multiply-add).
template <class F, class Fma>
inline __attribute__((always_inline)) F exp_reduced(F yc, Fma fma, F* t_out) {
  const F t = fma(yc, F{} + kLog2e, F{} + kRoundMagic);
  const F n = t - kRoundMagic;
  F r = fma(n, F{} + kMinusLn2Hi, yc);
  r = fma(n, F{} + kMinusLn2Lo, r);
  F q = F{} + kExpPoly[0];
  for (int k = 1; k < 5; ++k) q = fma(q, r, F{} + kExpPoly[k]);
  *t_out = t;
  return fma(q, r, F{} + 1.0f);
}

inline float exp_nonpositive(float y) {
  const std::int32_t keep = -std::int32_t(y >= kExpLowest);  // all ones, or 0 (also for NaN)
  std::int32_t yb, lob;
  const float lo = kExpLowest;
  std::memcpy(&yb, &y, 4);
  std::memcpy(&lob, &lo, 4);
  const std::int32_t ycb = (yb & keep) | (lob & ~keep);
  float yc;
  std::memcpy(&yc, &ycb, 4);
  float t;  // n + 1.5 * 2^23
  const float q = exp_reduced(yc, [](float a, float b, float c) { return std::fma(a, b, c); }, &t);
  std::uint32_t tb;
  std::memcpy(&tb, &t, 4);
  const std::uint32_t bits = (tb - kRoundMagicBits + 127u) << 23;  // 2^n
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

// The sum of 16 lane sums in a fixed tree.
inline double tree16(const double* d) {
  return (((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]))) +
         (((d[8] + d[9]) + (d[10] + d[11])) + ((d[12] + d[13]) + (d[14] + d[15])));
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
