// The compiled compositor's fast path for 8 x 8 pixel blocks and 3 or 4 channels (composite_kernels.h's rows8_fast):
// plain C++, called from composite_kernels.cpp. See composite_rows.cpp.

#pragma once

#include <cstdint>

#include "composite_kernels.h"

namespace dynsplat {

// As composite_forward; also writes masks [I] (the pixels, bit ly * 8 + lx, that composited each list entry; 0 for
// entries the walk did not reach).
template <typename T>
void composite_forward_rows8(const Splats<T>& s, const Grid& grid, T* render, T* t_final, int32_t* last,
                             uint64_t* masks);

// As composite_backward, from the forward's masks.
template <typename T>
void composite_backward_rows8(const Splats<T>& s, const Grid& grid, const T* t_final, const int32_t* last,
                              const uint64_t* masks, const T* grad_render, const T* grad_alpha, bool absgrad,
                              T* rows);

}  // namespace dynsplat
