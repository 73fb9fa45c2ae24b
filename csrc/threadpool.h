// A small persistent thread pool (std::thread; no OpenMP runtime, which would clash with
// the ones NumPy, PyTorch and scikit-learn load), and the thread budget of a call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace fastsoftmax {

// The largest thread count accepted anywhere (threads=, set_num_threads, the environment).
constexpr int kMaxThreads = 1024;

// Runs fn(i) for every i in [0, tasks) on up to `threads` threads, the calling thread
// included, and returns when all are done; the first exception thrown by a task is
// rethrown here. Tasks are claimed one at a time, so a worker that is slow to wake only
// takes fewer of them: the call never waits for a worker that has not started. When
// another call is using the pool (say, a second Python thread), this call runs on its own
// thread alone instead of waiting or oversubscribing the cores. Only the workers a call
// uses are woken; after a call they spin briefly (with a pause instruction), then park.
void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn);

// How many of `requested` threads pay for themselves on `work_ns` nanoseconds of work:
// each thread must get at least kGrainHandoffs hand-off costs of work (and
// kMinWorkPerThreadNs). The hand-off cost
// is measured once, at the first call that asks for more than one thread (see
// handoff_costs): the cost of waking a parked worker, or a spinning one if enough
// workers are spinning right now.
int useful_threads(int requested, double work_ns);
constexpr double kGrainHandoffs = 2.0;
// ... and at least this much work each, whatever the hand-off costs: below it the cache
// lines the threads share (a row's statistics, the boundaries of their output) cost more
// than the split saves.
constexpr double kMinWorkPerThreadNs = 10000.0;

struct HandoffCosts {
  double parked_ns = 0, spinning_ns = 0;
  bool measured = false, overridden = false;
};
HandoffCosts handoff_costs();
// Tests and measurements: fix the costs (negative values: measure again on the next call).
void set_handoff_costs(double parked_ns, double spinning_ns);

// The thread budget. A call's threads (> 0) win; else this thread's override (the Python
// context manager fastsoftmax.threads), else set_num_threads, else the default:
// FASTSOFTMAX_NUM_THREADS, else OMP_NUM_THREADS, else the smaller of the CPUs in the
// affinity mask and the cgroup CPU quota. Throws std::invalid_argument when
// FASTSOFTMAX_NUM_THREADS is malformed.
int default_num_threads();
int get_num_threads();
void set_num_threads(int n);             // 0: back to the default; n in [0, kMaxThreads]
int swap_thread_local_threads(int n);    // 0: none; returns the previous override
int resolve_threads(int threads);        // threads > 0 as is, 0: get_num_threads()

// How the default was found, for reports and for the import-time check.
struct ThreadConfig {
  int threads = 1;
  std::string source;   // "FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS", "affinity", "cgroup"
  std::string error;    // malformed FASTSOFTMAX_NUM_THREADS: the message
  std::string warning;  // malformed OMP_NUM_THREADS (ignored): the message
  int affinity_cpus = 0;
  int cgroup_cpus = 0;  // 0: no quota found
};
const ThreadConfig& thread_config();
ThreadConfig make_thread_config(const std::string& root);  // afresh, cgroup files under root
// Parses one variable's value: a decimal integer in [1, kMaxThreads] (surrounding blanks
// allowed; for OMP_NUM_THREADS the first item of a comma-separated list); else an error
// message naming the variable and the value.
int parse_thread_count(const char* name, const char* value, bool omp_list, std::string* error);
// The CPU quota of this process's cgroup (v2 cpu.max, v1 cpu.cfs_quota_us/cfs_period_us),
// rounded up, the smallest along the cgroup's path; 0 when there is none. root prefixes
// every path read ("" on a live system; a fake tree in tests).
int cgroup_cpu_quota(const std::string& root);

// Fork handling: the child of a fork gets a fresh pool (a pthread_atfork handler bumps
// this generation; comparing process ids fails in a new PID namespace).
std::uint64_t fork_generation();
void after_fork_in_child();
// The most threads one call runs on, the caller included: 4 x the machine's CPUs, at least
// 64 (a larger threads= is taken as this many).
int max_pool_threads();

struct PoolInfo {
  std::uint64_t pools_created = 0, wakes = 0;
  int workers = 0, spinning = 0;
};
PoolInfo pool_info();

}  // namespace fastsoftmax
