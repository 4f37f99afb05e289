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
};

// render [C, H, W, D] (background included), t_final [C, H, W], last [C, H, W] (list entries up to and including
// the last composited Gaussian).
template <typename T>
void composite_forward(const Splats<T>& s, const Grid& grid, T* render, T* t_final, int32_t* last);

// rows [I, kRowExtra + D] (overwritten): per list entry gradient sums.
template <typename T>
void composite_backward(const Splats<T>& s, const Grid& grid, const T* t_final, const int32_t* last,
                        const T* grad_render, const T* grad_alpha, T* rows);

// Per Gaussian sums of its entries' rows; v_abs may be nullptr.
template <typename T>
void reduce_rows(const T* rows, int64_t n_ch, const int64_t* vis, int64_t n_vis, const int64_t* gen_first,
                 const int64_t* slot_of_gen, const T* opacities, int threads, T* v_means, T* v_conics, T* v_opac,
                 T* v_feat, T* v_abs);

}  // namespace dynsplat
