// The per-row algorithms (which primitive runs when, and the exact glue between them)
// and the walk over the rows of an array, written once. Included by softmax.cpp (over
// primitive tables, with chunks spread over threads) and by each tier's kernel file (over
// its own functions, for short rows): so the includer picks the namespace, like passes.h.
#ifndef FASTSOFTMAX_ROWS_NS
#error "define FASTSOFTMAX_ROWS_NS (the namespace for this copy) before including rows.h"
#endif

// The pieces: row_runner.h (RowRunner, the per-row algorithms) and row_walk.h (for_rows,
// the walk over an array's rows, and the scratch layout).
#include "kernels/row_runner.h"
#include "kernels/row_walk.h"
