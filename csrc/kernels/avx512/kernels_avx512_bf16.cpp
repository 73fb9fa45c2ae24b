// bfloat16 rows on CPUs with AVX512-BF16: the avx512 tier's kernels with vcvtneps2bf16 for
// the final rounding (one instruction instead of eight). Built with -mavx512bf16; the
// registry uses these primitives for the avx512 tier's bfloat16 kernels where the CPU has
// the extension (same results: both round to nearest even, both flush denormals here).
#define FASTSOFTMAX_AVX512_NS avx512_bf16
#include "vec_avx512.h"
#define FASTSOFTMAX_TIER avx512_bf16
#include "kernels/kernels.inc"
#include "kernels/passes.h"

namespace fastsoftmax {
namespace avx512_bf16 {
FASTSOFTMAX_DEFINE_DTYPE(bf16, BFloat16)
}  // namespace avx512_bf16
}  // namespace fastsoftmax
