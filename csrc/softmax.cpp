#include "softmax.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch/cpu_features.h"
#include "dispatch/registry.h"
#include "dispatch/storage.h"
#include "select_kernel.h"
#include "threadpool.h"
#include "workspace.h"

#define FASTSOFTMAX_ROWS_NS generic
#include "kernels/rows.h"

namespace fastsoftmax {

std::size_t streaming_threshold_bytes() {
  // Stream an output row once input plus output exceed the last-level cache (DESIGN §6:
  // non-temporal stores are several times slower while the data would still fit).
  // FASTSOFTMAX_STREAM_MIN_BYTES overrides it, for measuring the crossover.
  static const std::size_t threshold = [] {
    if (const char* env = std::getenv("FASTSOFTMAX_STREAM_MIN_BYTES")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') return static_cast<std::size_t>(v);
    }
    const CacheSizes& c = cache_sizes();
    const std::size_t llc = c.l3 ? c.l3 : c.l2 ? c.l2 : (std::size_t{32} << 20);
    return llc / 2;
  }();
  return threshold;
}

// Rule: in cache the exp arithmetic is the limit and three-pass reload (one exp per
// element) wins; once the input is past the L2 the memory traffic is the limit and
// two-pass (2R+1W instead of 3R+2W) wins. float64 has more arithmetic per byte, and reload
// stays ahead up to 4 x L2. The crossovers measured: docs/results.md, "The auto rule".
// A machine profile (fastsoftmax-bench --tune) replaces the rule with this machine's own
// crossover; kBuiltIn marks a dtype without one.
namespace {
constexpr std::size_t kBuiltIn = ~std::size_t{0};
constexpr std::size_t kBuiltInPrefetchMin = std::size_t{1} << 16;
std::atomic<std::size_t> g_reload_limit[kDTypes] = {kBuiltIn, kBuiltIn, kBuiltIn, kBuiltIn};
}  // namespace

namespace {
// The active tier's name, or "" under a bad FASTSOFTMAX_ISA (reported where it is used).
std::string active_isa_or_none() {
  try {
    return active_isa();
  } catch (const std::invalid_argument&) {
    return {};
  }
}

// Where the vector arithmetic is 256 bits wide (the avx2 tier, or AVX-512 executed in two
// halves), two-pass's two exps an element keep it compute-bound far into the L3, and reload
// stays ahead up to about L3/4 of input (16-bit input: L3/8, the same element count, as
// reload's middle row is float32).
// (docs/results.md, "The auto rule").
bool narrow_vector_arithmetic(const std::string& isa) {
  return isa == "avx2" || (isa == "avx512" && splits_512_bit_ops());
}

// Where even 256-bit arithmetic runs in 128-bit halves (AMD before Zen 2), two-pass stays
// compute-bound out of cache and slower than reload at every length measured (to 128 MiB of
// input): reload at any length (docs/results.md, "The auto rule").
bool halved_avx2_arithmetic(const std::string& isa) { return isa == "avx2" && splits_256_bit_ops(); }
}  // namespace

std::size_t builtin_reload_limit(DType dtype) {
  const std::string isa = active_isa_or_none();
  if (halved_avx2_arithmetic(isa)) return std::numeric_limits<std::int64_t>::max();  // as the C API reports it
  std::size_t l2 = cache_sizes().l2;
  if (l2 == 0) l2 = 1u << 20;
  std::size_t limit = dtype == DType::f64 ? 4 * l2 : l2;  // on the input alone
  if (narrow_vector_arithmetic(isa)) limit = std::max(limit, cache_sizes().l3 / (itemsize(dtype) == 2 ? 8 : 4));
  return limit;
}

std::size_t auto_reload_limit(DType dtype) {
  const std::size_t set = g_reload_limit[static_cast<int>(dtype)].load(std::memory_order_relaxed);
  return set == kBuiltIn ? builtin_reload_limit(dtype) : set;
}

bool auto_reload_limit_is_set(DType dtype) {
  return g_reload_limit[static_cast<int>(dtype)].load(std::memory_order_relaxed) != kBuiltIn;
}

void set_auto_reload_limit(DType dtype, std::int64_t bytes) {
  g_reload_limit[static_cast<int>(dtype)].store(bytes < 0 ? kBuiltIn : static_cast<std::size_t>(bytes),
                                                std::memory_order_relaxed);
}

// Software prefetch for rows (and chunks) of at least kChunk elements by default: batches
// of shorter rows ran slower with it on every machine measured (docs/results.md, "Software
// prefetch"); a machine profile may move the limit, or turn prefetch off (SIZE_MAX).
std::atomic<std::size_t> prefetch_min_elements_setting{kBuiltInPrefetchMin};

std::size_t prefetch_min_elements() { return prefetch_min_elements_setting.load(std::memory_order_relaxed); }

void set_prefetch_min_elements(std::int64_t elements) {
  prefetch_min_elements_setting.store(elements < 0 ? kBuiltInPrefetchMin : static_cast<std::size_t>(elements),
                                      std::memory_order_relaxed);
}

namespace {
constexpr double kFastEndReloadNs = 0.15;  // float32 reload, ns per element, in cache (per_element_ns)
std::atomic<double> g_cost_scale{-1.0};    // < 0: the measured factor

// The fastest of a few runs of one row, so that a busy moment does not count; a tier that
// cannot run here, or a clock that cannot tell, leaves the fast end (factor 1).
double measure_cost_scale() {
  try {
    constexpr std::size_t n = 4096;
    TierRefusal refusal = TierRefusal::none;
    const KernelEntry* k = select_kernel(nullptr, DType::f32, Op::softmax, Algorithm::three_pass_reload, n, &refusal);
    if (k == nullptr) return 1.0;
    std::vector<float> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 0.125f * float(i % 61) - 3.0f;
    const std::int64_t shape[1] = {std::int64_t(n)}, strides[1] = {std::int64_t(sizeof(float))};
    double best = std::numeric_limits<double>::infinity();
    for (int rep = 0; rep < 7; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      run_rows(*k, 1, shape, reinterpret_cast<const char*>(x.data()), strides, reinterpret_cast<char*>(y.data()),
               strides, 1);
      const auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    const double scale = best / double(n) / kFastEndReloadNs;
    return std::isfinite(scale) ? std::clamp(scale, 1.0, 100.0) : 1.0;
  } catch (...) {
    return 1.0;
  }
}
}  // namespace

double cost_scale() {
  const double set = g_cost_scale.load(std::memory_order_relaxed);
  if (set >= 0) return set;
  static const double measured = measure_cost_scale();
  return measured;
}

void set_cost_scale(double scale) { g_cost_scale.store(scale, std::memory_order_relaxed); }

// A batch whose input plus output exceed half the last-level cache (the streaming
// threshold) reads every row from memory. Where the vector arithmetic is 512 bits wide,
// two-pass is then at least level with reload from rows of 16384 float32 or float64
// elements, and ahead from rows of 32000; 16-bit rows, whose two-pass computes more per
// byte, stay with reload (docs/results.md, "The auto rule").
constexpr std::size_t kLongBatchedRow = 16384;

bool long_rows_beyond_cache(DType dtype, std::size_t row_length, std::size_t rows) {
  if (rows < 2 || row_length < kLongBatchedRow || itemsize(dtype) == 2) return false;
  const std::string isa = active_isa_or_none();
  if (isa != "avx512" || narrow_vector_arithmetic(isa)) return false;
  return rows * row_length * 2 * itemsize(dtype) >= streaming_threshold_bytes();
}

Algorithm auto_algorithm(DType dtype, std::size_t row_length, std::size_t rows) {
  if (long_rows_beyond_cache(dtype, row_length, rows)) return kAutoBeyondCache;
  return row_length * itemsize(dtype) <= auto_reload_limit(dtype) ? kAutoInCache : kAutoBeyondCache;
}

namespace {

// The cost model for splitting a call: nanoseconds of work per element at the fast end of
// what one thread takes in cache (docs/results.md), so that the estimate errs towards
// fewer threads; useful_threads weighs it against the measured hand-off cost.
double per_element_ns(std::size_t itemsize) { return (itemsize == 8 ? 0.35 : 0.15) * cost_scale(); }

// The rows of a job and the threads to use for it.
struct Plan {
  std::size_t rows, n;
  int threads;
};
template <class T>
Plan plan(const RowsJob& job, int threads) {
  Plan pl{1, static_cast<std::size_t>(job.shape[job.ndim - 1]), resolve_threads(threads)};
  for (int d = 0; d + 1 < job.ndim; ++d) pl.rows *= static_cast<std::size_t>(job.shape[d]);
  if (pl.threads > 1) pl.threads = useful_threads(pl.threads, double(pl.rows * pl.n) * per_element_ns(sizeof(T)));
  return pl;
}

// Whether the threads take whole rows (many rows, or short ones) rather than the chunks of
// one row at a time (few long rows). Either split gives the same bits (row_rules.h, threads).
bool rows_over_threads(const Plan& pl) { return pl.rows >= std::size_t(2 * pl.threads) || pl.n <= generic::kChunk; }

// Calls fn(runner, r, x_row, y_row) for every row of the job through the generic
// RowRunner, split over the threads by rows_over_threads. The scratch of every thread that
// runs rows is allocated first (Workspace: std::bad_alloc before anything is written).
template <class T, class Fn>
void drive(const Primitives<T>& p, const RowsJob& job, const Plan& pl, Fn&& fn) {
  const bool by_rows = rows_over_threads(pl);
  const int chunk_threads = by_rows ? 1 : pl.threads;
  const auto chunks = [chunk_threads](std::size_t count, auto& f) {
    parallel_for(count, chunk_threads, [&](std::size_t c) {
      generic::FlushDenormals ftz;
      f(c, nullptr);  // no StridedRow here: no gather buffer
    });
  };
  using Runner = generic::RowRunner<T, Primitives<T>, decltype(chunks)>;
  const bool serial = !by_rows || pl.threads <= 1;
  const std::size_t tasks = serial ? 1 : std::min(pl.rows, std::size_t(pl.threads) * 4);
  const generic::ScratchLayout layout = generic::scratch_layout<T>(job);
  Workspace ws(workspace_blocks(tasks, pl.threads), layout.bytes());
  const auto rows_of = [&](std::size_t r0, std::size_t r1) {
    generic::FlushDenormals ftz;
    const Workspace::Lease block(ws);
    const Runner runner(p, chunks, job.op, job.algorithm, pl.n, generic::stream_rows_of(job),
                        generic::runner_scratch<T>(block.get(), layout, pl.n));
    generic::for_rows<T>(job, r0, r1, block.get(), [&](std::size_t r, const T* xr, T* yr) { fn(runner, r, xr, yr); });
  };
  if (serial) return rows_of(0, pl.rows);
  parallel_for(tasks, pl.threads, [&](std::size_t t) { rows_of(pl.rows * t / tasks, pl.rows * (t + 1) / tasks); });
}

template <class T>
void run_rows_typed(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                    const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  const RowsJob job{k.op_id, k.algorithm_id, ndim, shape, x, xs, y, ys, n * sizeof(T) >= streaming_threshold_bytes(),
                    rows * n * 2 * sizeof(T) >= streaming_threshold_bytes()};  // input and output
  const Plan pl = plan<T>(job, threads);
  if (pl.n == 0 || pl.rows == 0) return;
  const Primitives<T>& table = *static_cast<const Primitives<T>*>(k.prims);
  const Primitives<T>& p = k.op_id == Op::softmax ? *table.softmax : table;
  if (pl.n <= generic::kChunk) {  // short rows: the whole per-row work inside the tier
    const std::size_t tasks = std::min(pl.rows, std::size_t(pl.threads) * 4);
    Workspace ws(workspace_blocks(tasks, pl.threads), p.rows_scratch_bytes(job));  // before any row is written
    return parallel_for(tasks, pl.threads, [&](std::size_t t) {
      const Workspace::Lease block(ws);
      p.rows(job, pl.rows * t / tasks, pl.rows * (t + 1) / tasks, block.get());
    });
  }
  drive<T>(p, job, pl, [](const auto& runner, std::size_t, const T* xr, T* yr) { runner.row(xr, yr); });
}

// Two-pass statistics (y == null) or pass 2 from them, over every row.
template <class T, class Fn>
void run_stats_typed(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                     const std::int64_t* xs, char* y, const std::int64_t* ys, int threads, Fn&& fn) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  const RowsJob job{k.op_id, Algorithm::two_pass, ndim, shape, x, xs, y, y ? ys : xs,
                    y != nullptr && n * sizeof(T) >= streaming_threshold_bytes()};
  const Plan pl = plan<T>(job, threads);
  if (pl.n == 0 || pl.rows == 0) return;
  drive<T>(*static_cast<const Primitives<T>*>(k.prims), job, pl, fn);
}

// Statistics of rows longer than a chunk whose layout is RowLayout::gathered (the row walk
// would copy one whole row at a time): each chunk is gathered on its own instead (RowRunner
// over a StridedRow), so no row is ever copied whole -- the statistics of a strided or
// broadcast row of 2^28 elements would otherwise allocate a 1 GiB buffer. The chunks are
// those of a contiguous row: the same bits (row_rules.h, threads). False: not such rows.
// The chunk statistics and gather buffers come from Workspaces allocated before any row is
// read (strided_stats_layout), like the scratch of the other calls.
template <class S>
bool strided_row_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                       const std::int64_t* xs, double* m, double* e, double* shift, int threads) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  const std::int64_t step = xs[ndim - 1];
  const RowsJob job{k.op_id, Algorithm::two_pass, ndim, shape, x, xs, nullptr, xs, false};
  if (n <= generic::kChunk || generic::RowWalk<S>(job).layout != generic::RowLayout::gathered) return false;
  const Plan pl = plan<S>(job, threads);
  if (pl.rows == 0) return true;
  const auto row_at = [&](std::size_t r) {
    std::int64_t off = 0;
    for (std::size_t rest = r, d = std::size_t(ndim - 1); d-- > 0;) {
      off += static_cast<std::int64_t>(rest % std::size_t(shape[d])) * xs[d];
      rest /= std::size_t(shape[d]);
    }
    return generic::StridedRow{x + off, step};
  };
  const Primitives<S>& p = *static_cast<const Primitives<S>*>(k.prims);
  if (pl.rows >= std::size_t(2 * pl.threads)) {  // rows over the threads, each row's chunks in turn
    // Each thread: the chunk statistics and the gather buffer of the row it is on.
    const generic::ScratchLayout layout = generic::strided_stats_layout<S>(n, true);
    Workspace ws(workspace_blocks(pl.rows, pl.threads), layout.bytes());
    parallel_for(pl.rows, pl.threads, [&](std::size_t r) {
      generic::FlushDenormals ftz;
      const Workspace::Lease block(ws);
      const generic::RowRunner<S, Primitives<S>, generic::SerialChunks> runner(
          p, {}, job.op, job.algorithm, n, false, generic::runner_scratch<S>(block.get(), layout, n));
      runner.stats(row_at(r), &m[r], &e[r], &shift[r]);
    });
    return true;
  }
  // Few rows: each row's chunks over the threads. The row's chunk statistics (one block,
  // this thread's), and a gather buffer for each thread that runs chunks at once.
  const std::size_t row_chunks = generic::chunk_count(n);
  const generic::ScratchLayout layout = generic::strided_stats_layout<S>(n, false);
  Workspace stats_ws(1, layout.bytes());
  Workspace gather_ws(workspace_blocks(row_chunks, pl.threads), generic::gather_bytes<S>());
  const auto chunks = [&](std::size_t count, auto& f) {
    parallel_for(count, pl.threads, [&](std::size_t c) {
      generic::FlushDenormals ftz;
      const Workspace::Lease buffer(gather_ws);
      f(c, buffer.get());
    });
  };
  const Workspace::Lease block(stats_ws);
  const generic::RowRunner<S, Primitives<S>, decltype(chunks)> runner(p, chunks, job.op, job.algorithm, n, false,
                                                                       generic::runner_scratch<S>(block.get(), layout, n));
  generic::FlushDenormals ftz;
  for (std::size_t r = 0; r < pl.rows; ++r) runner.stats(row_at(r), &m[r], &e[r], &shift[r]);
  return true;
}

}  // namespace

double logsumexp_of_stats(double m, double e, double shift) {
  return e * kLn2Hi + (std::log(m) + e * kLn2Lo) + shift;
}

void row_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x, const std::int64_t* xs,
               double* m, double* e, double* shift, int threads) {
  if (ndim < 1) return;
  if (shape[ndim - 1] == 0) {  // empty rows: the empty sum, m * 2^e = 0
    std::size_t rows = 1;
    for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
    for (std::size_t r = 0; r < rows; ++r) {
      m[r] = 0;
      e[r] = -std::numeric_limits<double>::infinity();
      shift[r] = 0;
    }
    return;
  }
  with_storage(k.dtype, [&](auto s) {
    using S = decltype(s);
    if (strided_row_stats<S>(k, ndim, shape, x, xs, m, e, shift, threads)) return;
    auto fn = [&](const auto& runner, std::size_t r, const auto* xr, auto*) { runner.stats(xr, &m[r], &e[r], &shift[r]); };
    run_stats_typed<S>(k, ndim, shape, x, xs, nullptr, nullptr, threads, fn);
  });
}

void rows_from_stats(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                     const std::int64_t* xs, char* y, const std::int64_t* ys, const double* m, const double* e,
                     const double* shift, int threads) {
  if (ndim < 1) return;
  auto fn = [&](const auto& runner, std::size_t r, const auto* xr, auto* yr) {
    runner.from_stats(xr, yr, m[r], e[r], shift[r]);
  };
  with_storage(k.dtype, [&](auto s) { run_stats_typed<decltype(s)>(k, ndim, shape, x, xs, y, ys, threads, fn); });
}

namespace {
thread_local int g_last_requested_threads = 0;
}  // namespace

int last_requested_threads() { return g_last_requested_threads; }

void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  g_last_requested_threads = threads;
  if (ndim < 1) return;
  with_storage(k.dtype, [&](auto s) { run_rows_typed<decltype(s)>(k, ndim, shape, x, xs, y, ys, threads); });
}

}  // namespace fastsoftmax
