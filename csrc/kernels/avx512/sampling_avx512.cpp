// The avx512 tier's sampling passes (sampling_body.h); built with the avx512 tier's flags.
#define FASTSOFTMAX_TIER avx512
#include "kernels/sampling_body.h"
