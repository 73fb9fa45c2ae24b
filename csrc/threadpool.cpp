#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FSM_HAVE_PTHREAD_ATFORK 1
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define FSM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FSM_PAUSE() __asm__ __volatile__("yield")
#else
#define FSM_PAUSE() std::this_thread::yield()
#endif

namespace fastsoftmax {
namespace {

using Clock = std::chrono::steady_clock;

// How long a worker spins for the next job before it parks, and how long a caller spins
// for its helpers before it blocks. Bridges the gap between back-to-back calls (and
// between the two phases of a long row) without holding a core for long.
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until pred() holds or kSpin has passed; returns pred()'s last value. Yields the
// CPU every few microseconds: where the kernel packs threads onto few CPUs (some VMs do),
// the thread this one waits for may be queued on this very CPU.
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = Clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      FSM_PAUSE();
    }
    if (Clock::now() >= deadline) return pred();
    std::this_thread::yield();
  }
}

// One worker's mailbox: the job generation it is asked to join, and its parking place.
struct alignas(64) Slot {
  std::atomic<std::uint64_t> go{0};
  std::atomic<bool> parked{false};
  std::atomic<bool> spinning{false};
  std::mutex mu;
  std::condition_variable cv;
};

class ThreadPool {
 public:
  explicit ThreadPool(std::uint64_t fork_gen) : fork_gen_(fork_gen) {}
  const std::uint64_t fork_gen_;

  void run(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock()) return serial(tasks, fn);
    const int helpers = start_workers(static_cast<int>(std::min<std::size_t>(tasks, std::size_t(threads))) - 1);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0);
    error_ = nullptr;
    dispatch(helpers);
    work();
    finish();
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  static void serial(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
    for (std::size_t i = 0; i < tasks; ++i) fn(i);
  }

  // The round trip of an empty job to one worker, parked and then spinning; called with
  // no other call in the pool (under call_mu_).
  bool measure(double* parked_ns, double* spinning_ns) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock() || start_workers(1) < 1) return false;
    Slot& s = *slots_[0];
    double parked[3], spinning[3];
    for (int i = 0; i < 3; ++i) {
      // Wait (up to 50 ms) for the worker to park; kSpin is 100 us.
      const auto deadline = Clock::now() + std::chrono::milliseconds(50);
      while (!s.parked.load() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(50));
      parked[i] = round_trip();
      spinning[i] = round_trip();
    }
    std::sort(parked, parked + 3);
    std::sort(spinning, spinning + 3);
    *parked_ns = parked[1];
    *spinning_ns = spinning[1];
    return true;
  }

  std::uint64_t wakes() const { return wakes_.load(); }
  int workers() {
    std::lock_guard<std::mutex> lk(slots_mu_);
    return static_cast<int>(slots_.size());
  }
  int spinning(int upto) {
    std::lock_guard<std::mutex> lk(slots_mu_);
    int n = 0;
    for (int i = 0; i < std::min<int>(upto, static_cast<int>(slots_.size())); ++i) n += slots_[i]->spinning.load();
    return n;
  }

 private:
  // Ensures `helpers` workers exist (as many as the OS allows); returns how many there are.
  int start_workers(int helpers) {
    helpers = std::min(helpers, max_pool_threads() - 1);
    std::lock_guard<std::mutex> lk(slots_mu_);
    while (static_cast<int>(slots_.size()) < helpers) {
      try {
        slots_.push_back(std::make_unique<Slot>());
      } catch (const std::bad_alloc&) {
        break;  // no memory for a slot: carry on with the workers we have
      }
      Slot* s = slots_.back().get();
      try {
        std::thread([this, s] { worker(s); }).detach();
      } catch (const std::system_error&) {
        slots_.pop_back();  // the OS refused a thread (limits, memory): carry on with those we have
        break;
      } catch (const std::bad_alloc&) {
        slots_.pop_back();
        break;
      }
    }
    return std::min(helpers, static_cast<int>(slots_.size()));
  }

  // Opens a job and asks the first `helpers` workers to join it; wakes only those parked.
  std::uint64_t dispatch(int helpers) {
    const std::uint64_t g = ++generation_;
    job_.store(g);
    for (int i = 0; i < helpers; ++i) {
      Slot& s = *slots_[i];
      s.go.store(g);
      if (s.parked.load()) {
        std::lock_guard<std::mutex> lk(s.mu);
        s.cv.notify_one();
        wakes_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return g;
  }

  // Closes the job (late workers will not join it) and waits for those inside it.
  void finish() {
    job_.store(0);
    if (spin_until([this] { return active_.load() == 0; })) return;
    std::unique_lock<std::mutex> lk(done_mu_);
    caller_waiting_.store(true);
    done_cv_.wait(lk, [this] { return active_.load() == 0; });
    caller_waiting_.store(false);
  }

  double round_trip() {
    const std::uint64_t joined = joins_.load();
    tasks_ = 0;
    next_.store(0);
    const auto t0 = Clock::now();
    dispatch(1);
    // Waits as a caller's own tasks would: yielding now and then, so that a worker queued on
    // this CPU (where the kernel packs threads onto few CPUs) is measured, not starved.
    const auto deadline = t0 + std::chrono::milliseconds(20);
    for (int i = 0; joins_.load() == joined && Clock::now() < deadline; ++i) {
      FSM_PAUSE();
      if (i % 64 == 63) std::this_thread::yield();
    }
    const auto t1 = Clock::now();
    finish();
    return std::chrono::duration<double, std::nano>(t1 - t0).count();
  }

  // Claims and runs tasks of the open job until none are left.
  void work() {
    for (;;) {
      const std::size_t i = next_.fetch_add(1);
      if (i >= tasks_) return;
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  // Waits for a generation other than `seen` in s.go: spins, then parks.
  static std::uint64_t next_job(Slot& s, std::uint64_t seen) {
    std::uint64_t g = seen;
    s.spinning.store(true);
    spin_until([&] { return (g = s.go.load()) != seen; });
    s.spinning.store(false);
    if (g != seen) return g;
    std::unique_lock<std::mutex> lk(s.mu);
    s.parked.store(true);
    while ((g = s.go.load()) == seen) s.cv.wait(lk);
    s.parked.store(false);
    return g;
  }

  void worker(Slot* s) {
    std::uint64_t seen = 0;
    for (;;) {
      seen = next_job(*s, seen);
      // Join only if the job is still open; the caller waits for active_ == 0 after closing,
      // so a worker counted in active_ may touch the job's fields until it leaves.
      active_.fetch_add(1);
      if (job_.load() == seen) {
        joins_.fetch_add(1);
        work();
      }
      if (active_.fetch_sub(1) == 1 && caller_waiting_.load()) {
        std::lock_guard<std::mutex> lk(done_mu_);
        done_cv_.notify_all();
      }
    }
  }

  std::mutex call_mu_;   // one parallel call at a time
  std::mutex slots_mu_;  // slots_ grows under it
  std::vector<std::unique_ptr<Slot>> slots_;
  std::uint64_t generation_ = 0;
  std::atomic<std::uint64_t> job_{0};  // the open job's generation, 0: none
  std::atomic<int> active_{0};         // workers inside (or entering) a job
  std::atomic<std::uint64_t> joins_{0};
  std::atomic<std::uint64_t> wakes_{0};  // parked workers notified, over the pool's life
  std::atomic<bool> caller_waiting_{false};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  const std::function<void(std::size_t)>* fn_ = nullptr;
  std::size_t tasks_ = 0;
  std::atomic<std::size_t> next_{0};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// The pool is never destroyed: joining workers from a static destructor at interpreter
// exit can deadlock, and after fork() the child has none of the parent's threads, so it
// gets a fresh pool (the parent's is abandoned, never touched again).
std::atomic<std::uint64_t> g_fork_generation{0};
std::atomic<ThreadPool*> g_pool{nullptr};
std::atomic<std::uint64_t> g_pools_created{0};

#if defined(FSM_HAVE_PTHREAD_ATFORK)
[[maybe_unused]] const int g_atfork_registered = pthread_atfork(nullptr, nullptr, [] { after_fork_in_child(); });
#endif

ThreadPool& pool() {
  const std::uint64_t fg = g_fork_generation.load(std::memory_order_acquire);
  ThreadPool* p = g_pool.load(std::memory_order_acquire);
  while (!p || p->fork_gen_ != fg) {
    auto* fresh = new ThreadPool(fg);
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
      g_pools_created.fetch_add(1);
      return *fresh;
    }
    delete fresh;  // another thread installed one first; p holds it now
  }
  return *p;
}

// Hand-off costs: measured once (negative: not yet).
std::atomic<double> g_parked_ns{-1}, g_spinning_ns{-1};
std::atomic<bool> g_costs_overridden{false};
std::mutex g_measure_mu;

// Measures the hand-off costs unless known; a call that finds the pool or the measurement
// busy leaves them unknown (the next call tries again).
void measure_handoff() {
  std::unique_lock<std::mutex> lk(g_measure_mu, std::try_to_lock);
  if (!lk.owns_lock() || g_costs_overridden.load() || g_parked_ns.load() >= 0) return;
  double parked = 0, spinning = 0;
  if (pool().measure(&parked, &spinning)) {
    // Bounds keep one unlucky measurement (a preempted vCPU) from deciding for the
    // process's life: below 1 us is no hand-off, above 200 us a stall.
    g_parked_ns.store(std::clamp(parked, 1e3, 2e5));
    g_spinning_ns.store(std::clamp(spinning, 2e2, 2e5));
  }
}

// The thread budget.
std::atomic<int> g_num_threads{0};  // 0: default
thread_local int t_threads = 0;     // 0: none

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// ceil(quota / period) CPUs, at least 1; 0 for no quota or a malformed pair.
int quota_cpus(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return 0;
  const long long cpus = (quota + period - 1) / period;
  return static_cast<int>(std::clamp<long long>(cpus, 1, INT_MAX));
}

bool parse_ll(const std::string& s, long long* v) {
  const std::string t = trim(s);
  if (t.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *v = std::strtoll(t.c_str(), &end, 10);
  return errno == 0 && end && *end == '\0';
}

// The quota in directory dir: v2 "cpu.max" ("max 100000" or "50000 100000"), or v1's pair.
int quota_in(const std::string& dir) {
  const std::string max = read_file(dir + "/cpu.max");
  if (!max.empty()) {
    std::istringstream in(max);
    std::string q, p;
    in >> q >> p;
    long long quota = 0, period = 100000;
    if (q == "max" || !parse_ll(q, &quota)) return 0;
    if (!p.empty() && !parse_ll(p, &period)) return 0;
    return quota_cpus(quota, period);
  }
  long long quota = 0, period = 0;
  if (!parse_ll(read_file(dir + "/cpu.cfs_quota_us"), &quota)) return 0;
  if (!parse_ll(read_file(dir + "/cpu.cfs_period_us"), &period)) return 0;
  return quota_cpus(quota, period);  // quota -1: none
}

// The smallest quota from mount/path up to mount itself (a parent's quota binds its
// children); in a container the path may not exist under the mount, then only the mount's.
int smallest_quota_along(const std::string& mount, std::string path) {
  int best = 0;
  for (;;) {
    const int q = quota_in(mount + path);
    if (q > 0 && (best == 0 || q < best)) best = q;
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == std::string::npos || slash == 0 ? std::string() : path.substr(0, slash);
  }
  return best;
}

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

ThreadConfig make_thread_config(const std::string& root) {
  ThreadConfig c;
  c.affinity_cpus = affinity_cpus();
#if defined(__linux__)
  c.cgroup_cpus = cgroup_cpu_quota(root);
#endif
  c.threads = c.cgroup_cpus > 0 ? std::min(c.affinity_cpus, c.cgroup_cpus) : c.affinity_cpus;
  c.source = c.cgroup_cpus > 0 && c.cgroup_cpus < c.affinity_cpus ? "cgroup" : "affinity";
  if (const char* omp = std::getenv("OMP_NUM_THREADS")) {
    const int v = parse_thread_count("OMP_NUM_THREADS", omp, true, &c.warning);
    if (v > 0) {
      c.threads = v;
      c.source = "OMP_NUM_THREADS";
    } else {
      c.warning += " (ignored)";
    }
  }
  if (const char* env = std::getenv("FASTSOFTMAX_NUM_THREADS")) {
    const int v = parse_thread_count("FASTSOFTMAX_NUM_THREADS", env, false, &c.error);
    if (v > 0) {
      c.threads = v;
      c.source = "FASTSOFTMAX_NUM_THREADS";
    }
  }
  return c;
}

int parse_thread_count(const char* name, const char* value, bool omp_list, std::string* error) {
  std::string v = value ? value : "";
  if (omp_list) v = v.substr(0, v.find(','));
  v = trim(v);
  bool digits = !v.empty() && v.size() <= 12;
  for (char ch : v) digits = digits && ch >= '0' && ch <= '9';
  const long long n = digits ? std::atoll(v.c_str()) : 0;
  if (digits && n >= 1 && n <= kMaxThreads) return static_cast<int>(n);
  std::string msg = std::string(name) + "='" + (value ? value : "") + "' is not a thread count: expected an integer from 1 to " +
                    std::to_string(kMaxThreads);
  if (omp_list) msg += " (or a comma-separated list whose first item is one)";
  if (error) *error = msg;
  return 0;
}

int cgroup_cpu_quota(const std::string& root) {
  const std::string self = read_file(root + "/proc/self/cgroup");
  int best = 0;
  std::istringstream lines(self);
  std::string line;
  const auto take = [&best](int q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  while (std::getline(lines, line)) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = trim(line.substr(b + 1));
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      take(smallest_quota_along(root + "/sys/fs/cgroup", path));
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    bool cpu = false;
    while (std::getline(names, name, ',')) cpu = cpu || name == "cpu";
    if (!cpu) continue;
    for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu"})
      take(smallest_quota_along(root + mount, path));
  }
  return best;
}

const ThreadConfig& thread_config() {
  static const ThreadConfig c = make_thread_config("");
  return c;
}

int default_num_threads() {
  const ThreadConfig& c = thread_config();
  if (!c.error.empty()) throw std::invalid_argument(c.error);
  return c.threads;
}

int get_num_threads() {
  if (t_threads > 0) return t_threads;
  const int n = g_num_threads.load();
  return n > 0 ? n : default_num_threads();
}

namespace {
// A thread count in [0, kMaxThreads], else std::invalid_argument naming it and what 0 means.
void check_thread_count(int n, const char* what, const char* zero) {
  if (n < 0 || n > kMaxThreads)
    throw std::invalid_argument(std::string(what) + " must be from 1 to " + std::to_string(kMaxThreads) + " (0: " +
                                zero + "), got " + std::to_string(n));
}
}  // namespace

void set_num_threads(int n) {
  check_thread_count(n, "the thread count", "the default");
  g_num_threads.store(n);
}

int swap_thread_local_threads(int n) {
  check_thread_count(n, "the thread count", "none");
  const int old = t_threads;
  t_threads = n;
  return old;
}

int resolve_threads(int threads) {
  check_thread_count(threads, "threads", "the default");
  return threads > 0 ? threads : get_num_threads();
}

void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn) {
  if (threads <= 1 || tasks <= 1) return ThreadPool::serial(tasks, fn);
  pool().run(tasks, threads, fn);
}

int useful_threads(int requested, double work_ns) {
  if (requested <= 1 || work_ns < 2 * kMinWorkPerThreadNs) return 1;  // small calls: nothing to ask the pool
  if (g_parked_ns.load() < 0) measure_handoff();
  const double parked = g_parked_ns.load(), spinning = g_spinning_ns.load();
  if (parked < 0) return 1;  // not measured (the pool was busy): stay on this thread
  int t = requested;
  for (;;) {
    const bool warm = pool().spinning(t - 1) >= t - 1;
    const double grain = std::max(kGrainHandoffs * (warm ? spinning : parked), kMinWorkPerThreadNs);
    const double fits = work_ns / grain;
    const int next = static_cast<int>(std::clamp(std::floor(fits), 1.0, double(requested)));
    if (next >= t) return t;
    t = next;
  }
}

HandoffCosts handoff_costs() {
  HandoffCosts h;
  h.parked_ns = g_parked_ns.load();
  h.spinning_ns = g_spinning_ns.load();
  h.measured = h.parked_ns >= 0;
  h.overridden = g_costs_overridden.load();
  return h;
}

void set_handoff_costs(double parked_ns, double spinning_ns) {
  const bool fixed = parked_ns >= 0 && spinning_ns >= 0;
  g_parked_ns.store(fixed ? parked_ns : -1);
  g_spinning_ns.store(fixed ? spinning_ns : -1);
  g_costs_overridden.store(fixed);
  if (!fixed) measure_handoff();
}

int max_pool_threads() {
  static const int n = std::clamp(4 * static_cast<int>(std::thread::hardware_concurrency()), 64, kMaxThreads);
  return n;
}

std::uint64_t fork_generation() { return g_fork_generation.load(); }

void after_fork_in_child() { g_fork_generation.fetch_add(1); }

PoolInfo pool_info() {
  PoolInfo i;
  i.pools_created = g_pools_created.load();
  ThreadPool* p = g_pool.load();
  if (p && p->fork_gen_ == g_fork_generation.load()) {
    i.workers = p->workers();
    i.spinning = p->spinning(i.workers);
    i.wakes = p->wakes();
  }
  return i;
}

}  // namespace fastsoftmax
