// Compiled HexPlane feature lookup of dynsplat-ns (dynsplat_ns/motion/hexplane_cpu.py): per level, the product over
// the six planes (xy, xz, xt, yz, yt, zt) of bilinear samples, exactly F.grid_sample(mode="bilinear",
// padding_mode="border", align_corners=True) on each plane, and its backward (planes and coordinates).
//
// Planes are passed channel-last ([H, W, F], H along the plane's second axis, W along its first), so each corner's
// F features are contiguous. Threads split the points; plane gradients go to per-thread buffers summed in thread
// order afterwards (deterministic for a given thread count).

#include "hexplane_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dynsplat {
namespace {

constexpr int kAxes[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
constexpr int64_t kPointsPerThread = 2048;  // fewer points per thread: not worth waking a thread

// Source index and gradient factor of one coordinate (grid_sample's unnormalize + border clip).
template <typename T>
inline T source_index(T coord, int64_t size, T* grad_mult) {
  const T limit = static_cast<T>(size - 1);
  T index = ((coord + T(1)) / T(2)) * limit;
  *grad_mult = limit / T(2);
  if (index <= T(0)) {  // as PyTorch's clip_coordinates_set_grad: no gradient on or beyond the border
    index = T(0);
    *grad_mult = T(0);
  } else if (index >= limit) {
    index = limit;
    *grad_mult = T(0);
  }
  return index;
}

// Bilinear corners of one sample: flat offsets (-1: outside) and weights nw, ne, sw, se.
template <typename T>
struct Corners {
  int64_t offset[4];
  T weight[4];
  T ix, iy, x0, y0, mult_x, mult_y;
};

template <typename T>
inline Corners<T> corners(T cx, T cy, int64_t H, int64_t W, int64_t F) {
  Corners<T> c;
  c.ix = source_index(cx, W, &c.mult_x);
  c.iy = source_index(cy, H, &c.mult_y);
  c.x0 = std::floor(c.ix);
  c.y0 = std::floor(c.iy);
  const T x1 = c.x0 + T(1), y1 = c.y0 + T(1);
  c.weight[0] = (x1 - c.ix) * (y1 - c.iy);
  c.weight[1] = (c.ix - c.x0) * (y1 - c.iy);
  c.weight[2] = (x1 - c.ix) * (c.iy - c.y0);
  c.weight[3] = (c.ix - c.x0) * (c.iy - c.y0);
  const int64_t xs[4] = {static_cast<int64_t>(c.x0), static_cast<int64_t>(c.x0) + 1, static_cast<int64_t>(c.x0),
                         static_cast<int64_t>(c.x0) + 1};
  const int64_t ys[4] = {static_cast<int64_t>(c.y0), static_cast<int64_t>(c.y0), static_cast<int64_t>(c.y0) + 1,
                         static_cast<int64_t>(c.y0) + 1};
  for (int k = 0; k < 4; ++k) {
    const bool in = xs[k] >= 0 && xs[k] < W && ys[k] >= 0 && ys[k] < H;
    c.offset[k] = in ? (ys[k] * W + xs[k]) * F : -1;
  }
  return c;
}

template <typename T>
inline void sample(const T* plane, const Corners<T>& c, int64_t F, T* out) {
  for (int64_t f = 0; f < F; ++f) out[f] = T(0);
  for (int k = 0; k < 4; ++k) {
    if (c.offset[k] < 0) continue;
    const T* v = plane + c.offset[k];
    const T w = c.weight[k];
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) out[f] += w * v[f];
  }
}

template <typename F>
void parallel_ranges(int64_t n, int threads, const F& fn) {
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / kPointsPerThread)));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int t = 0, nt = 1;
#endif
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
    fn(t, lo, hi);
  }
}

}  // namespace

template <typename T>
void hexplane_forward(const HexPlanes<T>& hp, const T* coords, int64_t n, int threads, T* out) {
  const int64_t F = hp.features, L = hp.levels;
  parallel_ranges(n, threads, [&](int, int64_t lo, int64_t hi) {
    std::vector<T> tmp(F);
    for (int64_t i = lo; i < hi; ++i) {
      const T* c = coords + 4 * i;
      for (int64_t l = 0; l < L; ++l) {
        T* o = out + i * L * F + l * F;
        for (int64_t f = 0; f < F; ++f) o[f] = T(1);
        for (int p = 0; p < 6; ++p) {
          const int64_t q = l * 6 + p;
          const auto cr = corners(c[kAxes[p][0]], c[kAxes[p][1]], hp.height[q], hp.width[q], F);
          sample(hp.planes[q], cr, F, tmp.data());
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) o[f] *= tmp[f];
        }
      }
    }
  });
}

template <typename T>
void hexplane_backward(const HexPlanes<T>& hp, const T* coords, int64_t n, const T* grad_out, int threads,
                       T* const* grad_planes, T* grad_coords) {
  const int64_t F = hp.features, L = hp.levels, n_planes = 6 * L;
  std::vector<int64_t> plane_size(n_planes), plane_start(n_planes + 1, 0);
  for (int64_t q = 0; q < n_planes; ++q) {
    plane_size[q] = hp.height[q] * hp.width[q] * F;
    plane_start[q + 1] = plane_start[q] + plane_size[q];
  }
  const int max_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / kPointsPerThread)));
  std::vector<std::vector<T>> buffers(max_threads);
  parallel_ranges(n, threads, [&](int t, int64_t lo, int64_t hi) {
    std::vector<T>& acc = buffers[t];
    acc.assign(plane_start[n_planes], T(0));
    std::vector<T> s(6 * F), prefix(F), suffix(6 * F), g_s(F);
    Corners<T> cr[6];
    for (int64_t i = lo; i < hi; ++i) {
      const T* c = coords + 4 * i;
      T* gc = grad_coords ? grad_coords + 4 * i : nullptr;
      for (int64_t l = 0; l < L; ++l) {
        const T* g = grad_out + i * L * F + l * F;
        for (int p = 0; p < 6; ++p) {
          const int64_t q = l * 6 + p;
          cr[p] = corners(c[kAxes[p][0]], c[kAxes[p][1]], hp.height[q], hp.width[q], F);
          sample(hp.planes[q], cr[p], F, s.data() + p * F);
        }
        // d out / d s_p = product of the other five samples: prefix products times suffix products.
        for (int64_t f = 0; f < F; ++f) prefix[f] = T(1);
        for (int64_t f = 0; f < F; ++f) suffix[5 * F + f] = T(1);
        for (int p = 5; p > 0; --p)
          for (int64_t f = 0; f < F; ++f) suffix[(p - 1) * F + f] = suffix[p * F + f] * s[p * F + f];
        for (int p = 0; p < 6; ++p) {
          const int64_t q = l * 6 + p;
          for (int64_t f = 0; f < F; ++f) g_s[f] = g[f] * prefix[f] * suffix[p * F + f];
          for (int64_t f = 0; f < F; ++f) prefix[f] *= s[p * F + f];
          T* gp = acc.data() + plane_start[q];
          for (int k = 0; k < 4; ++k) {
            if (cr[p].offset[k] < 0) continue;
            T* dst = gp + cr[p].offset[k];
            const T w = cr[p].weight[k];
#pragma omp simd
            for (int64_t f = 0; f < F; ++f) dst[f] += w * g_s[f];
          }
          if (!gc) continue;
          // d sample / d ix and d iy (grid_sample's bilinear backward), zero where the border clip is active.
          const T* plane = hp.planes[q];
          const T x1 = cr[p].x0 + T(1), y1 = cr[p].y0 + T(1), ix = cr[p].ix, iy = cr[p].iy;
          const T dx[4] = {-(y1 - iy), (y1 - iy), -(iy - cr[p].y0), (iy - cr[p].y0)};
          const T dy[4] = {-(x1 - ix), -(ix - cr[p].x0), (x1 - ix), (ix - cr[p].x0)};
          T gix = 0, giy = 0;
          for (int k = 0; k < 4; ++k) {
            if (cr[p].offset[k] < 0) continue;
            const T* v = plane + cr[p].offset[k];
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t f = 0; f < F; ++f) dot += v[f] * g_s[f];
            gix += dx[k] * dot;
            giy += dy[k] * dot;
          }
          gc[kAxes[p][0]] += gix * cr[p].mult_x;
          gc[kAxes[p][1]] += giy * cr[p].mult_y;
        }
      }
    }
  });
  // Sum the per-thread plane gradients (thread order: deterministic for a given thread count).
  for (int64_t q = 0; q < n_planes; ++q) {
    T* dst = grad_planes[q];
    for (int64_t j = 0; j < plane_size[q]; ++j) {
      T sum = 0;
      for (auto& b : buffers)
        if (!b.empty()) sum += b[plane_start[q] + j];
      dst[j] = sum;
    }
  }
}

template void hexplane_forward<float>(const HexPlanes<float>&, const float*, int64_t, int, float*);
template void hexplane_forward<double>(const HexPlanes<double>&, const double*, int64_t, int, double*);
template void hexplane_backward<float>(const HexPlanes<float>&, const float*, int64_t, const float*, int,
                                       float* const*, float*);
template void hexplane_backward<double>(const HexPlanes<double>&, const double*, int64_t, const double*, int,
                                        double* const*, double*);

}  // namespace dynsplat
