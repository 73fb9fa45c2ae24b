// The avx2 tier's sampling passes (sampling_body.h); built with the avx2 tier's flags.
#define FASTSOFTMAX_TIER avx2
#include "kernels/sampling_body.h"
