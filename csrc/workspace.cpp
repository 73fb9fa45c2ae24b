#include "workspace.h"

#include <new>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastsoftmax {

struct Workspace::Block {
  std::size_t bytes;
  unsigned char* data;  // 64-byte aligned
};

namespace {

constexpr std::align_val_t kAlign{64};

// Blocks too large for the cache are mapped afresh by every call; on Linux they are asked
// for transparent huge pages, so that a call faults in one page per 2 MiB instead of one per
// 4 KiB (a float32 copy of a 2^24-element 16-bit row is 64 MiB: 16384 faults otherwise).
constexpr std::size_t kHugePage = std::size_t{2} << 20;
constexpr std::align_val_t kHugeAlign{kHugePage};

bool huge(std::size_t bytes) { return bytes > Workspace::kKeepBytes; }

Workspace::Block* new_block(std::size_t bytes) {
  std::unique_ptr<Workspace::Block> b(new Workspace::Block{bytes, nullptr});
  if (huge(bytes)) {
    b->data = static_cast<unsigned char*>(::operator new(bytes, kHugeAlign));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(b->data, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  } else {
    b->data = static_cast<unsigned char*>(::operator new(bytes, kAlign));
  }
  return b.release();
}

void delete_block(Workspace::Block* b) {
  ::operator delete(b->data, huge(b->bytes) ? kHugeAlign : kAlign);
  delete b;
}

// The cache: up to kCached free blocks of at most Workspace::kKeepBytes (64 MiB in all).
// A slot holds a block or null; taking one is a compare-exchange to null, so a block is
// never handed out twice. Never destroyed (blocks still cached at exit are left to the OS).
constexpr int kCached = 16;
std::atomic<Workspace::Block*> g_cached[kCached];

void give_back(Workspace::Block* b) {
  if (b->bytes <= Workspace::kKeepBytes) {
    for (auto& slot : g_cached) {
      Workspace::Block* empty = nullptr;
      if (slot.compare_exchange_strong(empty, b, std::memory_order_acq_rel)) return;
    }
  }
  delete_block(b);
}

// A cached block of at least `bytes`, or a new one (std::bad_alloc if that fails).
Workspace::Block* take(std::size_t bytes) {
  if (bytes <= Workspace::kKeepBytes) {
    for (auto& slot : g_cached) {
      Workspace::Block* b = slot.load(std::memory_order_acquire);
      if (!b || !slot.compare_exchange_strong(b, nullptr, std::memory_order_acq_rel)) continue;
      if (b->bytes >= bytes) return b;
      give_back(b);  // too small for this call: keep it for others (or free it)
    }
  }
  return new_block(bytes);
}

}  // namespace

Workspace::Workspace(std::size_t count, std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  blocks_.reset(new Block*[count]());
  busy_.reset(new std::atomic<bool>[count]);
  try {
    for (; count_ < count; ++count_) {
      busy_[count_].store(false, std::memory_order_relaxed);
      blocks_[count_] = take(bytes);
    }
  } catch (...) {
    for (std::size_t i = 0; i < count_; ++i) give_back(blocks_[i]);
    throw;
  }
}

Workspace::~Workspace() {
  for (std::size_t i = 0; i < count_; ++i) give_back(blocks_[i]);
}

Workspace::Lease::Lease(Workspace& w) : w_(w), slot_(0), data_(nullptr) {
  if (w.count_ == 0) return;
  // A free block: there is one for every thread that can hold a lease at once; starting
  // from a rotating index spreads the threads over them.
  for (std::size_t i = w.next_.fetch_add(1, std::memory_order_relaxed);; ++i) {
    const std::size_t s = i % w.count_;
    if (!w.busy_[s].exchange(true, std::memory_order_acquire)) {
      slot_ = s;
      data_ = w.blocks_[s]->data;
      return;
    }
    if (s + 1 == w.count_) std::this_thread::yield();  // all taken: only if a caller broke the count
  }
}

Workspace::Lease::~Lease() {
  if (data_) w_.busy_[slot_].store(false, std::memory_order_release);
}

}  // namespace fastsoftmax
