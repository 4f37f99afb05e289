// Compiled CPU compositor of dynsplat-ns: the per-block front-to-back walk of dynsplat_ns/render/composite.py as
// fused loops (forward and its exact backward), multi-threaded over pixel blocks (OpenMP, torch's thread count).
//
// Rules (gsplat 1.4.0, dynsplat_ns/render/rules.py): sigma = d^T conic d / 2 with d = mean2d - pixel centre (+0.5),
// alpha = min(0.999, o exp(-sigma)); pairs with sigma < 0 or alpha < 1/255 are skipped; a pixel stops before the first
// Gaussian whose inclusion would take its transmittance T to <= 1e-4. Each b x b pixel block (b divides 16) lists the
// Gaussians whose support box overlaps it, front to back (bindings.cpp).
//
// The backward walks each pixel back to front from its last composited Gaussian, recovering T by division
// (T_i = T_{i+1} / (1 - a_i); a_i <= 0.999) and carrying S = T_final (bg . g - g_alpha) + sum_{j > i} w_j q_j
// (q = features . dL/drender), so dL/da_i = T_i q_i - S / (1 - a_i). Gradients are summed per list entry (each entry
// belongs to one block: no races, results independent of the thread count), then per Gaussian (reduce_rows).
//
// Each entry is read from its packed record (lists_kernels.h) and walks only the block rows its support box overlaps;
// for 3 or 4 channels the colour accumulation / gradient sums are fused into the per-pixel loops.
// The loops over a block's pixels are innermost and branch-free, so the compiler vectorises them (float: a
// polynomial exp; double: std::exp). The block side is a template parameter (fixed trip counts).

#include "composite_kernels.h"

#include "composite_common.h"
#include "composite_rows.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

namespace dynsplat {
namespace {

using detail::exp_nonpos;
using detail::kAlphaMax;
using detail::kAlphaMin;
using detail::kEntriesPerThread;
using detail::kGaussiansPerThread;
using detail::kTMin;
using detail::parallel_tasks;
using detail::threads_for;
constexpr int kStopCheck = 4;  // list entries between checks whether every pixel of a block has stopped

// min(a, b) in a form GCC vectorises (the fmin builtins; inputs are finite).
inline float min_(float a, float b) { return __builtin_fminf(a, b); }
inline double min_(double a, double b) { return __builtin_fmin(a, b); }
inline float abs_(float a) { return __builtin_fabsf(a); }
inline double abs_(double a) { return __builtin_fabs(a); }

// Pixel centres of a block and the flat pixel index of each (-1 outside the image).
template <typename T, int B>
int block_pixels(const Grid& g, int64_t bid, T* cx, T* cy, int64_t* pix) {
  const int64_t cam = bid / g.per_cam(), rem = bid % g.per_cam();
  const int64_t x0 = (rem % g.blocks_x) * B, y0 = (rem / g.blocks_x) * B;
  int inside = 0;
  for (int ly = 0; ly < B; ++ly) {
    for (int lx = 0; lx < B; ++lx) {
      const int p = ly * B + lx;
      const int64_t x = x0 + lx, y = y0 + ly;
      cx[p] = static_cast<T>(x) + T(0.5);
      cy[p] = static_cast<T>(y) + T(0.5);
      const bool in = x < g.width && y < g.height;
      pix[p] = in ? (cam * g.height + y) * g.width + x : -1;
      inside += in;
    }
  }
  return inside;
}

// One list entry against the pixels [p0, p1) of a block (the rows its support box overlaps; it fails the rules
// elsewhere), front to back: composites it where it passes the rules, updates T, the live flags (0 once a pixel has
// stopped) and last, writes the weights w; returns their sum (0: composited nowhere). A separate function with
// restrict pointers, so that GCC vectorises the loop.
template <typename T>
inline T forward_pixels(const T* __restrict cx, const T* __restrict cy, T* __restrict live, T* __restrict T_,
                        T* __restrict w, int32_t* __restrict lastp, T mx, T my, T ca, T cb, T cc, T op,
                        int32_t next, int p0, int p1) {
  const T a_min = static_cast<T>(kAlphaMin), a_max = static_cast<T>(kAlphaMax), t_min = static_cast<T>(kTMin);
#pragma omp simd
  for (int p = p0; p < p1; ++p) {
    const T dx = mx - cx[p], dy = my - cy[p];
    const T sigma = (ca * dx * dx) * T(0.5) + (cc * dy * dy) * T(0.5) + (cb * dx) * dy;
    const T al = min_(op * exp_nonpos(-sigma), a_max);
    const bool ok = (sigma >= T(0)) & (al >= a_min) & (live[p] > T(0));
    const T tn = T_[p] * (T(1) - al);
    const bool inc = ok & (tn > t_min);
    w[p] = inc ? al * T_[p] : T(0);
    live[p] = (ok & !inc) ? T(0) : live[p];
    T_[p] = inc ? tn : T_[p];
    lastp[p] = inc ? next : lastp[p];
  }
  T weight = 0;  // a separate loop: with this reduction inside the loop above, GCC no longer vectorises it
#pragma omp simd reduction(+ : weight)
  for (int p = p0; p < p1; ++p) weight += w[p];
  return weight;
}

// Fused forward of one list entry for DC = 3 or 4 channels: forward_pixels plus the colour accumulation, one loop.
template <typename T, int DC>
inline void forward_fused(const T* __restrict cx, const T* __restrict cy, T* __restrict live, T* __restrict T_,
                          int32_t* __restrict lastp, T* __restrict a0, T* __restrict a1, T* __restrict a2,
                          T* __restrict a3, const T* f, T mx, T my, T ca, T cb, T cc, T op, int32_t next, int p0,
                          int p1) {
  const T a_min = static_cast<T>(kAlphaMin), a_max = static_cast<T>(kAlphaMax), t_min = static_cast<T>(kTMin);
  const T f0 = f[0], f1 = f[1], f2 = f[2], f3 = DC > 3 ? f[DC - 1] : T(0);
#pragma omp simd
  for (int p = p0; p < p1; ++p) {
    const T dx = mx - cx[p], dy = my - cy[p];
    const T sigma = (ca * dx * dx) * T(0.5) + (cc * dy * dy) * T(0.5) + (cb * dx) * dy;
    const T al = min_(op * exp_nonpos(-sigma), a_max);
    const bool ok = (sigma >= T(0)) & (al >= a_min) & (live[p] > T(0));
    const T tn = T_[p] * (T(1) - al);
    const bool inc = ok & (tn > t_min);
    const T w = inc ? al * T_[p] : T(0);
    live[p] = (ok & !inc) ? T(0) : live[p];
    T_[p] = inc ? tn : T_[p];
    lastp[p] = inc ? next : lastp[p];
    a0[p] += w * f0;
    a1[p] += w * f1;
    a2[p] += w * f2;
    if constexpr (DC > 3) a3[p] += w * f3;
  }
}

// Fused backward of one list entry for DC = 3 or 4 channels, after entry_alphas: q, backward_pixels and the
// feature gradient sums in one loop.
template <typename T, int DC>
inline void backward_fused(const T* __restrict cx, const T* __restrict cy, const T* __restrict alpha,
                           const T* __restrict okv, const T* __restrict g0, const T* __restrict g1,
                           const T* __restrict g2, const T* __restrict g3, const T* f, T* __restrict T_,
                           T* __restrict S, T mx, T my, T ca, T cb, T cc, T* __restrict out, int p0, int p1) {
  const T a_max = static_cast<T>(kAlphaMax);
  const T f0 = f[0], f1 = f[1], f2 = f[2], f3 = DC > 3 ? f[DC - 1] : T(0);
  T s_mx = 0, s_my = 0, s_ca = 0, s_cb = 0, s_cc = 0, s_va = 0, s_ax = 0, s_ay = 0;
  T s_f0 = 0, s_f1 = 0, s_f2 = 0, s_f3 = 0;
#pragma omp simd reduction(+ : s_mx, s_my, s_ca, s_cb, s_cc, s_va, s_ax, s_ay, s_f0, s_f1, s_f2, s_f3)
  for (int p = p0; p < p1; ++p) {
    const T dx = mx - cx[p], dy = my - cy[p];
    const T al = alpha[p];
    const bool ok = okv[p] > T(0);
    T q = f0 * g0[p] + f1 * g1[p] + f2 * g2[p];
    if constexpr (DC > 3) q += f3 * g3[p];
    const T inv = T(1) / (T(1) - al);
    const T ti = ok ? T_[p] * inv : T_[p];
    const T wi = ok ? al * ti : T(0);
    const T v = ok ? ti * q - S[p] * inv : T(0);  // dL/dalpha
    S[p] += wi * q;
    T_[p] = ti;
    const T va = (ok & (al < a_max)) ? v * al : T(0);  // -dL/dsigma
    const T gx = -va * (ca * dx + cb * dy), gy = -va * (cb * dx + cc * dy);
    s_mx += gx;
    s_my += gy;
    s_ca += -va * (dx * dx) * T(0.5);
    s_cb += -va * (dx * dy);
    s_cc += -va * (dy * dy) * T(0.5);
    s_va += va;
    s_ax += abs_(gx);
    s_ay += abs_(gy);
    s_f0 += wi * g0[p];
    s_f1 += wi * g1[p];
    s_f2 += wi * g2[p];
    if constexpr (DC > 3) s_f3 += wi * g3[p];
  }
  const T sums[kRowExtra + 4] = {s_mx, s_my, s_ca, s_cb, s_cc, s_va, s_ax, s_ay, s_f0, s_f1, s_f2, s_f3};
  for (int c = 0; c < kRowExtra + DC; ++c) out[c] = sums[c];
}

template <typename T, int B, int DC>
void forward_impl(const Splats<T>& s, const Grid& g, T* render, T* t_final, int32_t* last) {
  constexpr int P = B * B;
  const int64_t D = s.n_ch;
  auto make = [&] { return std::vector<T>(D * P); };
  const int threads = threads_for(g.threads, s.start[g.n_blocks()], kEntriesPerThread);
  parallel_tasks(g.n_blocks(), threads, make, [&](std::vector<T>& acc, int64_t bid) {
    alignas(64) T cx[P], cy[P], live[P], T_[P], w[P];
    alignas(64) int32_t lastp[P];
    int64_t pix[P];
    std::fill(acc.begin(), acc.end(), T(0));
    const int inside = block_pixels<T, B>(g, bid, cx, cy, pix);
    for (int p = 0; p < P; ++p) {
      T_[p] = T(1);
      lastp[p] = 0;
      live[p] = pix[p] >= 0 ? T(1) : T(0);
    }
    const int64_t s0 = s.start[bid], s1 = s.start[bid + 1];
    bool any_live = inside > 0;
    for (int64_t k = s0; k < s1 && any_live; ++k) {
      const T* e = s.packed + kPacked * k;
      const T mx = e[0], my = e[1], ca = e[2], cb = e[3], cc = e[4], op = e[5];
      const int p0 = (s.rows[k] & 255) * B, p1 = (s.rows[k] >> 8) * B;
      const int32_t next = static_cast<int32_t>(k - s0 + 1);
      if constexpr (DC > 0) {
        T* a = acc.data();
        forward_fused<T, DC>(cx, cy, live, T_, lastp, a, a + P, a + 2 * P, DC > 3 ? a + 3 * P : nullptr,
                             s.features + s.entries[k] * DC, mx, my, ca, cb, cc, op, next, p0, p1);
        if ((k - s0) % kStopCheck == kStopCheck - 1) {
          T any = 0;
#pragma omp simd reduction(+ : any)
          for (int p = 0; p < P; ++p) any += live[p];
          any_live = any > T(0);
        }
        continue;
      }
      const T weight = forward_pixels<T>(cx, cy, live, T_, w, lastp, mx, my, ca, cb, cc, op, next, p0, p1);
      if (weight == T(0)) {  // nothing composited: no colour to add (a pixel may have stopped)
        if ((k - s0) % kStopCheck == kStopCheck - 1) {
          T any = 0;
#pragma omp simd reduction(+ : any)
          for (int p = 0; p < P; ++p) any += live[p];
          any_live = any > T(0);
        }
        continue;
      }
      const T* f = s.features + s.entries[k] * D;
      for (int64_t d = 0; d < D; ++d) {
        T* a = acc.data() + d * P;
        const T fd = f[d];
#pragma omp simd
        for (int p = p0; p < p1; ++p) a[p] += w[p] * fd;
      }
      if ((k - s0) % kStopCheck == kStopCheck - 1) {
        T any = 0;
#pragma omp simd reduction(+ : any)
        for (int p = 0; p < P; ++p) any += live[p];
        any_live = any > T(0);
      }
    }
    const int64_t cam = bid / g.per_cam();
    for (int p = 0; p < P; ++p) {
      if (pix[p] < 0) continue;
      t_final[pix[p]] = T_[p];
      last[pix[p]] = lastp[p];
      for (int64_t d = 0; d < D; ++d) {
        const T bg = s.backgrounds ? s.backgrounds[cam * D + d] * T_[p] : T(0);
        render[pix[p] * D + d] = acc[d * P + p] + bg;
      }
    }
  });
}

// Backward of one list entry against the P pixels of a block, in two passes: entry_alphas evaluates alpha and which
// pixels composited the entry (false: none did), backward_pixels updates T and S back to front (see the header
// comment), writes the weights w and the entry's gradient sums out[0 .. kRowExtra). Separate functions with restrict
// pointers, so that GCC vectorises the loops.
template <typename T>
inline bool entry_alphas(const T* __restrict cx, const T* __restrict cy, const T* __restrict lastp,
                         T* __restrict alpha, T* __restrict okv, T mx, T my, T ca, T cb, T cc, T op, T idx_t, int p0,
                         int p1) {
  const T a_min = static_cast<T>(kAlphaMin), a_max = static_cast<T>(kAlphaMax);
  T n_ok = 0;
#pragma omp simd reduction(+ : n_ok)
  for (int p = p0; p < p1; ++p) {
    const T dx = mx - cx[p], dy = my - cy[p];
    const T sigma = (ca * dx * dx) * T(0.5) + (cc * dy * dy) * T(0.5) + (cb * dx) * dy;
    const T al = min_(op * exp_nonpos(-sigma), a_max);
    const bool ok = (idx_t < lastp[p]) & (sigma >= T(0)) & (al >= a_min);
    alpha[p] = al;
    okv[p] = ok ? T(1) : T(0);
    n_ok += okv[p];
  }
  return n_ok > T(0);
}

template <typename T>
inline void backward_pixels(const T* __restrict cx, const T* __restrict cy, const T* __restrict q,
                            const T* __restrict alpha, const T* __restrict okv, T* __restrict T_, T* __restrict S,
                            T* __restrict w, T mx, T my, T ca, T cb, T cc, T* __restrict out, int p0, int p1) {
  const T a_max = static_cast<T>(kAlphaMax);
  T s_mx = 0, s_my = 0, s_ca = 0, s_cb = 0, s_cc = 0, s_va = 0, s_ax = 0, s_ay = 0;
#pragma omp simd reduction(+ : s_mx, s_my, s_ca, s_cb, s_cc, s_va, s_ax, s_ay)
  for (int p = p0; p < p1; ++p) {
    const T dx = mx - cx[p], dy = my - cy[p];
    const T al = alpha[p];
    const bool ok = okv[p] > T(0);
    const T inv = T(1) / (T(1) - al);
    const T ti = ok ? T_[p] * inv : T_[p];
    const T wi = ok ? al * ti : T(0);
    const T v = ok ? ti * q[p] - S[p] * inv : T(0);  // dL/dalpha
    S[p] += wi * q[p];
    T_[p] = ti;
    w[p] = wi;
    const T va = (ok & (al < a_max)) ? v * al : T(0);  // -dL/dsigma
    const T gx = -va * (ca * dx + cb * dy), gy = -va * (cb * dx + cc * dy);
    s_mx += gx;
    s_my += gy;
    s_ca += -va * (dx * dx) * T(0.5);
    s_cb += -va * (dx * dy);
    s_cc += -va * (dy * dy) * T(0.5);
    s_va += va;
    s_ax += abs_(gx);
    s_ay += abs_(gy);
  }
  out[0] = s_mx;
  out[1] = s_my;
  out[2] = s_ca;
  out[3] = s_cb;
  out[4] = s_cc;
  out[5] = s_va;
  out[6] = s_ax;
  out[7] = s_ay;
}

template <typename T, int B, int DC>
void backward_impl(const Splats<T>& s, const Grid& g, const T* t_final, const int32_t* last, const T* grad_render,
                   const T* grad_alpha, T* rows) {
  constexpr int P = B * B;
  const int64_t D = s.n_ch, row = kRowExtra + D;
  auto make = [&] { return std::vector<T>(D * P); };
  const int threads = threads_for(g.threads, s.start[g.n_blocks()], kEntriesPerThread);
  parallel_tasks(g.n_blocks(), threads, make, [&](std::vector<T>& gpix, int64_t bid) {
    alignas(64) T cx[P], cy[P], T_[P], S[P], q[P], w[P], lastp[P], alpha[P], okv[P];
    int64_t pix[P];
    const int64_t cam = bid / g.per_cam(), s0 = s.start[bid], s1 = s.start[bid + 1];
    auto zero_rows = [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) std::fill(rows + s.gen_of_slot[k] * row, rows + (s.gen_of_slot[k] + 1) * row, T(0));
    };
    if (block_pixels<T, B>(g, bid, cx, cy, pix) == 0) {
      zero_rows(s0, s1);
      return;
    }
    int32_t walk = 0;
    for (int p = 0; p < P; ++p) {
      T bg_dot = 0;
      T_[p] = T(1);
      lastp[p] = T(0);
      for (int64_t d = 0; d < D; ++d) gpix[d * P + p] = T(0);
      if (pix[p] >= 0) {
        bg_dot = -grad_alpha[pix[p]];
        for (int64_t d = 0; d < D; ++d) {
          const T gr = grad_render[pix[p] * D + d];
          gpix[d * P + p] = gr;
          if (s.backgrounds) bg_dot += s.backgrounds[cam * D + d] * gr;
        }
        T_[p] = t_final[pix[p]];
        lastp[p] = static_cast<T>(last[pix[p]]);
        walk = std::max(walk, last[pix[p]]);
      }
      S[p] = T_[p] * bg_dot;
    }
    zero_rows(s0 + walk, s1);  // entries behind every pixel's stop
    for (int32_t idx = walk - 1; idx >= 0; --idx) {
      const int64_t k = s0 + idx;
      const T* e = s.packed + kPacked * k;
      const T mx = e[0], my = e[1], ca = e[2], cb = e[3], cc = e[4], op = e[5];
      const int p0 = (s.rows[k] & 255) * B, p1 = (s.rows[k] >> 8) * B;
      // Entries composited nowhere in this block have zero gradients and leave T and S unchanged.
      T* out = rows + s.gen_of_slot[k] * row;
      if (!entry_alphas<T>(cx, cy, lastp, alpha, okv, mx, my, ca, cb, cc, op, static_cast<T>(idx), p0, p1)) {
        std::fill(out, out + row, T(0));
        continue;
      }
      if constexpr (DC > 0) {
        const T* gp = gpix.data();
        backward_fused<T, DC>(cx, cy, alpha, okv, gp, gp + P, gp + 2 * P, DC > 3 ? gp + 3 * P : nullptr,
                              s.features + s.entries[k] * DC, T_, S, mx, my, ca, cb, cc, out, p0, p1);
        continue;
      }
      const T* f = s.features + s.entries[k] * D;
      for (int p = p0; p < p1; ++p) q[p] = T(0);
      for (int64_t d = 0; d < D; ++d) {
        const T* gd = gpix.data() + d * P;
        const T fd = f[d];
#pragma omp simd
        for (int p = p0; p < p1; ++p) q[p] += fd * gd[p];
      }
      backward_pixels<T>(cx, cy, q, alpha, okv, T_, S, w, mx, my, ca, cb, cc, out, p0, p1);
      for (int64_t d = 0; d < D; ++d) {
        const T* gd = gpix.data() + d * P;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int p = p0; p < p1; ++p) acc += w[p] * gd[p];
        out[kRowExtra + d] = acc;
      }
    }
  });
}

}  // namespace

#define DYNSPLAT_BLOCK_SWITCH(block, call) \
  switch (block) {                         \
    case 1: call(1); break;                \
    case 2: call(2); break;                \
    case 4: call(4); break;                \
    case 8: call(8); break;                \
    default: call(16); break;              \
  }

template <typename T>
void composite_forward(const Splats<T>& s, const Grid& grid, T* render, T* t_final, int32_t* last, uint64_t* masks) {
  if (rows8_fast(grid, s.n_ch)) return composite_forward_rows8<T>(s, grid, render, t_final, last, masks);
#define DYNSPLAT_FWD(B)                                                          \
  if (s.n_ch == 3) forward_impl<T, B, 3>(s, grid, render, t_final, last);      \
  else if (s.n_ch == 4) forward_impl<T, B, 4>(s, grid, render, t_final, last); \
  else forward_impl<T, B, 0>(s, grid, render, t_final, last)
  DYNSPLAT_BLOCK_SWITCH(grid.block, DYNSPLAT_FWD)
#undef DYNSPLAT_FWD
}

template <typename T>
void composite_backward(const Splats<T>& s, const Grid& grid, const T* t_final, const int32_t* last,
                        const uint64_t* masks, const T* grad_render, const T* grad_alpha, bool absgrad, T* rows) {
  if (rows8_fast(grid, s.n_ch)) {
    return composite_backward_rows8<T>(s, grid, t_final, last, masks, grad_render, grad_alpha, absgrad, rows);
  }
#define DYNSPLAT_BWD(B)                                                                            \
  if (s.n_ch == 3) backward_impl<T, B, 3>(s, grid, t_final, last, grad_render, grad_alpha, rows);      \
  else if (s.n_ch == 4) backward_impl<T, B, 4>(s, grid, t_final, last, grad_render, grad_alpha, rows); \
  else backward_impl<T, B, 0>(s, grid, t_final, last, grad_render, grad_alpha, rows)
  DYNSPLAT_BLOCK_SWITCH(grid.block, DYNSPLAT_BWD)
#undef DYNSPLAT_BWD
}

template <typename T>
void reduce_rows(const T* rows, int64_t n_ch, const int64_t* vis, int64_t n_vis, const int64_t* gen_first,
                 const T* opacities, int threads, T* v_means, T* v_conics, T* v_opac, T* v_feat, T* v_abs) {
  const int64_t row = kRowExtra + n_ch;
  constexpr int64_t kChunk = 1024;
  auto make = [&] { return std::vector<T>(row); };
  threads = threads_for(threads, n_vis, kGaussiansPerThread);
  parallel_tasks((n_vis + kChunk - 1) / kChunk, threads, make, [&](std::vector<T>& sum, int64_t chunk) {
    for (int64_t v = chunk * kChunk; v < std::min(n_vis, (chunk + 1) * kChunk); ++v) {
      std::fill(sum.begin(), sum.end(), T(0));
      for (int64_t j = gen_first[v]; j < gen_first[v + 1]; ++j) {
        const T* r = rows + j * row;
        for (int64_t c = 0; c < row; ++c) sum[c] += r[c];
      }
      const int64_t gi = vis[v];
      v_means[2 * gi] = sum[0];
      v_means[2 * gi + 1] = sum[1];
      v_conics[3 * gi] = sum[2];
      v_conics[3 * gi + 1] = sum[3];
      v_conics[3 * gi + 2] = sum[4];
      v_opac[gi] = opacities[gi] > T(0) ? sum[5] / opacities[gi] : T(0);
      if (v_abs) {
        v_abs[2 * gi] = sum[6];
        v_abs[2 * gi + 1] = sum[7];
      }
      for (int64_t d = 0; d < n_ch; ++d) v_feat[gi * n_ch + d] = sum[kRowExtra + d];
    }
  });
}

#define DYNSPLAT_INSTANTIATE(T)                                                                                   \
  template void composite_forward<T>(const Splats<T>&, const Grid&, T*, T*, int32_t*, uint64_t*);                 \
  template void composite_backward<T>(const Splats<T>&, const Grid&, const T*, const int32_t*, const uint64_t*,    \
                                      const T*, const T*, bool, T*);                                              \
  template void reduce_rows<T>(const T*, int64_t, const int64_t*, int64_t, const int64_t*, const T*, int, T*, T*,  \
                               T*, T*, T*);
DYNSPLAT_INSTANTIATE(float)
DYNSPLAT_INSTANTIATE(double)
#undef DYNSPLAT_INSTANTIATE

}  // namespace dynsplat
