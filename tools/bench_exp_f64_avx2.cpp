// Throughput of two float64 exp schemes on the avx2 tier (docs/results.md, "Design
// measurements"): the degree-11 polynomial on [-ln2/2, ln2/2] that the tier uses, and the
// 16-entry table scheme of the avx512 tier with its lookups done by vgatherqpd (AVX2 has no
// vpermt2pd). Exp over an in-L1 array, summed so that nothing is optimised away; timing only
// (the correction table is zeros, so the table scheme's results are not its accurate ones).
// g++ -O2 -mavx2 -mfma -o /tmp/bench_exp tools/bench_exp_f64_avx2.cpp && /tmp/bench_exp
#include <immintrin.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>
static const double P11[11] = {0x1.ad9eef0f52283p-26, 0x1.28ad4c253ea54p-22, 0x1.71df0cc2b2140p-19, 0x1.a0199a21b63bep-16,
      0x1.a01a01384fdf9p-13, 0x1.6c16c184319f7p-10, 0x1.1111111124540p-7,  0x1.55555555507bap-5,
      0x1.555555555550dp-3,  0x1.000000000000ap-1,  0x1.0000000000000p+0};
static const double P6[5] = {0x1.6c14c85c995bfp-10, 0x1.11123aadb5fe9p-7, 0x1.55555558fa21dp-5, 0x1.555555548f8a4p-3, 0x1.fffffffffffb9p-2};
alignas(64) static double TAB[16], COR[16];
static inline __m256d pow2(__m256d d) {  // as vec_avx2.h: clamp, magic add, shift
  const __m256d b = _mm256_add_pd(_mm256_max_pd(d, _mm256_set1_pd(-1023.0)), _mm256_set1_pd(0x1.8p52 + 1023));
  return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(b), 52));
}
__attribute__((noinline)) __m256d sum_poly(const double* x, size_t n) {
  __m256d acc = _mm256_setzero_pd();
  for (size_t i = 0; i < n; i += 4) {
    __m256d v = _mm256_loadu_pd(x + i);
    const __m256d bias = _mm256_set1_pd(0x1.8p52);
    const __m256d nn = _mm256_sub_pd(_mm256_fmadd_pd(v, _mm256_set1_pd(0x1.71547652b82fep+0), bias), bias);
    __m256d t = _mm256_fmadd_pd(nn, _mm256_set1_pd(-0x1.62e42ff000000p-1), v);
    t = _mm256_fmadd_pd(nn, _mm256_set1_pd(0x1.718432a1b0e26p-35), t);
    __m256d p = _mm256_set1_pd(P11[0]);
    for (int k = 1; k < 11; ++k) p = _mm256_fmadd_pd(p, t, _mm256_set1_pd(P11[k]));
    p = _mm256_fmadd_pd(p, t, _mm256_set1_pd(1.0));
    acc = _mm256_fmadd_pd(p, pow2(nn), acc);
  }
  return acc;
}
__attribute__((noinline)) __m256d sum_table(const double* x, size_t n) {
  __m256d acc = _mm256_setzero_pd();
  for (size_t i = 0; i < n; i += 4) {
    __m256d v = _mm256_loadu_pd(x + i);
    const __m256d bias = _mm256_set1_pd(0x1.8p48);
    const __m256d k = _mm256_fmadd_pd(v, _mm256_set1_pd(0x1.71547652b82fep+0), bias);
    const __m256d nn = _mm256_sub_pd(k, bias);  // multiple of 1/16
    __m256d t = _mm256_fmadd_pd(nn, _mm256_set1_pd(-0x1.62e42ff000000p-1), v);
    t = _mm256_fmadd_pd(nn, _mm256_set1_pd(0x1.718432a1b0e26p-35), t);
    const __m256i j = _mm256_and_si256(_mm256_castpd_si256(k), _mm256_set1_epi64x(15));
    const __m256d s = _mm256_i64gather_pd(TAB, j, 8), c = _mm256_i64gather_pd(COR, j, 8);
    __m256d p = _mm256_set1_pd(P6[0]);
    for (int q = 1; q < 5; ++q) p = _mm256_fmadd_pd(p, t, _mm256_set1_pd(P6[q]));
    p = _mm256_fmadd_pd(p, t, _mm256_set1_pd(1.0));
    const __m256d m = _mm256_fmadd_pd(s, _mm256_fmadd_pd(t, p, c), s);
    acc = _mm256_fmadd_pd(m, pow2(_mm256_floor_pd(nn)), acc);
  }
  return acc;
}
int main() {
  for (int j = 0; j < 16; ++j) { TAB[j] = std::exp2(j / 16.0); COR[j] = 0; }
  std::vector<double> x(2048);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -20.0 * double(i) / x.size();
  for (int r = 0; r < 5; ++r) {
    double best[2] = {1e9, 1e9}; double sink = 0;
    for (int rep = 0; rep < 200; ++rep) {
      for (int w = 0; w < 2; ++w) {
        auto t0 = std::chrono::steady_clock::now();
        __m256d a = _mm256_setzero_pd();
        for (int it = 0; it < 50; ++it) a = _mm256_add_pd(a, w ? sum_table(x.data(), x.size()) : sum_poly(x.data(), x.size()));
        auto t1 = std::chrono::steady_clock::now();
        double buf[4]; _mm256_storeu_pd(buf, a); sink += buf[0];
        best[w] = std::min(best[w], std::chrono::duration<double, std::nano>(t1 - t0).count() / (50.0 * x.size()));
      }
    }
    std::printf("ns per exp: degree-11 %.3f, table (vgatherqpd x2, degree 6) %.3f  (%g)\n", best[0], best[1], sink > 0 ? 0.0 : 1.0);
  }
}
