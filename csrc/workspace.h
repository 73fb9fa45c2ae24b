// Scratch memory of one call, allocated before the call writes anything.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>

namespace fastsoftmax {

// `count` blocks of `bytes` each (64-byte aligned), one for each thread that may run a
// task of the call at once. The constructor gets them all -- std::bad_alloc if it cannot,
// before the call has written anything, so that a failed call leaves its output untouched
// (docs/bad-input.md) -- and the tasks then only borrow them: no allocation once the
// first row is written. bytes == 0: nothing to get.
//
// Blocks of up to kKeepBytes come from and go back to a small process-wide cache, so that
// repeated calls reuse memory whose pages are already there instead of mapping and
// faulting in fresh ones each time (as per-thread buffers did before). The cache is lock
// free (atomic slots), so a fork() cannot leave it locked.
class Workspace {
 public:
  static constexpr std::size_t kKeepBytes = std::size_t{4} << 20;

  Workspace(std::size_t count, std::size_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  std::size_t bytes() const { return bytes_; }

  // A block for the running task, given back when the Lease ends; null when bytes == 0.
  // At most `count` leases may be held at once (one per thread of the call).
  class Lease {
   public:
    explicit Lease(Workspace& w);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    unsigned char* get() const { return data_; }

   private:
    Workspace& w_;
    std::size_t slot_;
    unsigned char* data_;
  };

  struct Block;

 private:
  std::size_t count_ = 0, bytes_;
  std::unique_ptr<Block*[]> blocks_;
  std::unique_ptr<std::atomic<bool>[]> busy_;
  std::atomic<std::size_t> next_{0};
};

// The number of blocks a call of `tasks` tasks on up to `threads` threads needs: one per
// thread that can run one of them at once (parallel_for runs no more than that).
inline std::size_t workspace_blocks(std::size_t tasks, int threads) {
  if (threads <= 1 || tasks <= 1) return 1;
  return tasks < std::size_t(threads) ? tasks : std::size_t(threads);
}

}  // namespace fastsoftmax
