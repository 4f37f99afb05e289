// Compiled CPU compositor of dynsplat-ns: plain C++ (no torch headers, so it compiles in seconds), called from
// bindings.cpp. See composite_kernels.cpp for the algorithm.

#pragma once

#include <cstdint>

namespace dynsplat {

// Images, blocks and threads of one call.
struct Grid {
  int64_t n_cams, width, height, block, blocks_x, blocks_y;
  int threads;  // torch.get_num_threads()
  int64_t per_cam() const { return blocks_x * blocks_y; }
  int64_t n_blocks() const { return n_cams * blocks_x * blocks_y; }
};

// Per list entry gradient row: mean x, y, conic a, b, c, sum(dL/dalpha * alpha), |mean x|, |mean y|, then D features.
constexpr int64_t kRowExtra = 8;

// Values per list entry in Splats::packed: mean x, y, conic a, b, c, opacity, 2 unused (32-byte aligned records).
constexpr int64_t kPacked = 8;

// Screen-space Gaussians, flat over cameras (index cam * N + g), and the block lists (start [B + 1], entries [I]
// with, per entry, the Gaussian's packed values and the rows [rows & 255, rows >> 8) of the block its support box
// overlaps; lists_kernels.h).
template <typename T>
struct Splats {
  const T* opacities;  // [CN]
  const T* features;   // [CN, D]
  int64_t n_ch;        // D
  const T* backgrounds;  // [C, D] or nullptr
  const int64_t* start;
  const int64_t* entries;
  const T* packed;       // [I, kPacked]
  const int32_t* rows;   // [I]
  const int64_t* gen_of_slot;  // [I]: row of each entry in the backward's gradient rows (its place in Gaussian order)
};

// Whether the 8 x 8 block fast path (composite_rows.h) composites: block 8 and 3 or 4 channels. It also writes,
// per list entry, the mask of the block's pixels that composited it (bit ly * 8 + lx), which its backward reads.
inline bool rows8_fast(const Grid& g, int64_t n_ch) { return g.block == 8 && (n_ch == 3 || n_ch == 4); }

// render [C, H, W, D] (background included), t_final [C, H, W], last [C, H, W] (list entries up to and including
// the last composited Gaussian); masks [I] (written when rows8_fast, else unused; may then be nullptr).
template <typename T>
void composite_forward(const Splats<T>& s, const Grid& grid, T* render, T* t_final, int32_t* last, uint64_t* masks);

// rows [I, kRowExtra + D] (overwritten; entry k's row at s.gen_of_slot[k]): per list entry gradient sums; the
// |mean| columns are zero without absgrad.
template <typename T>
void composite_backward(const Splats<T>& s, const Grid& grid, const T* t_final, const int32_t* last,
                        const uint64_t* masks, const T* grad_render, const T* grad_alpha, bool absgrad, T* rows);

// Per Gaussian sums of its entries' rows (Gaussian vis[v]'s rows are gen_first[v] .. gen_first[v + 1]); v_abs may be
// nullptr.
template <typename T>
void reduce_rows(const T* rows, int64_t n_ch, const int64_t* vis, int64_t n_vis, const int64_t* gen_first,
                 const T* opacities, int threads, T* v_means, T* v_conics, T* v_opac, T* v_feat, T* v_abs);

}  // namespace dynsplat
