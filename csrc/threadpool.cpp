#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define FSM_HAVE_GETPID 1
#endif

namespace fastsoftmax {
namespace {

long process_id() {
#if defined(FSM_HAVE_GETPID)
  return static_cast<long>(getpid());
#else
  return 0;
#endif
}

class ThreadPool {
 public:
  const long pid = process_id();

  void run(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock()) return serial(tasks, fn);
    int helpers = static_cast<int>(std::min<std::size_t>(tasks, std::size_t(threads))) - 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (static_cast<int>(workers_.size()) < helpers) {
        const int index = static_cast<int>(workers_.size());
        try {
          workers_.emplace_back([this, index] { worker(index); });
        } catch (const std::system_error&) {
          break;  // the OS refused a thread (limits, memory): carry on with those we have
        }
      }
      helpers = std::min(helpers, static_cast<int>(workers_.size()));
      fn_ = &fn;
      tasks_ = tasks;
      next_.store(0);
      participants_ = helpers;
      active_ = helpers;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work(fn);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  static void serial(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
    for (std::size_t i = 0; i < tasks; ++i) fn(i);
  }

 private:
  void work(const std::function<void(std::size_t)>& fn) {
    for (;;) {
      const std::size_t i = next_.fetch_add(1);
      if (i >= tasks_) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker(int index) {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return generation_ != seen && index < participants_; });
      seen = generation_;
      const std::function<void(std::size_t)>* fn = fn_;
      lk.unlock();
      work(*fn);
      lk.lock();
      if (--active_ == 0) done_.notify_all();
    }
  }

  std::mutex call_mu_;  // one parallel call at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* fn_ = nullptr;
  std::size_t tasks_ = 0;
  std::atomic<std::size_t> next_{0};
  int participants_ = 0, active_ = 0;
  std::uint64_t generation_ = 0;
  std::exception_ptr error_;
};

// The pool is never destroyed: joining workers from a static destructor at interpreter
// exit can deadlock, and after fork() the child has none of the parent's threads, so it
// gets a fresh pool (the parent's is abandoned, never touched again).
std::atomic<ThreadPool*> g_pool{nullptr};
std::mutex g_pool_mu;

ThreadPool& pool() {
  ThreadPool* p = g_pool.load(std::memory_order_acquire);
  if (p && p->pid == process_id()) return *p;
  std::lock_guard<std::mutex> lk(g_pool_mu);
  p = g_pool.load(std::memory_order_relaxed);
  if (!p || p->pid != process_id()) {
    p = new ThreadPool();
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

std::atomic<int> g_num_threads{0};  // 0: default

}  // namespace

void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn) {
  if (threads <= 1 || tasks <= 1) return ThreadPool::serial(tasks, fn);
  pool().run(tasks, threads, fn);
}

int default_num_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("FASTSOFTMAX_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) return v;
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

int get_num_threads() {
  const int n = g_num_threads.load();
  return n > 0 ? n : default_num_threads();
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0); }

}  // namespace fastsoftmax
