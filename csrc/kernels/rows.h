// The row path, written once: the per-row algorithms (row_runner.h: RowRunner), the walk
// over the rows of an array in the layout decided once per job (row_walk.h: RowLayout,
// RowWalk, for_rows), one thread's scratch for both (row_scratch.h: scratch_layout,
// run_short_rows) and the bitwise-identity rules they keep (row_rules.h). softmax.cpp
// includes it over primitive tables, for rows longer than a chunk (their chunks spread over
// threads); each tier's kernel file over its own direct functions, for short rows (the whole
// row inside the tier: no call crosses between SSE and AVX code per row). The includer picks
// the namespace, like passes.h.
#ifndef FASTSOFTMAX_ROWS_NS
#error "define FASTSOFTMAX_ROWS_NS (the namespace for this copy) before including rows.h"
#endif

#include "kernels/row_rules.h"
#include "kernels/row_runner.h"
#include "kernels/row_walk.h"
#include "kernels/row_scratch.h"
