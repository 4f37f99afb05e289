// Compiled EWA projection of dynsplat-ns: dynsplat_ns/render/projection.py (gsplat 1.4.0's non-packed
// fully_fused_projection conventions) as one fused loop per Gaussian over the cameras, and its exact backward.
//
// Per (camera, Gaussian): p = R m + t; M = R(q / max(|q|, 1e-12)) diag(s), Mc = R M (Sigma_cam = Mc Mc^T);
// zs = z if near <= z <= far else 1; means2d = (fx x / zs + cx, fy y / zs + cy); the Jacobian rows at the centre
// clamped to 1.3x the field of view, rx = fx/zs Mc0 - fx tx/zs^2 Mc2, ry = fy/zs Mc1 - fy ty/zs^2 Mc2 with
// tx = zs clamp(x / zs); cov2d = (rx.rx, rx.ry, ry.ry) + eps2d on the diagonal; conic = inverse (det clamped to
// >= 1e-10); compensation sqrt(max(det(cov) / det(cov + eps2d), 0)); radius ceil(3 sqrt(largest eigenvalue)), 0 for
// Gaussians culled by depth, by det <= 0 or off screen. The backward is the chain rule of these formulas in the same
// order as torch's autograd through projection.py (the clamps pass gradients where torch's do).
//
// Threads: tasks of kChunk Gaussians (each loops over every camera, so a Gaussian's gradient is summed in camera
// order), viewmats gradients summed per task and then over tasks in task order: results never depend on the thread
// count.

#include "projection_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dynsplat {
namespace {

constexpr int64_t kChunk = 1024;               // Gaussians per task
constexpr int64_t kGaussiansPerThread = 8192;  // fewer per thread: one thread (waking threads costs more)

template <typename T>
struct Cam {
  T R[9], t[3], fx, fy, cx, cy, lim_xp, lim_xn, lim_yp, lim_yn;
};

template <typename T>
Cam<T> camera(const ProjectionInputs<T>& in, int64_t c) {
  Cam<T> k;
  const T* v = in.viewmats + 16 * c;
  const T* K = in.Ks + 9 * c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) k.R[3 * i + j] = v[4 * i + j];
    k.t[i] = v[4 * i + 3];
  }
  k.fx = K[0];
  k.fy = K[4];
  k.cx = K[2];
  k.cy = K[5];
  const T half_w = static_cast<T>(0.5 * static_cast<double>(in.width));
  const T half_h = static_cast<T>(0.5 * static_cast<double>(in.height));
  k.lim_xp = (static_cast<T>(in.width) - k.cx) / k.fx + T(0.3) * (half_w / k.fx);
  k.lim_xn = k.cx / k.fx + T(0.3) * (half_w / k.fx);
  k.lim_yp = (static_cast<T>(in.height) - k.cy) / k.fy + T(0.3) * (half_h / k.fy);
  k.lim_yn = k.cy / k.fy + T(0.3) * (half_h / k.fy);
  return k;
}

// The camera-independent part of a Gaussian: normalised quaternion, its rotation Rq and M = Rq diag(s).
template <typename T>
struct Local {
  T q[4], norm, qn[4], Rq[9], M[9];
};

template <typename T>
void local_frame(const ProjectionInputs<T>& in, int64_t n, Local<T>& L) {
  const T* q = in.quats + 4 * n;
  const T* s = in.scales + 3 * n;
  for (int i = 0; i < 4; ++i) L.q[i] = q[i];
  L.norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const T d = std::max(L.norm, static_cast<T>(1e-12));
  for (int i = 0; i < 4; ++i) L.qn[i] = q[i] / d;
  const T w = L.qn[0], x = L.qn[1], y = L.qn[2], z = L.qn[3];
  const T R[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z),     2 * (x * z + w * y),
                  2 * (x * y + w * z),     1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y),     2 * (y * z + w * x),     1 - 2 * (x * x + y * y)};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      L.Rq[3 * i + j] = R[3 * i + j];
      L.M[3 * i + j] = R[3 * i + j] * s[j];
    }
}

// Forward of one (camera, Gaussian) pair with the intermediates its backward needs.
template <typename T>
struct Pair {
  T p[3], Mc[9];
  bool ok, in_x, in_y;
  T zs, clx, cly, tx, ty, A, Bx, Cy, By, rx[3], ry[3], a0, b, c0, a, c, det_orig, det, ds;
};

template <typename T>
void pair_forward(const Cam<T>& k, const T* m, const Local<T>& L, const ProjectionInputs<T>& in, Pair<T>& P) {
  for (int i = 0; i < 3; ++i) {
    P.p[i] = k.R[3 * i] * m[0] + k.R[3 * i + 1] * m[1] + k.R[3 * i + 2] * m[2] + k.t[i];
    for (int j = 0; j < 3; ++j)
      P.Mc[3 * i + j] = k.R[3 * i] * L.M[j] + k.R[3 * i + 1] * L.M[3 + j] + k.R[3 * i + 2] * L.M[6 + j];
  }
  const T x = P.p[0], y = P.p[1], z = P.p[2];
  P.ok = z >= in.near_plane && z <= in.far_plane;
  P.zs = P.ok ? z : T(1);
  const T zs = P.zs, wx = x / zs, wy = y / zs;
  P.clx = std::min(std::max(wx, -k.lim_xn), k.lim_xp);
  P.cly = std::min(std::max(wy, -k.lim_yn), k.lim_yp);
  P.in_x = wx > -k.lim_xn && wx < k.lim_xp;
  P.in_y = wy > -k.lim_yn && wy < k.lim_yp;
  P.tx = zs * P.clx;
  P.ty = zs * P.cly;
  P.A = k.fx / zs;
  P.Cy = k.fy / zs;
  P.Bx = k.fx * P.tx / (zs * zs);
  P.By = k.fy * P.ty / (zs * zs);
  for (int j = 0; j < 3; ++j) {
    P.rx[j] = P.A * P.Mc[j] - P.Bx * P.Mc[6 + j];
    P.ry[j] = P.Cy * P.Mc[3 + j] - P.By * P.Mc[6 + j];
  }
  P.a0 = P.rx[0] * P.rx[0] + P.rx[1] * P.rx[1] + P.rx[2] * P.rx[2];
  P.b = P.rx[0] * P.ry[0] + P.rx[1] * P.ry[1] + P.rx[2] * P.ry[2];
  P.c0 = P.ry[0] * P.ry[0] + P.ry[1] * P.ry[1] + P.ry[2] * P.ry[2];
  P.det_orig = P.a0 * P.c0 - P.b * P.b;
  P.a = P.a0 + in.eps2d;
  P.c = P.c0 + in.eps2d;
  P.det = P.a * P.c - P.b * P.b;
  P.ds = std::max(P.det, static_cast<T>(1e-10));
}

// Backward of one pair: adds d(loss)/d(mean) to g_m, d/dM to g_M and, unless g_view is nullptr, d/d(R, t) to
// g_view [12] (R row-major, then t).
template <typename T>
void pair_backward(const Cam<T>& k, const T* m, const Local<T>& L, const Pair<T>& P, T gu, T gv, T gz,
                   const T* gcon, T gcomp, bool with_comp, T* g_m, T* g_M, T* g_view) {
  const T a = P.a, b = P.b, c = P.c, ds = P.ds;
  T g_a = gcon[2] / ds, g_b = -gcon[1] / ds, g_c = gcon[0] / ds;
  T g_ds = -(gcon[0] * c - gcon[1] * b + gcon[2] * a) / (ds * ds);
  T g_do = 0;
  if (with_comp) {
    const T r = P.det_orig / ds;
    const T comp = std::sqrt(std::max(r, T(0)));
    if (r >= T(0) && gcomp != T(0)) {
      const T g_r = gcomp / (T(2) * comp);
      g_do += g_r / ds;
      g_ds += -g_r * P.det_orig / (ds * ds);
    }
  }
  const T g_det = P.det >= static_cast<T>(1e-10) ? g_ds : T(0);
  g_a += g_det * c;
  g_c += g_det * a;
  g_b += -T(2) * b * g_det;
  T g_a0 = g_a + g_do * P.c0, g_c0 = g_c + g_do * P.a0;
  g_b += -T(2) * b * g_do;
  T g_rx[3], g_ry[3], g_Mc[9];
  T g_A = 0, g_Bx = 0, g_Cy = 0, g_By = 0;
  for (int j = 0; j < 3; ++j) {
    g_rx[j] = T(2) * g_a0 * P.rx[j] + g_b * P.ry[j];
    g_ry[j] = g_b * P.rx[j] + T(2) * g_c0 * P.ry[j];
    g_Mc[j] = P.A * g_rx[j];
    g_Mc[3 + j] = P.Cy * g_ry[j];
    g_Mc[6 + j] = -P.Bx * g_rx[j] - P.By * g_ry[j];
    g_A += g_rx[j] * P.Mc[j];
    g_Bx -= g_rx[j] * P.Mc[6 + j];
    g_Cy += g_ry[j] * P.Mc[3 + j];
    g_By -= g_ry[j] * P.Mc[6 + j];
  }
  const T x = P.p[0], y = P.p[1], zs = P.zs, zs2 = zs * zs;
  T g_zs = -k.fx / zs2 * g_A - k.fy / zs2 * g_Cy;
  const T g_tx = k.fx / zs2 * g_Bx, g_ty = k.fy / zs2 * g_By;
  g_zs += -T(2) * k.fx * P.tx / (zs2 * zs) * g_Bx - T(2) * k.fy * P.ty / (zs2 * zs) * g_By;
  g_zs += P.clx * g_tx + P.cly * g_ty;  // t = zs * clamp(x / zs)
  const T g_wx = P.in_x ? zs * g_tx : T(0), g_wy = P.in_y ? zs * g_ty : T(0);
  T g_x = g_wx / zs + k.fx / zs * gu, g_y = g_wy / zs + k.fy / zs * gv;
  g_zs += -x / zs2 * g_wx - y / zs2 * g_wy - k.fx * x / zs2 * gu - k.fy * y / zs2 * gv;
  const T g_p[3] = {g_x, g_y, gz + (P.ok ? g_zs : T(0))};
  for (int j = 0; j < 3; ++j) {
    g_m[j] += k.R[j] * g_p[0] + k.R[3 + j] * g_p[1] + k.R[6 + j] * g_p[2];
    for (int l = 0; l < 3; ++l)
      g_M[3 * j + l] += k.R[j] * g_Mc[l] + k.R[3 + j] * g_Mc[3 + l] + k.R[6 + j] * g_Mc[6 + l];
  }
  if (g_view) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j)
        g_view[3 * i + j] += g_p[i] * m[j] + g_Mc[3 * i] * L.M[3 * j] + g_Mc[3 * i + 1] * L.M[3 * j + 1] +
                             g_Mc[3 * i + 2] * L.M[3 * j + 2];
      g_view[9 + i] += g_p[i];
    }
  }
}

// d(loss)/d(quaternion, scales) from d(loss)/dM of one Gaussian (M = R(normalize(q)) diag(s)).
template <typename T>
void local_backward(const Local<T>& L, const T* s, const T* g_M, T* g_q, T* g_s) {
  T G[9];
  for (int j = 0; j < 3; ++j) g_s[j] = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      G[3 * i + j] = g_M[3 * i + j] * s[j];
      g_s[j] += g_M[3 * i + j] * L.Rq[3 * i + j];
    }
  const T w = L.qn[0], x = L.qn[1], y = L.qn[2], z = L.qn[3];
  const T g_qn[4] = {
      T(2) * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]),
      T(2) * (y * G[1] + z * G[2] + y * G[3] - T(2) * x * G[4] - w * G[5] + z * G[6] + w * G[7] - T(2) * x * G[8]),
      T(2) * (-T(2) * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] + z * G[7] - T(2) * y * G[8]),
      T(2) * (-T(2) * z * G[0] - w * G[1] + x * G[2] + w * G[3] - T(2) * z * G[4] + y * G[5] + x * G[6] + y * G[7]),
  };
  const T eps = static_cast<T>(1e-12);
  if (L.norm >= eps) {  // qn = q / |q|
    const T dot = L.qn[0] * g_qn[0] + L.qn[1] * g_qn[1] + L.qn[2] * g_qn[2] + L.qn[3] * g_qn[3];
    for (int i = 0; i < 4; ++i) g_q[i] = (g_qn[i] - L.qn[i] * dot) / L.norm;
  } else {  // qn = q / eps
    for (int i = 0; i < 4; ++i) g_q[i] = g_qn[i] / eps;
  }
}

template <typename F>
void for_chunks(int64_t n, int threads, const F& fn) {
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / kGaussiansPerThread)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t chunk = 0; chunk < n_chunks; ++chunk) fn(chunk, chunk * kChunk, std::min(n, (chunk + 1) * kChunk));
}

}  // namespace

template <typename T>
void project_forward(const ProjectionInputs<T>& in, int threads, int32_t* radii, T* means2d, T* depths, T* conics,
                     T* compensations) {
  const int64_t N = in.n_gauss, C = in.n_cams;
  std::vector<Cam<T>> cams;
  for (int64_t c = 0; c < C; ++c) cams.push_back(camera(in, c));
  const T width = static_cast<T>(in.width), height = static_cast<T>(in.height);
  for_chunks(N, threads, [&](int64_t, int64_t n0, int64_t n1) {
    Local<T> L;
    Pair<T> P;
    for (int64_t n = n0; n < n1; ++n) {
      local_frame(in, n, L);
      const T* m = in.means + 3 * n;
      for (int64_t c = 0; c < C; ++c) {
        const Cam<T>& k = cams[c];
        pair_forward(k, m, L, in, P);
        const int64_t o = c * N + n;
        const T mx = k.fx * P.p[0] / P.zs + k.cx, my = k.fy * P.p[1] / P.zs + k.cy;
        means2d[2 * o] = mx;
        means2d[2 * o + 1] = my;
        depths[o] = P.p[2];
        conics[3 * o] = P.c / P.ds;
        conics[3 * o + 1] = -P.b / P.ds;
        conics[3 * o + 2] = P.a / P.ds;
        if (compensations) compensations[o] = std::sqrt(std::max(P.det_orig / P.ds, T(0)));
        const T half_trace = T(0.5) * (P.a + P.c);
        const T lam_max =
            half_trace + std::sqrt(std::max(half_trace * half_trace - P.det, static_cast<T>(0.01)));
        const T radius = std::ceil(T(3) * std::sqrt(lam_max));
        const bool on_screen = (mx + radius > T(0)) & (mx - radius < width) & (my + radius > T(0)) &
                               (my - radius < height);
        const bool keep = P.ok && P.det > T(0) && on_screen;
        radii[o] = keep ? static_cast<int32_t>(radius) : 0;
      }
    }
  });
}

template <typename T>
void project_backward(const ProjectionInputs<T>& in, const T* v_means2d, const T* v_depths, const T* v_conics,
                      const T* v_compensations, int threads, T* v_means, T* v_quats, T* v_scales, T* v_viewmats) {
  const int64_t N = in.n_gauss, C = in.n_cams;
  std::vector<Cam<T>> cams;
  for (int64_t c = 0; c < C; ++c) cams.push_back(camera(in, c));
  const int64_t n_chunks = (N + kChunk - 1) / kChunk;
  std::vector<T> view_parts(v_viewmats ? n_chunks * C * 12 : 0, T(0));
  for_chunks(N, threads, [&](int64_t chunk, int64_t n0, int64_t n1) {
    Local<T> L;
    Pair<T> P;
    T* g_view = v_viewmats ? view_parts.data() + chunk * C * 12 : nullptr;
    for (int64_t n = n0; n < n1; ++n) {
      local_frame(in, n, L);
      const T* m = in.means + 3 * n;
      T g_m[3] = {0, 0, 0}, g_M[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t c = 0; c < C; ++c) {
        const int64_t o = c * N + n;
        pair_forward(cams[c], m, L, in, P);
        pair_backward(cams[c], m, L, P, v_means2d[2 * o], v_means2d[2 * o + 1], v_depths[o], v_conics + 3 * o,
                      v_compensations ? v_compensations[o] : T(0), v_compensations != nullptr, g_m, g_M,
                      g_view ? g_view + 12 * c : nullptr);
      }
      for (int j = 0; j < 3; ++j) v_means[3 * n + j] = g_m[j];
      local_backward(L, in.scales + 3 * n, g_M, v_quats + 4 * n, v_scales + 3 * n);
    }
  });
  if (v_viewmats) {
    std::fill(v_viewmats, v_viewmats + 16 * C, T(0));
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
      for (int64_t c = 0; c < C; ++c) {
        const T* g = view_parts.data() + (chunk * C + c) * 12;
        for (int i = 0; i < 3; ++i) {
          for (int j = 0; j < 3; ++j) v_viewmats[16 * c + 4 * i + j] += g[3 * i + j];
          v_viewmats[16 * c + 4 * i + 3] += g[9 + i];
        }
      }
    }
  }
}

#define DYNSPLAT_INSTANTIATE(T)                                                                                 \
  template void project_forward<T>(const ProjectionInputs<T>&, int, int32_t*, T*, T*, T*, T*);                  \
  template void project_backward<T>(const ProjectionInputs<T>&, const T*, const T*, const T*, const T*, int, T*, \
                                    T*, T*, T*);
DYNSPLAT_INSTANTIATE(float)
DYNSPLAT_INSTANTIATE(double)
#undef DYNSPLAT_INSTANTIATE

}  // namespace dynsplat
