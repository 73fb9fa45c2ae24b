// A small persistent thread pool (std::thread; no OpenMP runtime, which would clash with
// the ones NumPy, PyTorch and scikit-learn load).
#pragma once
#include <cstddef>
#include <functional>

namespace fastsoftmax {

// Runs fn(i) for every i in [0, tasks) on up to `threads` threads, the calling thread
// included, and returns when all are done; the first exception thrown by a task is
// rethrown here. When another call is using the pool (say, a second Python thread), this
// call runs on its own thread alone instead of waiting or oversubscribing the cores.
void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn);

// Threads used when a call does not say: FASTSOFTMAX_NUM_THREADS if set, else the CPUs
// this process may run on.
int default_num_threads();
int get_num_threads();
void set_num_threads(int n);  // n <= 0: back to the default

}  // namespace fastsoftmax
