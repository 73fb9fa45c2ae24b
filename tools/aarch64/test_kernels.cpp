// Native test driver for builds without Python (tools/test_aarch64.sh runs it under
// qemu-aarch64): every registry kernel of every compiled tier, and the C API, against a
// reference computed here -- long double (IEEE binary128 on AArch64) for float64 kernels,
// double for the float32-computed ones (it holds their results to ~1e-16, far below the
// 6e-7 bound). The bounds are DESIGN.md section 4's, as tests/test_accuracy.py states them.
//
// Exit status 0 when every check passed; every failure is printed (the first few per kernel).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "dispatch/registry.h"
#include "fastsoftmax/fastsoftmax.h"
#include "kernels/half.h"
#include "softmax.h"

using namespace fastsoftmax;

namespace {

int g_failures = 0;
#define CHECK(cond, ...)                                 \
  do {                                                   \
    if (!(cond)) {                                       \
      ++g_failures;                                      \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
      std::printf(__VA_ARGS__);                          \
      std::printf("\n");                                 \
    }                                                    \
  } while (0)

// ---- values in a dtype's storage ------------------------------------------------------

double decode(DType d, const unsigned char* p) {
  switch (d) {
    case DType::f32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::f64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::f16: { std::uint16_t b; std::memcpy(&b, p, 2); return half_to_float(b); }
    case DType::bf16: { std::uint16_t b; std::memcpy(&b, p, 2); return bfloat16_to_float(b); }
  }
  return 0;
}
void encode(DType d, double v, unsigned char* p) {  // rounds to nearest even, once
  switch (d) {
    case DType::f32: { const float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
    case DType::f64: std::memcpy(p, &v, 8); break;
    case DType::f16: { const std::uint16_t b = half_from(v); std::memcpy(p, &b, 2); break; }
    case DType::bf16: { const std::uint16_t b = bfloat16_from(v); std::memcpy(p, &b, 2); break; }
  }
}
double round_to(DType d, double v) {
  unsigned char b[8];
  encode(d, v, b);
  return decode(d, b);
}
// ulp of a non-negative value already in the 16-bit format.
double ulp16(DType d, double v) {
  unsigned char b[2];
  encode(d, v, b);
  std::uint16_t bits;
  std::memcpy(&bits, b, 2);
  const std::uint16_t next = static_cast<std::uint16_t>(bits + 1);
  std::memcpy(b, &next, 2);
  return decode(d, b) - v;
}

bool wide(DType d) { return d == DType::f64; }
// The bounds of the compute type (float32 for the 16-bit types).
double rel_base(DType d) { return wide(d) ? 2e-15 : 6e-7; }
double gap_coef(DType d) { return wide(d) ? 0x1p-53 : 0x1p-24; }
double tiny(DType d) { return wide(d) ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min(); }
double eps(DType d) { return wide(d) ? 0x1p-52 : 0x1p-23; }
double huge(DType d) {
  switch (d) {
    case DType::f32: return 3e38;
    case DType::f64: return 1.7e308;
    case DType::f16: return 65504;
    case DType::bf16: return 3.0e38;
  }
  return 0;
}

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1p-53; }
  double normal() {
    const double u = uniform() + 0x1p-54, v = uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

enum Dist { kNormal, kWide, kHigh };
const char* const kDistNames[] = {"N(0,1)", "U[-1000,1000]", "U[90,100]"};
double draw(Rng& r, Dist d) {
  switch (d) {
    case kNormal: return r.normal();
    case kWide: return -1000 + 2000 * r.uniform();
    case kHigh: return 90 + 10 * r.uniform();
  }
  return 0;
}

// ---- the reference ---------------------------------------------------------------------

struct RowRef {
  std::vector<double> soft, log, gap, soft_b, log_b;  // per element
  double log2n = 0;  // the row sum's term of the bound
};

// R: long double for float64 kernels, double otherwise.
template <class R>
RowRef reference(DType d, const double* x, std::size_t n) {
  RowRef ref;
  ref.soft.resize(n); ref.log.resize(n); ref.gap.resize(n); ref.soft_b.resize(n); ref.log_b.resize(n);
  if (n == 0) return ref;
  ref.log2n = std::log2(double(n));
  R mx = -std::numeric_limits<R>::infinity();
  for (std::size_t i = 0; i < n; ++i) mx = R(x[i]) > mx ? R(x[i]) : mx;
  std::vector<R> e(n);
  R s = 0;
  for (std::size_t i = 0; i < n; ++i) { e[i] = std::exp(R(x[i]) - mx); s += e[i]; }
  const R log_s = std::log(s);
  const double lse = double(mx + log_s);
  for (std::size_t i = 0; i < n; ++i) {
    const R gap = mx - R(x[i]);
    const R soft = e[i] / s;
    ref.soft[i] = double(soft);
    ref.log[i] = double(R(x[i]) - mx - log_s);
    ref.gap[i] = double(gap);
    // soft = 0 (x = -inf): gap = inf, and 0 * inf would make the bound NaN.
    // Softmax with a 16-bit result: its exps are Exp16's (tests/helpers.py EXP16_SOFTMAX_BOUND).
    const R exp16 = d == DType::f16 || d == DType::bf16 ? R(2 * std::exp2(-13.25) + std::exp2(-20.0)) : R(0);
    ref.soft_b[i] = soft == 0 ? tiny(d) : double(soft * (R(rel_base(d)) + exp16 + (gap + R(ref.log2n)) * R(gap_coef(d))) * R(1 + 1e-12) + R(tiny(d)));
    const double scale = std::fmax(std::fmax(1.0, std::fabs(x[i])), std::fabs(lse));
    ref.log_b[i] = 4 * eps(d) * scale;
  }
  return ref;
}
RowRef reference(DType d, const double* x, std::size_t n) {
  return wide(d) ? reference<long double>(d, x, n) : reference<double>(d, x, n);
}

// err/bound of one output element (> 1: out of bounds); NaN when y is NaN but r is not.
double judge(DType d, bool log, double y, const RowRef& ref, std::size_t i) {
  if (d == DType::f16 || d == DType::bf16) {
    const double r = log ? ref.log[i] : ref.soft[i];
    const double b = log ? ref.log_b[i] * (1 + 1e-12) : ref.soft_b[i];
    if (std::isinf(r)) return y == r ? 0 : INFINITY;
    const double lo = round_to(d, r - b), hi = round_to(d, r + b);
    if (!(y >= lo && y <= hi)) return INFINITY;
    const double r16 = round_to(d, r);
    if (log) return hi > lo ? std::fabs(y - r16) / (hi - lo) : 0;  // in the bracket: <= 1
    const double err = std::fabs(y - r16) / ulp16(d, r16);
    if (r < std::numeric_limits<float>::min()) return 0;  // below float32's tiny: may flush to 0
    return err;  // <= 1 ulp of the output type
  }
  if (log) {
    const double r = ref.log[i];
    if (std::isinf(r)) return y == r ? 0 : INFINITY;
    return std::fabs(y - r) / ref.log_b[i];
  }
  const double r = ref.soft[i];
  if (r >= tiny(d)) {
    const double bound = rel_base(d) + (ref.gap[i] + ref.log2n) * gap_coef(d);
    return std::fabs(y - r) / r / bound;
  }
  return (y >= 0 && y <= r + tiny(d)) ? 0 : INFINITY;  // |y - r| <= tiny below the normal range
}

// ---- running kernels -------------------------------------------------------------------

void run(const KernelEntry& k, std::size_t n, const unsigned char* x, unsigned char* y, int threads,
         std::size_t rows = 1) {
  const std::int64_t is = static_cast<std::int64_t>(itemsize(k.dtype));
  if (rows == 1) {
    const std::int64_t shape[1] = {static_cast<std::int64_t>(n)}, st[1] = {is};
    run_rows(k, 1, shape, reinterpret_cast<const char*>(x), st, reinterpret_cast<char*>(y), st, threads);
  } else {
    const std::int64_t shape[2] = {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(n)};
    const std::int64_t st[2] = {is * static_cast<std::int64_t>(n), is};
    run_rows(k, 2, shape, reinterpret_cast<const char*>(x), st, reinterpret_cast<char*>(y), st, threads);
  }
}

std::vector<const KernelEntry*> kernels_of(DType d) {
  std::vector<const KernelEntry*> v;
  for (const auto& k : all_kernels())
    if (k.dtype == d && tier_runnable(k.tier, cpu_features())) v.push_back(&k);
  return v;
}

struct Worst {
  double ratio = 0;
  long checked = 0, failed = 0;
};

// Rows of every length in `lengths`, back to back in one buffer that starts one element
// past a 64-byte boundary (so rows start at every alignment), each output row followed by
// a guard of 3 elements that must stay untouched.
void accuracy(DType d, Dist dist, const std::vector<std::size_t>& lengths, bool all_tiers) {
  const std::size_t is = itemsize(d), kGuard = 3;
  Rng rng{0x5EED0000u + 16 * unsigned(d) + unsigned(dist)};
  std::size_t total = 0;
  for (std::size_t n : lengths) total += n + kGuard;
  std::vector<double> xd(total);
  std::vector<unsigned char> xbuf((total + 64) * is), ybuf((total + 64) * is), zbuf((total + 64) * is);
  unsigned char* x = xbuf.data() + (64 - reinterpret_cast<std::uintptr_t>(xbuf.data()) % 64) % 64 + is;
  unsigned char* y = ybuf.data() + (64 - reinterpret_cast<std::uintptr_t>(ybuf.data()) % 64) % 64 + is;
  for (std::size_t i = 0; i < total; ++i) {
    encode(d, draw(rng, dist), x + i * is);
    xd[i] = decode(d, x + i * is);
  }
  std::vector<RowRef> refs;
  {
    std::size_t off = 0;
    for (std::size_t n : lengths) { refs.push_back(reference(d, xd.data() + off, n)); off += n + kGuard; }
  }
  for (const KernelEntry* k : kernels_of(d)) {
    if (!all_tiers && k->tier == Tier::scalar) continue;  // tested on every x86 run too
    const bool log = k->op_id == Op::log_softmax;
    std::memset(y, 0xA5, total * is);
    Worst w;
    std::size_t off = 0, row = 0;
    for (std::size_t n : lengths) {
      unsigned char* yr = y + off * is;
      run(*k, n, x + off * is, yr, 1);
      for (std::size_t g = 0; g < kGuard * is; ++g)
        if (yr[n * is + g] != 0xA5) { ++w.failed; CHECK(false, "%s n=%zu: wrote past the row", k->name.c_str(), n); break; }
      if (row % 5 == 0 && n > 0) {  // in place, misaligned by one more element: the same bits
        unsigned char* z = zbuf.data() + (64 - reinterpret_cast<std::uintptr_t>(zbuf.data()) % 64) % 64 + 2 * is;
        std::memcpy(z, x + off * is, n * is);
        run(*k, n, z, z, 1);
        if (std::memcmp(z, yr, n * is) != 0) {
          ++w.failed;
          CHECK(false, "%s n=%zu: in place differs from out of place", k->name.c_str(), n);
        }
      }
      for (std::size_t i = 0; i < n; ++i) {
        const double r = judge(d, log, decode(d, yr + i * is), refs[row], i);
        ++w.checked;
        if (!(r <= 1)) {
          if (w.failed++ < 3)
            CHECK(false, "%s %s n=%zu i=%zu x=%.9g y=%.9g ref=%.9g err/bound=%g", k->name.c_str(), kDistNames[dist], n,
                  i, xd[off + i], decode(d, yr + i * is), log ? refs[row].log[i] : refs[row].soft[i], r);
          else ++g_failures;
        } else if (r > w.ratio) {
          w.ratio = r;
        }
      }
      off += n + kGuard;
      ++row;
    }
    std::printf("  %-36s %-14s %9ld values, worst err/bound %.3f%s\n", k->name.c_str(), kDistNames[dist], w.checked,
                w.ratio, w.failed ? "  FAILED" : "");
  }
}

// ---- special values --------------------------------------------------------------------

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void special_values(DType d) {
  const std::size_t is = itemsize(d);
  const double inf = INFINITY, nan = NAN;
  const std::size_t lengths[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 64, 100, 257, 1000, 2049};
  long cases = 0;
  for (const KernelEntry* k : kernels_of(d)) {
    const bool log = k->op_id == Op::log_softmax;
    const KernelEntry* ref_k = &find_kernel(Tier::scalar, d, k->op_id, k->algorithm_id);
    Rng rng{0xC0FFEEu + unsigned(d)};
    for (std::size_t n : lengths) {
      const std::size_t positions[] = {0, n / 2, n - 1};
      for (int kind = 0; kind < 7; ++kind) {
        for (std::size_t p : positions) {
          std::vector<double> xd(n);
          for (auto& v : xd) v = draw(rng, kNormal);
          bool exact_path = true;  // compared with the scalar tier (the shared exact path)
          switch (kind) {
            case 0: xd[p] = nan; break;
            case 1: xd[p] = inf; break;
            case 2: xd[p] = -inf; exact_path = n == 1; break;  // an ordinary row otherwise
            case 3: xd[p] = huge(d); exact_path = false; break;
            case 4: xd[p] = -huge(d); exact_path = false; break;
            case 5: for (auto& v : xd) v = -inf; break;
            case 6: for (auto& v : xd) v = -huge(d); xd[p] = -huge(d) / 2; exact_path = false; break;
          }
          std::vector<unsigned char> x(n * is + 1), y(n * is + 1), yr(n * is + 1);
          unsigned char* xp = x.data() + 0;
          for (std::size_t i = 0; i < n; ++i) { encode(d, xd[i], xp + i * is); xd[i] = decode(d, xp + i * is); }
          run(*k, n, xp, y.data(), 1);
          ++cases;
          if (exact_path) {
            run(*ref_k, n, xp, yr.data(), 1);
            for (std::size_t i = 0; i < n; ++i) {
              const double a = decode(d, y.data() + i * is), b = decode(d, yr.data() + i * is);
              CHECK(same(a, b), "%s special %d n=%zu p=%zu i=%zu: %g, scalar tier %g", k->name.c_str(), kind, n, p, i, a, b);
              if (kind == 0) CHECK(std::isnan(a), "%s NaN row n=%zu: y[%zu] = %g, not NaN", k->name.c_str(), n, i, a);
            }
          } else {
            const RowRef ref = reference(d, xd.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
              const double yv = decode(d, y.data() + i * is);
              const double r = judge(d, log, yv, ref, i);
              CHECK(r <= 1, "%s special %d n=%zu p=%zu i=%zu: x=%g y=%g ref=%g err/bound=%g", k->name.c_str(), kind, n,
                    p, i, xd[i], yv, log ? ref.log[i] : ref.soft[i], r);
            }
          }
          if (n == 1) break;
        }
      }
    }
  }
  std::printf("  %-8s special values: %ld rows over %zu kernels\n", dtype_name(d), cases, kernels_of(d).size());
}

// ---- bitwise identity across thread counts -----------------------------------------------

void threads_identity(DType d) {
  const std::size_t is = itemsize(d);
  struct Shape { std::size_t rows, n; };
  const Shape shapes[] = {{1, (std::size_t{1} << 19) + 3}, {37, 4099}, {5, 70001}};
  Rng rng{0x7EAD5u + unsigned(d)};
  long compared = 0;
  for (const Shape& s : shapes) {
    std::vector<unsigned char> x(s.rows * s.n * is), y1(x.size()), yt(x.size());
    for (std::size_t i = 0; i < s.rows * s.n; ++i) encode(d, draw(rng, kWide), x.data() + i * is);
    for (const KernelEntry* k : kernels_of(d)) {
      run(*k, s.n, x.data(), y1.data(), 1, s.rows);
      for (int t : {2, 3, 4}) {
        std::memset(yt.data(), 0, yt.size());
        run(*k, s.n, x.data(), yt.data(), t, s.rows);
        ++compared;
        CHECK(std::memcmp(y1.data(), yt.data(), y1.size()) == 0, "%s %zux%zu: threads=%d differs from threads=1",
              k->name.c_str(), s.rows, s.n, t);
      }
    }
  }
  std::printf("  %-8s threads 1 vs 2, 3, 4: %ld comparisons, bitwise\n", dtype_name(d), compared);
}

// ---- the C API ---------------------------------------------------------------------------

template <class S>
using CFn = fastsoftmax_status (*)(const S*, S*, size_t, size_t, ptrdiff_t, ptrdiff_t, fastsoftmax_algorithm, int);

template <class S>
void capi_case(DType d, CFn<S> fn, bool log) {
  const std::size_t is = sizeof(S);
  Rng rng{0xCA91u + unsigned(d) * 2 + log};
  const std::size_t rows = 6, n = 1027, xs = n + 3, ys = n + 1;  // padded, misaligned rows
  std::vector<S> x(rows * xs + 1), y(rows * ys + 1), yk(n);
  for (std::size_t i = 0; i < x.size(); ++i) encode(d, draw(rng, kNormal), reinterpret_cast<unsigned char*>(&x[i]));
  for (int a = 0; a <= 4; ++a) {
    const Algorithm alg = a == FASTSOFTMAX_ALGORITHM_AUTO ? auto_algorithm(d, n) : Algorithm(a - 1);
    const KernelEntry* k = &find_kernel(active_tier(), d, log ? Op::log_softmax : Op::softmax, alg);
    for (int t : {1, 3}) {
      std::fill(y.begin(), y.end(), S{});
      const fastsoftmax_status st =
          fn(x.data() + 1, y.data() + 1, rows, n, ptrdiff_t(xs), ptrdiff_t(ys), fastsoftmax_algorithm(a), t);
      CHECK(st == FASTSOFTMAX_OK, "C API %s %s algorithm %d: status %d", dtype_name(d), log ? "log" : "", a, int(st));
      for (std::size_t r = 0; r < rows; ++r) {
        run(*k, n, reinterpret_cast<const unsigned char*>(x.data() + 1 + r * xs),
            reinterpret_cast<unsigned char*>(yk.data()), 1);
        CHECK(std::memcmp(yk.data(), y.data() + 1 + r * ys, n * is) == 0,
              "C API %s %s algorithm %d threads %d row %zu differs from registry kernel %s", dtype_name(d),
              log ? "log_softmax" : "softmax", a, t, r, k->name.c_str());
      }
    }
  }
  // Refused calls touch nothing.
  std::fill(y.begin(), y.end(), S{});
  CHECK(fn(nullptr, y.data(), rows, n, ptrdiff_t(xs), ptrdiff_t(ys), FASTSOFTMAX_ALGORITHM_AUTO, 0) ==
            FASTSOFTMAX_ERROR_INVALID_ARGUMENT, "C API: NULL x accepted");
  CHECK(fn(x.data(), y.data(), rows, n, ptrdiff_t(xs), ptrdiff_t(ys), fastsoftmax_algorithm(9), 0) ==
            FASTSOFTMAX_ERROR_INVALID_ARGUMENT, "C API: algorithm 9 accepted");
  bool untouched = true;
  for (const S& v : y) untouched = untouched && std::memcmp(&v, &y[0], sizeof(S)) == 0;
  CHECK(untouched, "C API: a refused call wrote to y");
}

void capi(const char* expect_isa) {
  const char* isa = fastsoftmax_isa();
  std::printf("  C API: fastsoftmax_isa() = %s, version %s, %d default threads\n", isa ? isa : "(null)",
              fastsoftmax_version(), fastsoftmax_get_num_threads());
  if (expect_isa) CHECK(isa && std::string(isa) == expect_isa, "fastsoftmax_isa() = %s, expected %s", isa, expect_isa);
  capi_case<float>(DType::f32, fastsoftmax_softmax_f32, false);
  capi_case<float>(DType::f32, fastsoftmax_log_softmax_f32, true);
  capi_case<double>(DType::f64, fastsoftmax_softmax_f64, false);
  capi_case<double>(DType::f64, fastsoftmax_log_softmax_f64, true);
  capi_case<std::uint16_t>(DType::f16, fastsoftmax_softmax_f16, false);
  capi_case<std::uint16_t>(DType::f16, fastsoftmax_log_softmax_f16, true);
  capi_case<std::uint16_t>(DType::bf16, fastsoftmax_softmax_bf16, false);
  capi_case<std::uint16_t>(DType::bf16, fastsoftmax_log_softmax_bf16, true);
}

// ---- the backward kernels, through the C API (the active tier) ---------------------------------
// dx against a long-double reference, with tests/test_backward.py's bound: 40 roundings of the
// compute type per term of the row sum, 2 in the write pass, exp's 4 u (float32) / 2 u (float64).

template <class T>
using BwdFn = fastsoftmax_status (*)(const T*, const T*, T*, size_t, size_t, int);
template <class T>
using FwdFn = fastsoftmax_status (*)(const T*, T*, size_t, size_t, ptrdiff_t, ptrdiff_t, fastsoftmax_algorithm, int);

template <class T>
void backward_case(FwdFn<T> fwd, BwdFn<T> bwd, bool log, const char* what) {
  using L = long double;
  const L u = sizeof(T) == 4 ? L(0x1p-24) : L(0x1p-53), floor = sizeof(T) == 4 ? L(0x1p-125) : L(0x1p-1021);
  Rng rng{0xB0Au + unsigned(sizeof(T)) + log};
  long compared = 0;
  for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{1027}, std::size_t{70001}}) {
    const std::size_t rows = 3;
    std::vector<T> x(rows * n), y(rows * n), g(rows * n), dx(rows * n), dx3(rows * n);
    for (auto& v : x) v = T(3 * draw(rng, kNormal));
    for (auto& v : g) v = T(draw(rng, kNormal));
    CHECK(fwd(x.data(), y.data(), rows, n, ptrdiff_t(n), ptrdiff_t(n), FASTSOFTMAX_ALGORITHM_AUTO, 1) == FASTSOFTMAX_OK,
          "%s forward failed", what);
    CHECK(bwd(y.data(), g.data(), dx.data(), rows, n, 1) == FASTSOFTMAX_OK, "%s n=%zu: status", what, n);
    CHECK(bwd(y.data(), g.data(), dx3.data(), rows, n, 3) == FASTSOFTMAX_OK, "%s n=%zu: status", what, n);
    CHECK(std::memcmp(dx.data(), dx3.data(), dx.size() * sizeof(T)) == 0, "%s n=%zu: threads 1 vs 3 differ", what, n);
    for (std::size_t r = 0; r < rows; ++r) {
      const T* yr = &y[r * n];
      const T* gr = &g[r * n];
      L s = 0, mag = 0;
      for (std::size_t i = 0; i < n; ++i) {
        s += log ? L(gr[i]) : L(gr[i]) * L(yr[i]);
        mag += log ? std::fabs(L(gr[i])) : std::fabs(L(gr[i]) * L(yr[i]));
      }
      const L sum_err = 40 * u * mag + u * std::fabs(s);
      for (std::size_t i = 0; i < n; ++i) {
        L ref, bound;
        if (log) {
          const L e = std::exp(L(yr[i]));
          ref = L(gr[i]) - e * s;
          bound = e * sum_err + (sizeof(T) == 4 ? 4 : 2) * u * e * std::fabs(s) + u * std::fabs(ref);
        } else {
          ref = L(yr[i]) * (L(gr[i]) - s);
          bound = std::fabs(L(yr[i])) * sum_err + L(2.01) * u * std::fabs(L(yr[i])) * std::fabs(L(gr[i]) - s);
        }
        const L err = std::fabs(L(dx[r * n + i]) - ref);
        CHECK(err <= bound * L(1.01) + floor, "%s n=%zu row %zu elem %zu: error %Lg above bound %Lg", what, n, r, i,
              err, bound);
        ++compared;
      }
    }
  }
  // A refused call (dx partly over g) writes nothing.
  std::vector<T> y1(8, T(0.125)), g1(9, T(1));
  CHECK(bwd(y1.data(), g1.data(), g1.data() + 1, 1, 8, 0) == FASTSOFTMAX_ERROR_INVALID_ARGUMENT,
        "%s: dx partly over g accepted", what);
  for (const T& v : g1) CHECK(v == T(1), "%s: a refused call wrote", what);
  std::printf("  %-24s %ld elements within the bound, threads 1 vs 3 bitwise\n", what, compared);
}

void backward() {
  backward_case<float>(fastsoftmax_softmax_f32, fastsoftmax_softmax_backward_f32, false, "softmax_backward f32");
  backward_case<float>(fastsoftmax_log_softmax_f32, fastsoftmax_log_softmax_backward_f32, true,
                       "log_softmax_backward f32");
  backward_case<double>(fastsoftmax_softmax_f64, fastsoftmax_softmax_backward_f64, false, "softmax_backward f64");
  backward_case<double>(fastsoftmax_log_softmax_f64, fastsoftmax_log_softmax_backward_f64, true,
                        "log_softmax_backward f64");
}

}  // namespace

// Usage: test_kernels [EXPECTED_ISA [--capi-only]]  (EXPECTED_ISA: the tier that must be active)
int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* expect = argc > 1 ? argv[1] : nullptr;
  const bool capi_only = argc > 2 && std::string(argv[2]) == "--capi-only";
  std::printf("compiled tiers:");
  for (const auto& i : compiled_isas()) std::printf(" %s%s", i.c_str(), isa_runnable(i, cpu_features()) ? "" : "(not runnable)");
  std::printf("; active: %s\n", active_isa().c_str());
  if (expect) CHECK(active_isa() == expect, "active tier %s, expected %s", active_isa().c_str(), expect);
  if (capi_only) {
    capi(expect);
    backward();
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
  }

  // Every length 0..1025: four cascade blocks of the neon tier's float32 unroll (4 lanes x 4
  // accumulators x 16 steps = 256 elements; float64's is 128), plus one -- every tail and the
  // cascade's first levels. (The x86 suite runs 0..2049 for AVX-512's 1024-element blocks.)
  std::vector<std::size_t> small;
  for (std::size_t n = 0; n <= 1025; ++n) small.push_back(n);
  const std::vector<std::size_t> large = {4097, 65537, std::size_t{1} << 20};
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  std::printf("accuracy (DESIGN.md section 4 bounds):\n");
  // The scalar tier (the same source on every machine, and tested by the x86 suite) on one
  // distribution: the emulator runs it at ~1 us an element.
  for (DType d : dtypes) {
    const auto t0 = std::chrono::steady_clock::now();
    // float64: the binary128 reference is software arithmetic (~10 us an exp under qemu), so
    // the long rows stop at 65537 and U[-1000, 1000] (mostly far-below-max values) is left out.
    for (Dist dist : {kNormal, kWide, kHigh})
      if (d != DType::f64 || dist != kWide) accuracy(d, dist, small, dist == kNormal);
    accuracy(d, kWide, d == DType::f64 ? std::vector<std::size_t>(large.begin(), large.end() - 1) : large, false);
    std::printf("  (%s: %.0f s)\n", dtype_name(d),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("special values:\n");
  for (DType d : dtypes) special_values(d);
  std::printf("thread counts:\n");
  for (DType d : dtypes) threads_identity(d);
  std::printf("C API:\n");
  capi(expect);
  std::printf("backward (C API):\n");
  backward();
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
  return g_failures ? 1 : 0;
}
