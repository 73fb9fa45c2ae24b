// The walk over the rows of an array: the layout decided once per job (contiguous,
// gathered, tiled, columns) and one walk per layout. Included through rows.h, which the
// includer has given its namespace.
#pragma once
#ifndef FASTSOFTMAX_ROWS_NS
#error "define FASTSOFTMAX_ROWS_NS (the namespace for this copy) before including rows.h"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/primitives.h"
#include "kernels/row_rules.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

// Tiles (RowLayout::tiled): up to kTile rows that are adjacent in memory (softmax over a
// non-last axis of a C-order array) are gathered together, so that each cache line read or
// written carries up to 16 useful elements instead of one, and each page visited (one per
// element of the row: the rows' stride is usually >= 4 KiB) serves all of them; software
// prefetch runs kTilePrefetch positions ahead of both walks, which the hardware prefetcher
// does not follow across pages. The tile buffer stays within kTileBytes (L2-sized): wider
// tiles gain more from longer contiguous reads than they lose to a buffer spilling out of
// L2 up to about this size. The measurements behind kTile and the transposes:
// docs/results.md, "Design measurements".
constexpr std::size_t kTile = 128;
constexpr std::size_t kTilePrefetch = 8;  // rows of the axis ahead
constexpr std::size_t kTileBytes = std::size_t{1} << 21;  // tile buffer bound

// Block transposes for the tile walk: Tr::kBlock > 0 when Tr::transpose(src, src_stride,
// dst, dst_stride) moves a kBlock x kBlock block of T (byte strides); else element by element.
struct NoBlockTranspose {
  static constexpr std::size_t kBlock = 0;
  static void transpose(const void*, std::int64_t, void*, std::int64_t) {}
};

// Tr::kColumnWidth > 0 when Tr::three_pass_columns computes three-pass rows that are the
// columns of a tile directly, kColumnWidth columns a strip, up to Tr::kColumnStrips strips
// a call (passes.h): no transposes, bitwise the rows' result.
template <class Tr, class = void>
struct ColumnWidth : std::integral_constant<std::size_t, 0> {};
template <class Tr>
struct ColumnWidth<Tr, decltype(void(Tr::kColumnWidth))> : std::integral_constant<std::size_t, Tr::kColumnWidth> {};

// Tr::kLeanMax > 0: the longest rows the tier's lean_reload takes (passes.h); a job of such
// three-pass reload rows keeps their middle rows in its scratch (scratch_layout).
template <class Tr, class = void>
struct LeanMax : std::integral_constant<std::size_t, 0> {};
template <class Tr>
struct LeanMax<Tr, decltype(void(Tr::kLeanMax))> : std::integral_constant<std::size_t, Tr::kLeanMax> {};

// How the rows of a job lie, decided once per job (RowWalk's constructor, row_layout):
//  contiguous  every row contiguous and aligned in x, and in y unless the job has none
//              (statistics): used in place, one-chunk rows kRowBatch at a time;
//  gathered    one row at a time, copied into its y row (when that is contiguous) or into
//              the buffer, computed there and scattered back;
//  tiled       rows adjacent in memory (a non-last axis): up to `tile` at once through the
//              buffer, Tr::kBlock x Tr::kBlock blocks in register transposes;
//  columns     tiled three-pass rows of the compute type: the column kernel computes them
//              where they lie, W columns a strip; the columns it leaves are tiled.
// Every layout gives the same bits (row_rules.h, layouts).
enum class RowLayout { contiguous, gathered, tiled, columns };

// The layout from the job's geometry: contiguous rows; rows that can share tiles (`tile` > 1);
// and whether the column kernel takes those (`columns`).
inline RowLayout row_layout(bool contiguous, std::size_t tile, bool columns) {
  if (contiguous) return RowLayout::contiguous;
  if (columns) return RowLayout::columns;
  return tile > 1 ? RowLayout::tiled : RowLayout::gathered;
}

// The walk over the rows of a job (T: their storage type): its layout and geometry, the
// scratch it needs, and one walk per layout (run).
template <class T, class Tr = NoBlockTranspose>
struct RowWalk {
  static constexpr std::size_t W = ColumnWidth<Tr>::value;
  static constexpr std::size_t kB = Tr::kBlock;
  std::size_t n, inner, tile, pitch;
  bool read_only, x_contig, y_contig;
  RowLayout layout;
  std::size_t buffer;         // elements of the tile (or gathered-row) buffer; 0: not used
  std::size_t column_strips;  // the most strips one column-kernel call takes; 0: none

  explicit RowWalk(const RowsJob& job) {
    const int nd = job.ndim;
    n = static_cast<std::size_t>(job.shape[nd - 1]);
    read_only = job.y == nullptr;
    x_contig = job.x_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.x, job.x_strides);
    y_contig = !read_only && job.y_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.y, job.y_strides);
    inner = nd >= 2 ? static_cast<std::size_t>(job.shape[nd - 2]) : 1;
    const bool contiguous = x_contig && (y_contig || read_only);
    const bool adjacent = !x_contig && (read_only || !y_contig) && nd >= 2 &&
                          job.x_strides[nd - 2] == std::int64_t(sizeof(T)) &&
                          (read_only || job.y_strides[nd - 2] == std::int64_t(sizeof(T)));
    tile = adjacent ? std::max<std::size_t>(1, std::min(kTile, kTileBytes / (n * sizeof(T)))) : 1;
    // Tile rows sit `pitch` elements apart, an odd number of cache lines: with a pitch of a
    // multiple of 4 KiB (n = 1024, 3072, ...) the gather's stores would all hit one L1 set.
    pitch = n;
    if (tile > 1) {
      const std::size_t lines = (n * sizeof(T) + 63) / 64;
      pitch = (lines | 1) * 64 / sizeof(T);
    }
    column_strips = 0;
    if constexpr (W > 0) {
      if (adjacent && columns_compute(job)) column_strips = std::min({inner / W, Tr::kColumnStrips, column_fit(n)});
    }
    layout = row_layout(contiguous, tile, column_strips > 0);
    // Contiguous rows are used in place, a gathered row in its y row when that is contiguous.
    const bool in_place = contiguous || (layout == RowLayout::gathered && y_contig);
    buffer = in_place ? 0 : pitch * (tile - 1) + n;
  }

  // Whether the column kernel computes the rows of tiles: three-pass (auto's choice for rows
  // that fit the cache), the compute type (W > 0), one chunk, aligned; other algorithms,
  // 16-bit storage, misaligned arrays and longer rows take the transposing tile walk.
  bool columns_compute(const RowsJob& job) const {
    return !read_only && n <= kChunk &&
           (job.algorithm == Algorithm::three_pass_reload || job.algorithm == Algorithm::three_pass_recompute) &&
           aligned(job.ndim, job.x, job.x_strides) && aligned(job.ndim, job.y, job.y_strides);
  }

  // Strips of a column-kernel call whose copy stays within Tr::kColumnCopyBytes (at least 1).
  static std::size_t column_fit(std::size_t n) {
    if constexpr (W > 0) return std::max<std::size_t>(1, Tr::kColumnCopyBytes / (n * W * sizeof(T)));
    else return 0;
  }

  // Bytes of the walk's scratch: the buffer, which the column kernel's copy shares.
  std::size_t scratch_bytes() const {
    std::size_t b = buffer * sizeof(T);
    if constexpr (W > 0) {
      if (column_strips) b = std::max(b, Tr::column_scratch_bytes(n, column_strips));
    }
    return b;
  }

  // Rows the kernels may read as T*: contiguous and aligned to T (NumPy allows misaligned
  // arrays; dereferencing them is undefined behaviour). Others are gathered with memcpy.
  static bool aligned(int nd, const char* base, const std::int64_t* strides) {
    bool ok = reinterpret_cast<std::uintptr_t>(base) % alignof(T) == 0;
    for (int d = 0; d < nd; ++d) ok = ok && strides[d] % std::int64_t(alignof(T)) == 0;
    return ok;
  }

  // Calls row(r, x_row, y_row) for rows [r0, r1), each x_row and y_row n contiguous
  // elements (y_row null in a job without y), or batch(count, xs, ys, next_count, next_xs)
  // for up to kRowBatch contiguous rows at once, in order, with the x rows of the batch after
  // it (Batch = nullptr_t: no batches). scratch: the walk's
  // part of the thread's block (scratch_layout; 64-byte aligned, null when empty).
  template <class RowFn, class Batch>
  void run(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, RowFn& row, Batch& batch) const {
    switch (layout) {
      case RowLayout::contiguous: return contiguous_rows(job, r0, r1, row, batch);
      case RowLayout::gathered: return gathered_rows(job, r0, r1, reinterpret_cast<T*>(scratch), row);
      case RowLayout::tiled: return tiled_rows(job, r0, r1, reinterpret_cast<T*>(scratch), row);
      case RowLayout::columns: return column_rows(job, r0, r1, scratch, row);
    }
  }

 private:
  struct Row {
    const char* x;
    char* y;  // null in a job without y
  };
  // Row r's start in x and y: r unravelled over the outer axes (2-D: no division).
  Row row_at(const RowsJob& job, std::size_t r) const {
    const int nd = job.ndim;
    std::int64_t xo = 0, yo = 0;
    if (nd == 2) {
      xo = std::int64_t(r) * job.x_strides[0];
      yo = std::int64_t(r) * job.y_strides[0];
    } else {
      for (std::size_t rest = r, d = std::size_t(nd - 1); d-- > 0;) {
        const std::int64_t i = static_cast<std::int64_t>(rest % std::size_t(job.shape[d]));
        rest /= std::size_t(job.shape[d]);
        xo += i * job.x_strides[d];
        yo += i * job.y_strides[d];
      }
    }
    return {job.x + xo, read_only ? nullptr : job.y + yo};
  }

  template <class RowFn, class Batch>
  void contiguous_rows(const RowsJob& job, std::size_t r0, std::size_t r1, RowFn& row, Batch& batch) const {
    if constexpr (!std::is_same<Batch, std::nullptr_t>::value) {
      if (!read_only) return batched_rows(job, r0, r1, batch);
    }
    for (std::size_t r = r0; r < r1; ++r) {
      const Row a = row_at(job, r);
      row(r, reinterpret_cast<const T*>(a.x), reinterpret_cast<T*>(a.y));
    }
  }
  // Each batch is handed the x rows of the next one too (next_count of them), which the
  // runner prefetches while it computes.
  template <class Batch>
  void batched_rows(const RowsJob& job, std::size_t r0, std::size_t r1, Batch& batch) const {
    const T* bx[2][kRowBatch];
    T* by[2][kRowBatch];
    const auto fill = [&](int slot, std::size_t r) {
      int k = 0;
      for (; k < kRowBatch && r + std::size_t(k) < r1; ++k) {
        const Row a = row_at(job, r + std::size_t(k));
        bx[slot][k] = reinterpret_cast<const T*>(a.x);
        by[slot][k] = reinterpret_cast<T*>(a.y);
      }
      return k;
    };
    int cur = 0;
    for (std::size_t r = r0, k = std::size_t(fill(cur, r)); k;) {
      const std::size_t next = std::size_t(fill(cur ^ 1, r + k));
      batch(int(k), bx[cur], by[cur], int(next), bx[cur ^ 1]);
      r += k;
      k = next;
      cur ^= 1;
    }
  }

  template <class RowFn>
  void gathered_rows(const RowsJob& job, std::size_t r0, std::size_t r1, T* buffer, RowFn& row) const {
    for (std::size_t r = r0; r < r1; ++r) group(job, r, 1, row_at(job, r), buffer, row);
  }

  // Groups of up to `tile` adjacent rows, never across an outer index.
  template <class RowFn>
  void tiled_rows(const RowsJob& job, std::size_t r0, std::size_t r1, T* buffer, RowFn& row) const {
    for (std::size_t r = r0; r < r1;) {
      const std::size_t g = std::min({tile, inner - r % inner, r1 - r});
      group(job, r, g, row_at(job, r), buffer, row);
      r += g;
    }
  }

  // All the adjacent rows from r at once through the column kernel (the tile buffer's bound
  // does not apply: each call copies only its own strips); a group the kernel declines
  // (it needs the exact path) and the columns short of a strip go through a tile.
  template <class RowFn>
  void column_rows(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, RowFn& row) const {
    for (std::size_t r = r0; r < r1;) {
      const Row a = row_at(job, r);
      const std::size_t adjacent = std::min(inner - r % inner, r1 - r);
      // Where the kernel streams y (job.prefetch_rows), its strips start on a line of y:
      // the columns before the first line boundary go through a tile.
      if (job.prefetch_rows && adjacent > W) {
        const std::size_t misaligned = reinterpret_cast<std::uintptr_t>(a.y) % (W * sizeof(T));
        const std::size_t head = misaligned % sizeof(T) ? 0 : (W * sizeof(T) - misaligned) / sizeof(T) % W;
        if (head) {
          group(job, r, head, a, reinterpret_cast<T*>(scratch), row);
          r += head;
          continue;
        }
      }
      const std::size_t done = adjacent >= W ? column_kernel(job, a, adjacent, scratch) : 0;
      if (done) {
        r += done;
        continue;
      }
      const std::size_t g = std::min(tile, adjacent);
      group(job, r, g, a, reinterpret_cast<T*>(scratch), row);
      r += g;
    }
  }
  // Columns of `count` adjacent rows from a through the column kernel, whole strips, in
  // calls of at most column_strips; returns how many it computed.
  std::size_t column_kernel(const RowsJob& job, Row a, std::size_t count, unsigned char* scratch) const {
    std::size_t done = 0;
    if constexpr (W > 0) {
      const int nd = job.ndim;
      const bool log = job.op == Op::log_softmax, reload = job.algorithm == Algorithm::three_pass_reload;
      const std::size_t fit = column_fit(n);
      while (count - done >= W) {
        const std::size_t strips = std::min({(count - done) / W, Tr::kColumnStrips, fit});
        if (!Tr::three_pass_columns(n, a.x + done * sizeof(T), job.x_strides[nd - 1], a.y + done * sizeof(T),
                                    job.y_strides[nd - 1], strips, log, reload, job.prefetch_rows, scratch))
          break;
        done += strips * W;
      }
    }
    return done;
  }

  // Rows r..r+g-1 from a (g adjacent rows, or g = 1): copied into work (pitch apart),
  // computed there, copied back.
  template <class RowFn>
  void group(const RowsJob& job, std::size_t r, std::size_t g, Row a, T* buffer, RowFn& row) const {
    const int nd = job.ndim;
    T* work = g == 1 && y_contig ? reinterpret_cast<T*>(a.y) : buffer;
    move_tile<true>(a.x, job.x_strides[nd - 1], work, g);
    for (std::size_t k = 0; k < g; ++k) row(r + k, work + k * pitch, read_only ? nullptr : work + k * pitch);
    if (!read_only && (g > 1 || !y_contig)) move_tile<false>(a.y, job.y_strides[nd - 1], work, g);
  }

  // Moves g rows between the array (element i of row k at base + i * step + k * sizeof(T))
  // and work (row k at work + k * pitch): in (kIn, a gather) or out (a scatter). Whole
  // kB x kB blocks of (axis position, row) in register transposes, the rest element by
  // element, prefetching kTilePrefetch axis positions ahead.
  template <bool kIn>
  void move_tile(std::conditional_t<kIn, const char*, char*> base, std::int64_t step, T* work, std::size_t g) const {
    const std::int64_t pitch_bytes = std::int64_t(pitch * sizeof(T));
    const auto copy = [&](std::size_t i, std::size_t k) {
      if constexpr (kIn) std::memcpy(&work[k * pitch + i], base + std::int64_t(i) * step + k * sizeof(T), sizeof(T));
      else std::memcpy(base + std::int64_t(i) * step + k * sizeof(T), &work[k * pitch + i], sizeof(T));
    };
    std::size_t i0 = 0;
    if (kB && g >= kB) {
      const std::size_t gb = g / kB * kB;
      for (; i0 + kB <= n; i0 += kB) {
        auto* at = base + std::int64_t(i0) * step;
        for (std::size_t k = 0; k < gb; k += kB) {
          if constexpr (kIn) Tr::transpose(at + k * sizeof(T), step, &work[k * pitch + i0], pitch_bytes);
          else Tr::transpose(&work[k * pitch + i0], pitch_bytes, at + k * sizeof(T), step);
        }
        for (std::size_t k = gb; k < g; ++k)
          for (std::size_t i = i0; i < i0 + kB; ++i) copy(i, k);
      }
    }
    for (std::size_t i = i0; i < n; ++i) {
      auto* at = base + std::int64_t(i) * step;
      if (g > 1 && i + kTilePrefetch < n)
        for (std::size_t b = 0; b < g * sizeof(T); b += 64) __builtin_prefetch(at + kTilePrefetch * step + b, kIn ? 0 : 1);
      for (std::size_t k = 0; k < g; ++k) copy(i, k);
    }
  }
};

// Calls row(r, x_row, y_row) for rows [r0, r1) of the job, or batch(count, xs, ys) for up
// to kRowBatch contiguous rows at once (Batch: nullptr, no batches): RowWalk::run over the
// job's layout. scratch: the walk part of a block laid out by scratch_layout (64-byte
// aligned; may be null when that part is empty).
template <class T, class RowFn, class Tr = NoBlockTranspose, class Batch = std::nullptr_t>
void for_rows(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, RowFn&& row, Tr = {},
              Batch batch = nullptr) {
  RowWalk<T, Tr>(job).run(job, r0, r1, scratch, row, batch);
}

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
