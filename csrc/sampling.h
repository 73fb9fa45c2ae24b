// Sampling from logits: temperature, top-k, top-p and min-p in one call, without sorting.
// Semantics: docs/sampling.md. float32/float16/bfloat16 rows run the active tier's vector
// passes (csrc/kernels/sampling_body.h); float64 rows a portable path.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastsoftmax {

struct Half;
struct BFloat16;

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
void philox4x32_10(const std::uint32_t counter[4], const std::uint32_t key[2], std::uint32_t out[4]);
// The uniform double in [0, 1) that row `counter` of stream `seed` draws: Philox4x32-10 with
// key (seed low 32 bits, seed high 32 bits) and counter (counter low, counter high, 0, 0);
// u = ((out0 >> 5) * 2^26 + (out1 >> 6)) / 2^53.
double philox_uniform(std::uint64_t seed, std::uint64_t counter);

// Per-row settings, each an array of `rows` values (the caller broadcasts scalars).
struct SampleParams {
  const double* temperature;    // >= 0, finite; 0: greedy
  const std::int64_t* top_k;    // >= 1; >= n disables
  const double* top_p;          // (0, 1]; 1 disables
  const double* min_p;          // [0, 1]; 0 disables
  const std::uint64_t* seed;
  std::uint64_t row_offset;     // row r draws with counter row_offset + r
  std::ptrdiff_t row_stride;    // row r starts at x + r * row_stride (elements; n when contiguous)
};

enum SampleError : int { kSampleOk = 0, kSampleNaN = 1, kSampleAllNegInf = 2, kSamplePosInf = 3 };

// Samples one token per row of the rows x n matrix x, row r at x + r * p.row_stride (T:
// float, double, Half, BFloat16). tokens (and logprobs when
// not null: the log-probability of the drawn token under the filtered, renormalized
// distribution it was drawn from) get one value per row. Returns the lowest row index
// whose logits are invalid (and *error its SampleError), or -1 when every row was sampled;
// on an error the contents of tokens/logprobs are unspecified. threads as everywhere
// (0: the default budget); the result does not depend on it.
template <typename T>
std::int64_t sample_rows(const T* x, std::size_t rows, std::size_t n, const SampleParams& p,
                         std::int64_t* tokens, double* logprobs, int threads, int* error);

// The indices of the k (1 <= k <= n) first tokens of every row in the order (logit
// descending, index ascending; +0 above -0), written to idx (rows x k). Row errors as
// sample_rows (NaN, +inf, all -inf); the contents of idx are then unspecified.
template <typename T>
std::int64_t topk_rows(const T* x, std::size_t rows, std::size_t n, std::size_t k, std::int64_t* idx, int threads,
                       int* error);

}  // namespace fastsoftmax
