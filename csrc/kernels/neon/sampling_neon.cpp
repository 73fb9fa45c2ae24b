// The neon tier's sampling passes (sampling_body.h); AArch64's baseline, no flags.
#define FASTSOFTMAX_TIER neon
#include "kernels/sampling_body.h"
