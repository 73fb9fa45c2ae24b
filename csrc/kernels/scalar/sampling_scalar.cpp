// The scalar tier's sampling passes (sampling_body.h); built without ISA flags.
#define FASTSOFTMAX_TIER scalar
#include "kernels/sampling_body.h"
