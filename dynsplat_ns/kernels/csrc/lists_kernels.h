// Front-to-back block lists of the compiled compositor (plain C++, called from bindings.cpp); see lists_kernels.cpp.

#pragma once

#include <cstdint>
#include <vector>

#include "composite_kernels.h"

namespace dynsplat {

// vis: flat ids (cam * N + g) of the visible Gaussians, front to back (depth, ties by id); start [B + 1] and entries
// [I]: entries[start[b] .. start[b + 1]) is block b's list of flat ids, front to back; gen_first [V + 1] and
// gen_of_slot [I]: Gaussian vis[v]'s entries are numbered gen_first[v] .. gen_first[v + 1) in Gaussian order, entry
// (slot) k has number gen_of_slot[k] (its row in the backward's gradient rows); packed
// [I, kPacked]: each entry's mean, conic and opacity (read in list order by the compositor); rows [I]: the rows
// [rows & 255, rows >> 8) of its block that its support box overlaps.
template <typename T>
struct Lists {
  std::vector<int64_t> vis, start, entries, gen_first, gen_of_slot;
  std::vector<T> packed;
  std::vector<int32_t> rows;
};

// The lists of screen-space Gaussians means2d [CN, 2], conics [CN, 3], opacities [CN], depths [CN], radii [CN]:
// visible = radius > 0 and opacity >= 1/255, listed in the blocks their support box overlaps (the boxes of
// dynsplat_ns/render/blocks.py's support_boxes).
template <typename T>
Lists<T> block_lists(const T* means2d, const T* conics, const T* opacities, const T* depths, const int32_t* radii,
                  int64_t n_gauss, const Grid& grid);

}  // namespace dynsplat
