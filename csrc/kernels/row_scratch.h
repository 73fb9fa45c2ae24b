// The scratch memory of the row path: what one thread needs for the walk (row_walk.h) and
// RowRunner (row_runner.h), laid out in one block; and run_short_rows, which runs rows over
// both with that block. Included through rows.h, which the includer has given its namespace.
#pragma once  // FASTSOFTMAX_ROWS_NS: checked by rows.h, which includes this file

#include <cstddef>
#include <type_traits>

#include "kernels/primitives.h"
#include "kernels/row_runner.h"
#include "kernels/row_walk.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

inline std::size_t round_up64(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

// The scratch memory one thread needs for rows of a job (S: their storage type), in 64-byte
// multiples, one after another in one block: the walk's tile (or gathered-row) buffer, which
// the column kernel's copy shares (they are never in use at once); then the statistics of
// the chunks of a row longer than one chunk; then three-pass reload's middle rows where y
// cannot hold them (16-bit storage, or lean_reload's batches in a job that streams y);
// then, for the statistics of a long strided row read in place (strided_stats_layout), the
// buffer one chunk of it is gathered into. softmax.cpp
// allocates a block for every thread of a call before the call writes anything; nothing
// here allocates.
struct ScratchLayout {
  std::size_t walk = 0, chunks = 0, reload = 0, gather = 0;
  std::size_t bytes() const { return walk + chunks + reload + gather; }
};

// The buffer one chunk of a StridedRow of storage type S is gathered into.
template <class S>
constexpr std::size_t gather_bytes() {
  return (kChunk * sizeof(S) + 63) / 64 * 64;
}

template <class S, class Tr = NoBlockTranspose>
ScratchLayout scratch_layout(const RowsJob& job) {
  using T = compute_t<S>;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const std::size_t chunks = chunk_count(n);
  ScratchLayout l;
  l.walk = round_up64(RowWalk<S, Tr>(job).scratch_bytes());
  if (chunks > 1) l.chunks = round_up64(chunks * (2 * sizeof(T) + 1));
  if (job.algorithm == Algorithm::three_pass_reload) {
    const bool same = std::is_same<S, T>::value;
    if (chunks == 1 && n <= LeanMax<Tr>::value && (!same || job.prefetch_rows))
      l.reload = round_up64(kRowBatch * lean_stride(n) * sizeof(T));
    else if (!same)
      l.reload = round_up64(n * sizeof(T));
  }
  return l;
}

// The scratch of the thread that computes the statistics of n-long StridedRows (n > kChunk;
// softmax.cpp's strided_row_stats): the chunk statistics, and with `gather` the buffer for
// the chunks that this thread runs itself (rows spread over the threads, each row's chunks
// in turn). When a row's chunks are spread over the threads instead, each of those threads
// gets a gather_bytes<S>() block of its own (the chunk executor passes it).
template <class S>
ScratchLayout strided_stats_layout(std::size_t n, bool gather) {
  using T = compute_t<S>;
  ScratchLayout l;
  l.chunks = round_up64(chunk_count(n) * (2 * sizeof(T) + 1));
  if (gather) l.gather = gather_bytes<S>();
  return l;
}

// RowRunner's part of a scratch block laid out by l.
template <class S>
RunnerScratch<compute_t<S>> runner_scratch(unsigned char* block, const ScratchLayout& l, std::size_t n) {
  using T = compute_t<S>;
  RunnerScratch<T> s;
  if (l.chunks) {
    s.stats = reinterpret_cast<T*>(block + l.walk);
    s.bad = reinterpret_cast<char*>(s.stats + 2 * chunk_count(n));
  }
  if (l.reload) s.reload = reinterpret_cast<T*>(block + l.walk + l.chunks);
  if (l.gather) s.gather = block + l.walk + l.chunks + l.reload;
  return s;
}

// Rows [r0, r1) of a job of short rows (n <= kChunk), one after another.
// scratch: a block laid out by scratch_layout<S, Tr>(job); null when that is empty.
template <class S, class P, class Tr = NoBlockTranspose>
void run_short_rows(const P& p, const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, Tr tr = {}) {
  FlushDenormals ftz;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const RowRunner<S, P, SerialChunks> runner(
      p, SerialChunks{}, job.op, job.algorithm, n, stream_rows_of(job),
      scratch ? runner_scratch<S>(scratch, scratch_layout<S, Tr>(job), n) : RunnerScratch<compute_t<S>>{});
  for_rows<S>(job, r0, r1, scratch, [&](std::size_t, const S* x, S* y) { runner.row(x, y); }, tr,
             [&](int count, const S* const* xs, S* const* ys, int next_count, const S* const* next_xs) {
               runner.rows(count, xs, ys, job.prefetch_rows ? next_count : 0, next_xs, job.prefetch_rows);
             });
  if (job.prefetch_rows) runner.stream_fence();
}

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
