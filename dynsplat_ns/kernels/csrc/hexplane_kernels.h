// Compiled HexPlane feature lookup (plain C++, called from bindings.cpp); see hexplane_kernels.cpp.

#pragma once

#include <cstdint>
#include <vector>

namespace dynsplat {

// The planes of every level, channel-last: planes[6 * level + p] is [height, width, features] for the plane pair
// p of (xy, xz, xt, yz, yt, zt) (width along the pair's first axis).
template <typename T>
struct HexPlanes {
  std::vector<const T*> planes;
  std::vector<int64_t> height, width;
  int64_t levels, features;
};

// out [N, levels * features]: per level, the product over the six planes of their bilinear samples at coords [N, 4]
// (x, y, z, t in [-1, 1]; grid_sample, align_corners=True, border padding).
template <typename T>
void hexplane_forward(const HexPlanes<T>& hp, const T* coords, int64_t n, int threads, T* out);

// grad_planes[q] (channel-last, overwritten) and, unless nullptr, grad_coords [N, 4] (zero-initialised).
template <typename T>
void hexplane_backward(const HexPlanes<T>& hp, const T* coords, int64_t n, const T* grad_out, int threads,
                       T* const* grad_planes, T* grad_coords);

}  // namespace dynsplat
