// An inference-server-shaped use of the C API: several worker threads each turn a batch
// of logits into probabilities, concurrently, and the main thread checks every row.
//
// Prints one line per worker and "embed example: OK <rows> rows" at the end; exits 1 on
// any error or wrong row.
#include <fastsoftmax/fastsoftmax.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kWorkers = 4, kRowsPerWorker = 64, kVocab = 32000;

// The row's softmax in double, straight from the definition; the bound is the library's
// documented float32 accuracy: 6e-7 relative + |x - max| * 2^-24 (the rounding of x - max).
bool row_ok(const float* logits, const float* probs, std::size_t n) {
  double mx = logits[0];
  for (std::size_t i = 1; i < n; ++i) mx = std::fmax(mx, logits[i]);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double ref = std::exp(double(logits[i]) - mx) / sum;
    const double bound = (6e-7 + (mx - logits[i]) * 0x1p-24) * ref;
    if (ref > 1e-37 && std::fabs(probs[i] - ref) > bound) return false;
    total += probs[i];
  }
  return std::fabs(total - 1.0) < 1e-5;
}

}  // namespace

int main() {
  std::printf("fastsoftmax %s, tier %s, %d threads by default\n", fastsoftmax_version(),
              fastsoftmax_isa() ? fastsoftmax_isa() : "(invalid FASTSOFTMAX_ISA)", fastsoftmax_get_num_threads());
  std::vector<std::vector<float>> logits(kWorkers), probs(kWorkers);
  std::vector<fastsoftmax_status> status(kWorkers, FASTSOFTMAX_OK);
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w + 1));
      std::normal_distribution<float> normal(0.0f, 4.0f);
      logits[w].resize(kRowsPerWorker * kVocab);
      probs[w].resize(kRowsPerWorker * kVocab);
      for (float& v : logits[w]) v = normal(rng);
      // Each worker asks for 2 threads; concurrent calls share the library's pool safely.
      status[w] = fastsoftmax_softmax_f32(logits[w].data(), probs[w].data(), kRowsPerWorker, kVocab, kVocab, kVocab,
                                          FASTSOFTMAX_ALGORITHM_AUTO, 2);
    });
  }
  for (auto& t : workers) t.join();

  std::size_t good = 0;
  for (std::size_t w = 0; w < kWorkers; ++w) {
    if (status[w] != FASTSOFTMAX_OK) {
      std::printf("worker %zu: %s\n", w, fastsoftmax_status_string(status[w]));
      return 1;
    }
    std::size_t ok = 0;
    for (std::size_t r = 0; r < kRowsPerWorker; ++r)
      ok += row_ok(&logits[w][r * kVocab], &probs[w][r * kVocab], kVocab);
    std::printf("worker %zu: %zu/%zu rows correct\n", w, ok, kRowsPerWorker);
    good += ok;
  }
  // A bad call reports an error code instead of crashing.
  const fastsoftmax_status bad = fastsoftmax_softmax_f32(nullptr, nullptr, 1, 8, 8, 8, FASTSOFTMAX_ALGORITHM_AUTO, 1);
  if (bad != FASTSOFTMAX_ERROR_INVALID_ARGUMENT) {
    std::printf("null pointers were not rejected\n");
    return 1;
  }
  if (good != kWorkers * kRowsPerWorker) return 1;
  std::printf("embed example: OK %zu rows\n", good);
  return 0;
}
