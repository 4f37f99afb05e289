// Compiled EWA projection of dynsplat-ns (plain C++, called from bindings.cpp); see projection_kernels.cpp.

#pragma once

#include <cstdint>

namespace dynsplat {

// Inputs of one projection call: N Gaussians seen by C pinhole cameras (row-major, contiguous).
template <typename T>
struct ProjectionInputs {
  const T* means;     // [N, 3]
  const T* quats;     // [N, 4] wxyz, any norm
  const T* scales;    // [N, 3]
  const T* viewmats;  // [C, 4, 4] world to camera
  const T* Ks;        // [C, 3, 3]
  int64_t n_gauss, n_cams, width, height;
  T eps2d, near_plane, far_plane;
};

// radii [C, N] (0 = culled), means2d [C, N, 2], depths [C, N], conics [C, N, 3], compensations [C, N] (nullptr:
// not computed). Exactly dynsplat_ns/render/projection.py's project_gaussians.
template <typename T>
void project_forward(const ProjectionInputs<T>& in, int threads, int32_t* radii, T* means2d, T* depths, T* conics,
                     T* compensations);

// Backward of project_forward: v_means [N, 3], v_quats [N, 4], v_scales [N, 3] (all overwritten) and, unless nullptr,
// v_viewmats [C, 4, 4] (overwritten), from the gradients of means2d, depths, conics and compensations (nullptr:
// zero). Deterministic whatever the thread count.
template <typename T>
void project_backward(const ProjectionInputs<T>& in, const T* v_means2d, const T* v_depths, const T* v_conics,
                      const T* v_compensations, int threads, T* v_means, T* v_quats, T* v_scales, T* v_viewmats);

}  // namespace dynsplat
