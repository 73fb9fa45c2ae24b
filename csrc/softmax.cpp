#include "softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#if defined(FASTSOFTMAX_X86)
#include <xmmintrin.h>  // _mm_getcsr/_mm_setcsr: SSE, part of the x86-64 baseline
#endif

#include "threadpool.h"

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
// element) wins; once input plus output spill out of the L2 the memory traffic is the
// limit and two-pass (2R+1W instead of 3R+2W) wins.
const char* auto_algorithm(DType dtype, std::size_t row_length) {
  const std::size_t itemsize = dtype == DType::f32 ? 4 : 8;
  std::size_t l2 = cache_sizes().l2;
  if (l2 == 0) l2 = 1u << 20;
  return 2 * row_length * itemsize <= l2 ? "three-pass-reload" : "two-pass";
}

namespace {

// Flush-to-zero and denormals-are-zero while a task runs (MXCSR is per thread; restored
// on exit). Subnormal results -- outputs below ~1e-38 (f32), tiny contributions when pass 1
// rescales -- otherwise take microcode assists of ~100 cycles each on Intel: a
// U[-1000, 1000] row ran 10x slower. Only outputs below the smallest normal number change
// (to 0); the AVX2 exponent-bit 2^d already flushes there.
class FlushDenormals {
 public:
#if defined(FASTSOFTMAX_X86)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// Rows longer than this are computed as chunks of this many elements whose statistics
// are merged in chunk order. The chunking depends on the row length alone, never on the
// thread count, so the result is bitwise the same for any number of threads.
constexpr std::size_t kChunk = std::size_t{1} << 16;
// Below this many elements in a call, threads cost more than they save (measured: see
// README, "Threads").
constexpr std::size_t kMinParallelElements = std::size_t{1} << 17;

template <class T>
class RowRunner {
 public:
  RowRunner(const KernelEntry& k, std::size_t n, int threads)
      : p_(*static_cast<const Primitives<T>*>(k.prims)),
        log_(k.op_id == Op::log_softmax),
        alg_(k.algorithm_id),
        n_(n),
        chunks_((n + kChunk - 1) / kChunk),
        stream_(n * sizeof(T) >= streaming_threshold_bytes()),
        threads_(chunks_ > 1 ? threads : 1) {}

  // One row; its chunks spread over threads_ threads.
  void row(const T* x, T* y) const {
    switch (alg_) {
      case Algorithm::two_pass: return two_pass(x, y);
      case Algorithm::online: return online(x, y);
      case Algorithm::three_pass_recompute:
      case Algorithm::three_pass_reload: return three_pass(x, y);
    }
  }

 private:
  std::size_t begin(std::size_t c) const { return c * kChunk; }
  std::size_t size(std::size_t c) const { return std::min(kChunk, n_ - c * kChunk); }

  template <class F>
  void each_chunk(F&& f) const {
    if (chunks_ == 1) return f(std::size_t{0});
    parallel_for(chunks_, threads_, [&](std::size_t c) {
      FlushDenormals ftz;
      f(c);
    });
  }
  // Small per-row scratch without heap traffic for the common one-chunk row.
  template <class U>
  struct Scratch {
    U one[2];
    std::vector<U> many;
    explicit Scratch(std::size_t count) {
      if (count > 1) many.resize(2 * count);
    }
    U* data() { return many.empty() ? one : many.data(); }
  };

  void exact(const T* x, T* y) const { p_.exact_row(n_, x, y, log_); }

  void two_pass(const T* x, T* y) const {
    Scratch<T> s(chunks_);
    T* m = s.data();
    T* e = m + chunks_;
    each_chunk([&](std::size_t c) { p_.pair_sum(size(c), x + begin(c), &m[c], &e[c]); });
    double e_max = -std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < chunks_; ++c) e_max = std::max(e_max, double(e[c]));
    double sum = 0;  // exact rescaling by powers of two, in chunk order
    for (std::size_t c = 0; c < chunks_; ++c) {
      const double d = double(e[c]) - e_max;
      if (d >= -2000.0) sum += std::ldexp(double(m[c]), static_cast<int>(d));
      else if (d != d) sum = std::numeric_limits<double>::quiet_NaN();  // NaN exponent: NaN input
    }
    // !(sum < inf) also catches NaN (a NaN or +inf input reaches the sum as NaN).
    if (!(sum < std::numeric_limits<double>::infinity()) ||
        !(e_max >= FastRange<T>::kMinRowExponent && e_max <= FastRange<T>::kMaxRowExponent))
      return exact(x, y);
    if (log_) {
      const T c0 = static_cast<T>(std::log(sum) + e_max * 0x1.62e42fefa39efp-1);
      each_chunk([&](std::size_t c) { p_.write_sub(size(c), x + begin(c), y + begin(c), c0, stream_); });
    } else {
      const T inv = static_cast<T>(1.0 / sum), et = static_cast<T>(e_max);
      each_chunk([&](std::size_t c) { p_.write_pair(size(c), x + begin(c), y + begin(c), inv, et, stream_); });
    }
  }

  void online(const T* x, T* y) const {
    Scratch<T> s(chunks_);
    T* mu = s.data();
    T* sigma = mu + chunks_;
    each_chunk([&](std::size_t c) { p_.online_sum(size(c), x + begin(c), &mu[c], &sigma[c]); });
    double mu_max = -std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < chunks_; ++c) mu_max = std::max(mu_max, double(mu[c]));
    double sum = 0;
    for (std::size_t c = 0; c < chunks_; ++c) sum += double(sigma[c]) * std::exp(double(mu[c]) - mu_max);
    if (!(sum < std::numeric_limits<double>::infinity()) ||
        !(mu_max >= -FastRange<T>::kHigh && mu_max <= FastRange<T>::kHigh))
      return exact(x, y);
    finish_max_based(x, y, static_cast<T>(mu_max), sum);
  }

  void three_pass(const T* x, T* y) const {
    Scratch<T> s(chunks_);
    T* mu = s.data();
    T* sigma = mu + chunks_;
    std::vector<char> bad_many(chunks_ > 1 ? chunks_ : 0);
    char bad_one = 0;
    char* bad = chunks_ > 1 ? bad_many.data() : &bad_one;
    each_chunk([&](std::size_t c) { bad[c] = p_.max(size(c), x + begin(c), &mu[c]); });
    T mu_max = -std::numeric_limits<T>::infinity();
    bool any_bad = false;
    for (std::size_t c = 0; c < chunks_; ++c) {
      mu_max = std::max(mu_max, mu[c]);
      any_bad = any_bad || bad[c];
    }
    if (any_bad || !(mu_max >= -FastRange<T>::kHigh)) return exact(x, y);
    const bool reload = alg_ == Algorithm::three_pass_reload;
    each_chunk([&](std::size_t c) {
      const std::size_t b = begin(c);
      sigma[c] = !reload ? p_.sum_exp(size(c), x + b, mu_max)
                 : log_  ? p_.store_shifted(size(c), x + b, y + b, mu_max)
                         : p_.store_exp(size(c), x + b, y + b, mu_max);
    });
    double sum = 0;
    for (std::size_t c = 0; c < chunks_; ++c) sum += double(sigma[c]);
    if (!reload) return finish_max_based(x, y, mu_max, sum);
    if (log_) {
      const T c0 = static_cast<T>(std::log(sum));
      each_chunk([&](std::size_t c) { p_.write_sub(size(c), y + begin(c), y + begin(c), c0, stream_); });
    } else {
      const T inv = static_cast<T>(1.0 / sum);
      each_chunk([&](std::size_t c) { p_.write_scale(size(c), y + begin(c), inv, stream_); });
    }
  }

  // y = e^(x - mu) / sum, or y = x - (mu + log sum).
  void finish_max_based(const T* x, T* y, T mu, double sum) const {
    if (log_) {
      const T c0 = static_cast<T>(double(mu) + std::log(sum));
      each_chunk([&](std::size_t c) { p_.write_sub(size(c), x + begin(c), y + begin(c), c0, stream_); });
    } else {
      const T inv = static_cast<T>(1.0 / sum);
      each_chunk([&](std::size_t c) { p_.write_exp_scaled(size(c), x + begin(c), y + begin(c), mu, inv, stream_); });
    }
  }

  const Primitives<T>& p_;
  const bool log_;
  const Algorithm alg_;
  const std::size_t n_, chunks_;
  const bool stream_;
  const int threads_;
};

template <class T>
void run_rows_typed(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
                    const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  const std::size_t n = static_cast<std::size_t>(shape[ndim - 1]);
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  if (n == 0 || rows == 0) return;
  const std::int64_t x_step = xs[ndim - 1], y_step = ys[ndim - 1];
  const bool x_contig = x_step == std::int64_t(sizeof(T));
  const bool y_contig = y_step == std::int64_t(sizeof(T));

  if (threads <= 0) threads = get_num_threads();
  if (rows * n < kMinParallelElements) threads = 1;
  // Many rows: whole rows per thread. Few long rows: one row at a time, its chunks spread
  // over the threads. Either way each row is computed the same way.
  const bool by_rows = rows >= std::size_t(2 * threads) || n <= kChunk;
  const RowRunner<T> runner(k, n, by_rows ? 1 : threads);

  // The byte offsets of row r (unravel r over the outer axes).
  auto offsets = [&](std::size_t r, std::int64_t& xo, std::int64_t& yo) {
    xo = yo = 0;
    for (int d = ndim - 2; d >= 0; --d) {
      const std::int64_t i = static_cast<std::int64_t>(r % std::size_t(shape[d]));
      r /= std::size_t(shape[d]);
      xo += i * xs[d];
      yo += i * ys[d];
    }
  };
  auto one_row = [&](std::size_t r, std::vector<T>& buffer) {
    std::int64_t xo, yo;
    offsets(r, xo, yo);
    const char* xr = x + xo;
    char* yr = y + yo;
    if (x_contig && y_contig) return runner.row(reinterpret_cast<const T*>(xr), reinterpret_cast<T*>(yr));
    // Gather a strided input row into the output row when that is contiguous, else into the
    // buffer; compute in place there; scatter to a strided output row.
    if (!y_contig && buffer.size() < n) buffer.resize(n);
    T* work = y_contig ? reinterpret_cast<T*>(yr) : buffer.data();
    const T* src = reinterpret_cast<const T*>(xr);
    if (!x_contig) {
      for (std::size_t i = 0; i < n; ++i) std::memcpy(&work[i], xr + std::int64_t(i) * x_step, sizeof(T));
      src = work;
    }
    runner.row(src, work);
    if (!y_contig)
      for (std::size_t i = 0; i < n; ++i) std::memcpy(yr + std::int64_t(i) * y_step, &work[i], sizeof(T));
  };

  if (by_rows && threads > 1) {
    const std::size_t tasks = std::min(rows, std::size_t(threads) * 4);
    parallel_for(tasks, threads, [&](std::size_t t) {
      FlushDenormals ftz;
      std::vector<T> buffer;
      for (std::size_t r = rows * t / tasks; r < rows * (t + 1) / tasks; ++r) one_row(r, buffer);
    });
  } else {
    FlushDenormals ftz;
    std::vector<T> buffer;
    for (std::size_t r = 0; r < rows; ++r) one_row(r, buffer);
  }
}

}  // namespace

void run_rows(const KernelEntry& k, int ndim, const std::int64_t* shape, const char* x,
              const std::int64_t* xs, char* y, const std::int64_t* ys, int threads) {
  if (ndim < 1) return;
  if (k.dtype == DType::f32)
    run_rows_typed<float>(k, ndim, shape, x, xs, y, ys, threads);
  else
    run_rows_typed<double>(k, ndim, shape, x, xs, y, ys, threads);
}

}  // namespace fastsoftmax
