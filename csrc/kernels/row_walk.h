// The walk over the rows of an array (contiguous, gathered, tiled, columns) and the scratch
// memory it and RowRunner need. Included through rows.h, which the includer has given its
// namespace.
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
#include "kernels/row_runner.h"

namespace fastsoftmax {
namespace FASTSOFTMAX_ROWS_NS {

// Calls row(r, x_row, y_row) for rows [r0, r1) of the job, each pointing at n contiguous
// elements. Strided rows are gathered into the output row when that is contiguous, else
// into a buffer, computed in place there and scattered back. A job without y (y == null:
// statistics only) gets y_row = null, and strided rows gathered into the buffer. When the rows are strided but
// neighbouring rows are adjacent in memory (softmax over a non-last axis of a C-order
// array), up to kTile of them are gathered together, so that each cache line read or
// written carries up to 16 useful elements instead of one, and each page visited (one per
// element of the row: the rows' stride is usually >= 4 KiB) serves kTile rows; software
// prefetch runs ahead of both walks, which the hardware prefetcher does not follow across
// pages. float32 tiles move in 8x8 register transposes on the AVX tiers (Tr). Measured on
// (1, 3072, 1024) float32 with axis=1, one thread, on a Xeon: 22 ns/element element by
// element without tiles, 2.7 with scalar tile moves, 2.0-2.4 with the transposes (last
// axis: 0.45-0.8). Tile width, on an EPYC (Zen 5, 1 MiB L2), same shape, ns/element: 16
// columns 0.65, 32 0.62, 64 0.42-0.44, 128 0.29-0.35, 256 0.28-0.29; (4, 128, 8192):
// 64 0.55, 128 0.37-0.39 -- longer contiguous reads per row pay more than keeping the
// tile buffer (2 MiB at 128 x 3072 floats) inside L2. Three-pass rows (what auto runs on
// rows that fit the cache) skip the tiles: Tr's column kernel computes them in place of
// the transposes (the same shape: 0.22 ns/element, 0.37 with tiles).
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

// How for_rows walks the rows of a job (T: their storage type), and the scratch it needs.
template <class T, class Tr = NoBlockTranspose>
struct RowWalk {
  static constexpr std::size_t W = ColumnWidth<Tr>::value;
  std::size_t n, inner, tile, pitch;
  bool read_only, x_contig, y_contig, tiles, columns;
  std::size_t buffer;         // elements of the tile (or strided-row) buffer; 0: not used
  std::size_t column_strips;  // the most strips one column-kernel call takes; 0: none

  explicit RowWalk(const RowsJob& job) {
    const int nd = job.ndim;
    n = static_cast<std::size_t>(job.shape[nd - 1]);
    read_only = job.y == nullptr;
    x_contig = job.x_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.x, job.x_strides);
    y_contig = !read_only && job.y_strides[nd - 1] == std::int64_t(sizeof(T)) && aligned(nd, job.y, job.y_strides);
    inner = nd >= 2 ? static_cast<std::size_t>(job.shape[nd - 2]) : 1;
    tiles = !x_contig && (read_only || !y_contig) && nd >= 2 && job.x_strides[nd - 2] == std::int64_t(sizeof(T)) &&
            (read_only || job.y_strides[nd - 2] == std::int64_t(sizeof(T)));
    tile = tiles ? std::max<std::size_t>(1, std::min(kTile, kTileBytes / (n * sizeof(T)))) : 1;
    // Tile rows sit `pitch` elements apart, an odd number of cache lines: with a pitch of a
    // multiple of 4 KiB (n = 1024, 3072, ...) the gather's stores would all hit one L1 set.
    pitch = n;
    if (tile > 1) {
      const std::size_t lines = (n * sizeof(T) + 63) / 64;
      pitch = (lines | 1) * 64 / sizeof(T);
    }
    // Contiguous rows are used in place; a strided row read into a contiguous y row is
    // gathered there; others (and tiles) go through the buffer.
    const bool in_place = (x_contig && (y_contig || read_only)) || (tile == 1 && y_contig);
    buffer = in_place ? 0 : pitch * (tile - 1) + n;
    // Three-pass rows of a tile (auto's choice for rows that fit the cache) go to the column
    // kernel, strips of W columns; other algorithms, 16-bit storage, misaligned arrays,
    // rows longer than a chunk and the columns left over take the transposing tile walk.
    columns = W > 0 && tiles && !read_only && n <= kChunk &&
              (job.algorithm == Algorithm::three_pass_reload || job.algorithm == Algorithm::three_pass_recompute) &&
              aligned(nd, job.x, job.x_strides) && aligned(nd, job.y, job.y_strides);
    column_strips = 0;
    if constexpr (W > 0) {
      if (columns) column_strips = std::min({inner / W, Tr::kColumnStrips, column_fit(n)});
    }
  }

  // Strips of a column-kernel call whose copy stays within Tr::kColumnCopyBytes (at least 1).
  static std::size_t column_fit(std::size_t n) {
    if constexpr (W > 0) return std::max<std::size_t>(1, Tr::kColumnCopyBytes / (n * W * sizeof(T)));
    else return 0;
  }

  // Bytes of for_rows' scratch: the buffer, which the column kernel's copy shares.
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
};

inline std::size_t round_up64(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

// The scratch memory one thread needs for rows of a job (S: their storage type), in 64-byte
// multiples, one after another in one block: for_rows' tile (or strided-row) buffer, which
// the column kernel's copy shares (they are never in use at once); then the statistics of
// the chunks of a row longer than one chunk; then three-pass reload's middle row where y
// cannot hold it (16-bit storage); then, for the statistics of a long strided row read in
// place (strided_stats_layout), the buffer one chunk of it is gathered into. softmax.cpp
// allocates a block for every thread of a call before the call writes anything; nothing
// here allocates.
struct ScratchLayout {
  std::size_t walk = 0, chunks = 0, reload = 0, gather = 0;
  std::size_t bytes() const { return walk + chunks + reload + gather; }
};

// The buffer one chunk of a StridedRow of storage type S is gathered into.
template <class S>
constexpr std::size_t gather_bytes() {
  return (kChunk * sizeof(S) + 63) / 64 * 64;
}

template <class S, class Tr = NoBlockTranspose>
ScratchLayout scratch_layout(const RowsJob& job) {
  using T = compute_t<S>;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  ScratchLayout l;
  l.walk = round_up64(RowWalk<S, Tr>(job).scratch_bytes());
  if (chunks > 1) l.chunks = round_up64(chunks * (2 * sizeof(T) + 1));
  if (!std::is_same<S, T>::value && job.algorithm == Algorithm::three_pass_reload) l.reload = round_up64(n * sizeof(T));
  return l;
}

// The scratch of the thread that computes the statistics of n-long StridedRows (n > kChunk;
// softmax.cpp's strided_row_stats): the chunk statistics, and with `gather` the buffer for
// the chunks that this thread runs itself (rows spread over the threads, each row's chunks
// in turn). When a row's chunks are spread over the threads instead, each of those threads
// gets a gather_bytes<S>() block of its own (the chunk executor passes it).
template <class S>
ScratchLayout strided_stats_layout(std::size_t n, bool gather) {
  using T = compute_t<S>;
  ScratchLayout l;
  l.chunks = round_up64(((n + kChunk - 1) / kChunk) * (2 * sizeof(T) + 1));
  if (gather) l.gather = gather_bytes<S>();
  return l;
}

// RowRunner's part of a scratch block laid out by l.
template <class S>
RunnerScratch<compute_t<S>> runner_scratch(unsigned char* block, const ScratchLayout& l, std::size_t n) {
  using T = compute_t<S>;
  RunnerScratch<T> s;
  if (l.chunks) {
    s.stats = reinterpret_cast<T*>(block + l.walk);
    s.bad = reinterpret_cast<char*>(s.stats + 2 * ((n + kChunk - 1) / kChunk));
  }
  if (l.reload) s.reload = reinterpret_cast<T*>(block + l.walk + l.chunks);
  if (l.gather) s.gather = block + l.walk + l.chunks + l.reload;
  return s;
}

// scratch: the walk part of a block laid out by scratch_layout (64-byte aligned; may be
// null when that part is empty). Batch: nullptr, or batch(count, xs, ys) taking up to
// kRowBatch contiguous rows at once (in order).
template <class T, class RowFn, class Tr = NoBlockTranspose, class Batch = std::nullptr_t>
void for_rows(const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, RowFn&& row, Tr = {},
              Batch batch = nullptr) {
  const RowWalk<T, Tr> walk(job);
  const int nd = job.ndim;
  const std::size_t n = walk.n, inner = walk.inner, tile = walk.tile, pitch = walk.pitch;
  const std::int64_t x_step = job.x_strides[nd - 1], y_step = job.y_strides[nd - 1];
  const bool read_only = walk.read_only, x_contig = walk.x_contig, y_contig = walk.y_contig;
  T* const buffer = reinterpret_cast<T*>(scratch);
  constexpr std::size_t W = RowWalk<T, Tr>::W;
  const bool columns = walk.columns;
  constexpr bool kBatched = !std::is_same<Batch, std::nullptr_t>::value;
  const T* bx[kRowBatch];
  T* by[kRowBatch];
  int bk = 0;
  for (std::size_t r = r0; r < r1;) {
    std::int64_t xo = 0, yo = 0;  // unravel r over the outer axes (2-D: no division)
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
    const char* xr = job.x + xo;
    char* yr = read_only ? nullptr : job.y + yo;
    if (x_contig && (y_contig || read_only)) {
      if constexpr (kBatched) {
        if (!read_only) {
          bx[bk] = reinterpret_cast<const T*>(xr);
          by[bk] = reinterpret_cast<T*>(yr);
          if (++bk == kRowBatch) {
            batch(bk, bx, by);
            bk = 0;
          }
          ++r;
          continue;
        }
      }
      row(r, reinterpret_cast<const T*>(xr), reinterpret_cast<T*>(yr));
      ++r;
      continue;
    }
    // g rows r..r+g-1: adjacent in memory (tiles), or just row r.
    const std::size_t g = tile > 1 ? std::min({tile, inner - r % inner, r1 - r}) : 1;
    if constexpr (W > 0) {
      // All the adjacent rows at once (the tile buffer's bound does not apply: each group
      // copies only its own strips).
      const std::size_t gc = columns ? std::min(inner - r % inner, r1 - r) : 0;
      if (gc >= W) {
        const bool log = job.op == Op::log_softmax, reload = job.algorithm == Algorithm::three_pass_reload;
        const std::size_t fit = walk.column_fit(n);
        std::size_t done = 0;  // columns done; a group that needs the exact path stops here
        while (gc - done >= W) {
          const std::size_t strips = std::min({(gc - done) / W, Tr::kColumnStrips, fit});
          if (!Tr::three_pass_columns(n, xr + done * sizeof(T), x_step, yr + done * sizeof(T), y_step, strips, log, reload,
                                      scratch))
            break;
          done += strips * W;
        }
        if (done) {
          r += done;
          continue;
        }
      }
    }
    T* work = g == 1 && y_contig ? reinterpret_cast<T*>(yr) : buffer;
    const std::int64_t pitch_bytes = std::int64_t(pitch * sizeof(T));
    constexpr std::size_t kB = Tr::kBlock;
    // Whole kB x kB blocks of (axis position, row of the tile) in registers; the rest below.
    std::size_t i0 = 0;
    if (kB && g >= kB) {
      const std::size_t gb = g / kB * kB;
      for (; i0 + kB <= n; i0 += kB) {
        const char* src = xr + std::int64_t(i0) * x_step;
        for (std::size_t k = 0; k < gb; k += kB)
          Tr::transpose(src + k * sizeof(T), x_step, &work[k * pitch + i0], pitch_bytes);
        for (std::size_t k = gb; k < g; ++k)
          for (std::size_t i = i0; i < i0 + kB; ++i)
            std::memcpy(&work[k * pitch + i], xr + std::int64_t(i) * x_step + k * sizeof(T), sizeof(T));
      }
    }
    for (std::size_t i = i0; i < n; ++i) {
      const char* src = xr + std::int64_t(i) * x_step;
      if (g > 1 && i + kTilePrefetch < n)
        for (std::size_t b = 0; b < g * sizeof(T); b += 64) __builtin_prefetch(src + kTilePrefetch * x_step + b);
      for (std::size_t k = 0; k < g; ++k) std::memcpy(&work[k * pitch + i], src + k * sizeof(T), sizeof(T));
    }
    for (std::size_t k = 0; k < g; ++k) row(r + k, work + k * pitch, read_only ? nullptr : work + k * pitch);
    if (!read_only && (g > 1 || !y_contig)) {
      std::size_t j0 = 0;
      if (kB && g >= kB) {
        const std::size_t gb = g / kB * kB;
        for (; j0 + kB <= n; j0 += kB) {
          char* dst = yr + std::int64_t(j0) * y_step;
          for (std::size_t k = 0; k < gb; k += kB)
            Tr::transpose(&work[k * pitch + j0], pitch_bytes, dst + k * sizeof(T), y_step);
          for (std::size_t k = gb; k < g; ++k)
            for (std::size_t i = j0; i < j0 + kB; ++i)
              std::memcpy(yr + std::int64_t(i) * y_step + k * sizeof(T), &work[k * pitch + i], sizeof(T));
        }
      }
      for (std::size_t i = j0; i < n; ++i) {
        char* dst = yr + std::int64_t(i) * y_step;
        if (g > 1 && i + kTilePrefetch < n)
          for (std::size_t b = 0; b < g * sizeof(T); b += 64) __builtin_prefetch(dst + kTilePrefetch * y_step + b, 1);
        for (std::size_t k = 0; k < g; ++k) std::memcpy(dst + k * sizeof(T), &work[k * pitch + i], sizeof(T));
      }
    }
    r += g;
  }
  if constexpr (kBatched) {
    if (bk) batch(bk, bx, by);
  }
}

// Rows [r0, r1) of a job of short rows (n <= kChunk), one after another.
// scratch: a block laid out by scratch_layout<S, Tr>(job); null when that is empty.
template <class S, class P, class Tr = NoBlockTranspose>
void run_short_rows(const P& p, const RowsJob& job, std::size_t r0, std::size_t r1, unsigned char* scratch, Tr tr = {}) {
  FlushDenormals ftz;
  const std::size_t n = static_cast<std::size_t>(job.shape[job.ndim - 1]);
  const RowRunner<S, P, SerialChunks> runner(
      p, SerialChunks{}, job.op, job.algorithm, n, job.stream,
      scratch ? runner_scratch<S>(scratch, scratch_layout<S, Tr>(job), n) : RunnerScratch<compute_t<S>>{});
  for_rows<S>(job, r0, r1, scratch, [&](std::size_t, const S* x, S* y) { runner.row(x, y); }, tr,
             [&](int count, const S* const* xs, S* const* ys) { runner.rows(count, xs, ys); });
}

}  // namespace FASTSOFTMAX_ROWS_NS
}  // namespace fastsoftmax
