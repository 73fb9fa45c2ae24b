#include "backward.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "dispatch/storage.h"
#include "kernels/backward_primitives.h"
#include "kernels/kernels.inc"
#include "softmax.h"
#include "threadpool.h"

#define FASTSOFTMAX_ROWS_NS generic
#include "kernels/row_rules.h"

namespace fastsoftmax {

// Every tier's backward passes, declared from the lists that define them.
#define FSM_DECLARE_BACKWARD(dt, stype) const BackwardPrimitives<stype>& dt##_backward();
#define FSM_DECLARE_TIER_BACKWARD(isa, isa_name) \
  namespace isa {                                 \
  FASTSOFTMAX_FOR_EACH_DTYPE(FSM_DECLARE_BACKWARD) \
  }
FASTSOFTMAX_FOR_EACH_ISA(FSM_DECLARE_TIER_BACKWARD)
#undef FSM_DECLARE_TIER_BACKWARD
#undef FSM_DECLARE_BACKWARD

namespace {

// The BackwardPrimitives<S> of a tier for dtype d (S: d's storage type).
const void* backward_table(Tier tier, DType d) {
  static const std::vector<const void*> tables = [] {  // [tier * kDTypes + dtype]
    std::vector<const void*> t;
#define FSM_BACKWARD_OF_DTYPE(dt, stype) t.push_back(&tier_ns::dt##_backward());
#define FSM_BACKWARD_OF_TIER(isa, isa_name)           \
  {                                                   \
    namespace tier_ns = ::fastsoftmax::isa;           \
    FASTSOFTMAX_FOR_EACH_DTYPE(FSM_BACKWARD_OF_DTYPE) \
  }
    FASTSOFTMAX_FOR_EACH_ISA(FSM_BACKWARD_OF_TIER)
#undef FSM_BACKWARD_OF_TIER
#undef FSM_BACKWARD_OF_DTYPE
    return t;
  }();
  return tables[std::size_t(tier) * kDTypes + std::size_t(d)];
}

// The forward's chunks and floating-point mode (kChunk, chunk_count, FlushDenormals).
using generic::chunk_count;
using generic::FlushDenormals;
using generic::kChunk;

template <class S>
void run(const BackwardPrimitives<S>& p, bool log, std::size_t rows, std::size_t n, const S* y, const S* g, S* dx,
         int threads) {
  using T = compute_t<S>;
  if (rows == 0 || n == 0) return;
  int t = resolve_threads(threads);
  // About 0.1 ns per element for one thread in cache (two reads, one write): errs towards fewer threads.
  if (t > 1) t = useful_threads(t, double(rows) * double(n) * (sizeof(S) == 8 ? 0.2 : 0.1));
  const bool stream = n * sizeof(S) >= streaming_threshold_bytes();
  const std::size_t chunks = chunk_count(n);
  const auto len = [n](std::size_t c) { return std::min(kChunk, n - c * kChunk); };
  const auto chunk_sum = [&](std::size_t r, std::size_t c) -> T {
    const std::size_t off = r * n + c * kChunk;
    return log ? p.sum(len(c), g + off) : p.dot(len(c), g + off, y + off);
  };
  const auto write = [&](std::size_t r, std::size_t c, T s) {
    const std::size_t off = r * n + c * kChunk;
    (log ? p.log_softmax_dx : p.softmax_dx)(len(c), y + off, g + off, dx + off, s, stream);
  };
  if (t <= 1 || chunks == 1 || rows >= std::size_t(2 * t)) {  // whole rows per task
    const std::size_t tasks = t <= 1 ? 1 : std::min(rows, std::size_t(t) * 4);
    parallel_for(tasks, t, [&](std::size_t k) {
      FlushDenormals ftz;
      for (std::size_t r = rows * k / tasks; r < rows * (k + 1) / tasks; ++r) {
        double s = 0;
        for (std::size_t c = 0; c < chunks; ++c) s += double(chunk_sum(r, c));
        const T st = static_cast<T>(s);
        for (std::size_t c = 0; c < chunks; ++c) write(r, c, st);
      }
    });
    return;
  }
  // Few long rows: each row's chunks over the threads, pass 1 then pass 2.
  std::vector<T> part(chunks);  // before anything is written
  for (std::size_t r = 0; r < rows; ++r) {
    parallel_for(chunks, t, [&](std::size_t c) {
      FlushDenormals ftz;
      part[c] = chunk_sum(r, c);
    });
    double s = 0;
    for (std::size_t c = 0; c < chunks; ++c) s += double(part[c]);
    const T st = static_cast<T>(s);
    parallel_for(chunks, t, [&](std::size_t c) {
      FlushDenormals ftz;
      write(r, c, st);
    });
  }
}


}  // namespace

void backward_rows(Tier tier, DType d, bool log, std::size_t rows, std::size_t n, const void* y, const void* g,
                   void* dx, int threads) {
  const void* table = backward_table(tier, d);
  with_storage(d, [&](auto s) {
    using S = decltype(s);
    run<S>(*static_cast<const BackwardPrimitives<S>*>(table), log, rows, n, static_cast<const S*>(y),
           static_cast<const S*>(g), static_cast<S*>(dx), threads);
  });
}

void backward_pattern(Tier tier, DType d, bool log, std::size_t n, const void* y, const void* g, void* dx) {
  const void* table = backward_table(tier, d);
  with_storage(d, [&](auto s) {
    using S = decltype(s);
    FlushDenormals ftz;
    static_cast<const BackwardPrimitives<S>*>(table)->pattern(n, static_cast<const S*>(y), static_cast<const S*>(g),
                                                              static_cast<S*>(dx), log);
  });
}

}  // namespace fastsoftmax
