// Fast path of the compiled compositor for 8 x 8 pixel blocks and 3 or 4 channels: the same front-to-back walk and
// exact backward as composite_kernels.cpp (see its header comment for the rules and the backward's recursion), with
// one block row (8 pixels) as one vector (GCC vector extensions: one AVX register for float, two for double).
//
// * The block's live pixels are a 64-bit mask; each list entry walks only the rows of its support box that still
//   hold a live pixel (none: the entry is skipped without evaluating its Gaussian).
// * The forward records, per list entry, the mask of the pixels that composited it. The backward walks only the rows
//   with a bit in that mask and takes "composited" from it (entries composited nowhere cost nothing), instead of
//   re-deciding it from the recomputed alpha.
// * The backward accumulates per entry sum(va), sum(va dx), sum(va dy), sum(va dx^2), sum(va dx dy), sum(va dy^2)
//   (va = -dL/dsigma) and forms the mean and conic gradients from them once per entry; the |mean| sums (absgrad)
//   are a compile-time switch.
// Per-entry results do not depend on the thread count (each entry belongs to one block, lanes sum in a fixed order).

#include "composite_rows.h"

#include <algorithm>
#include <cstring>

#include "composite_common.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace dynsplat {
namespace {

using detail::kAlphaMax;
using detail::kAlphaMin;
using detail::kEntriesPerThread;
using detail::kTMin;

typedef float f8 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef int64_t l8 __attribute__((vector_size(64)));

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using V = f8;  // 8 values
  using M = i8;  // 8 lane masks (-1 / 0), the type of comparisons of V
};
template <>
struct Vec<double> {
  using V = d8;
  using M = l8;
};

// Cephes' exp of composite_common.h's exp_nonpos(float), lane-wise (floor as truncation, corrected below zero).
inline f8 exp_nonpos(f8 x) {
  const f8 zero = {};
  x = x < -87.0f ? zero - 87.0f : x;
  x = x > 0.0f ? zero : x;
  const f8 t = x * 1.44269504088896341f + 0.5f;
  const i8 ti = __builtin_convertvector(t, i8);
  const f8 tf = __builtin_convertvector(ti, f8);
  const f8 n = tf > t ? tf - 1.0f : tf;
  const f8 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  f8 y = zero + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const i8 bits = (__builtin_convertvector(n, i8) + 127) << 23;
  f8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline d8 exp_nonpos(d8 x) {
  d8 out;
  for (int l = 0; l < 8; ++l) out[l] = detail::exp_nonpos(x[l]);
  return out;
}

// Bit l set where lane l of m is set.
inline unsigned lane_bits(i8 m) {
#if defined(__AVX__)
  return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(reinterpret_cast<__m256i>(m))));
#else
  unsigned b = 0;
  for (int l = 0; l < 8; ++l) b |= static_cast<unsigned>(m[l] != 0) << l;
  return b;
#endif
}

inline unsigned lane_bits(l8 m) { return lane_bits(__builtin_convertvector(m, i8)); }

// Lane l set where bit l of `bits` is.
template <typename M>
inline M bit_lanes(unsigned bits) {
  const M lane = {1, 2, 4, 8, 16, 32, 64, 128};
  return (lane & (M{} + static_cast<int32_t>(bits))) != 0;
}

template <typename V>
inline auto hsum(V v) {
  auto s = v[0];
  for (int l = 1; l < 8; ++l) s += v[l];
  return s;
}

// Bits of the block rows [r0, r1).
inline uint64_t row_span(int r0, int r1) {
  if (r1 <= r0) return 0;
  const uint64_t hi = r1 >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * r1)) - 1;
  return hi & ~((uint64_t{1} << (8 * r0)) - 1);
}

// The block rows [ra, rb) holding bits of m (m != 0).
inline void row_range(uint64_t m, int& ra, int& rb) {
  ra = __builtin_ctzll(m) >> 3;
  rb = ((63 - __builtin_clzll(m)) >> 3) + 1;
}

struct Block {
  int64_t cam, x0, y0;
  int w_in, h_in;  // pixels of the block inside the image
};

inline Block block_at(const Grid& g, int64_t bid) {
  const int64_t cam = bid / g.per_cam(), rem = bid % g.per_cam();
  const int64_t x0 = (rem % g.blocks_x) * 8, y0 = (rem / g.blocks_x) * 8;
  return {cam, x0, y0, static_cast<int>(std::min<int64_t>(8, g.width - x0)),
          static_cast<int>(std::min<int64_t>(8, g.height - y0))};
}

template <typename T, int DC>
void forward_impl(const Splats<T>& s, const Grid& g, T* render, T* t_final, int32_t* last, uint64_t* masks) {
  using V = typename Vec<T>::V;
  using M = typename Vec<T>::M;
  const T a_min = static_cast<T>(kAlphaMin), a_max = static_cast<T>(kAlphaMax), t_min = static_cast<T>(kTMin);
  const int threads = detail::threads_for(g.threads, s.start[g.n_blocks()], kEntriesPerThread);
  detail::parallel_tasks(g.n_blocks(), threads, [] { return 0; }, [&](int&, int64_t bid) {
    const Block b = block_at(g, bid);
    const V zero = {}, lane_x = {0, 1, 2, 3, 4, 5, 6, 7};
    const V cx = lane_x + (static_cast<T>(b.x0) + T(0.5));
    V Tr[8], acc[DC][8];
    M lastr[8];
    uint64_t live = 0;
    for (int r = 0; r < 8; ++r) {
      Tr[r] = zero + T(1);
      lastr[r] = M{};
      for (int d = 0; d < DC; ++d) acc[d][r] = zero;
      if (r < b.h_in) live |= uint64_t((1u << b.w_in) - 1) << (8 * r);
    }
    const int64_t s0 = s.start[bid], s1 = s.start[bid + 1];
    for (int64_t k = s0; k < s1; ++k) {
      if (!live) {  // every pixel has stopped
        std::fill(masks + k, masks + s1, uint64_t{0});
        break;
      }
      const int32_t rows = s.rows[k];
      const uint64_t m = live & row_span(rows & 255, rows >> 8);
      if (!m) {
        masks[k] = 0;
        continue;
      }
      int ra, rb;
      row_range(m, ra, rb);
      const T* e = s.packed + kPacked * k;
      const T mx = e[0], my = e[1], ca = e[2], cb = e[3], cc = e[4], op = e[5];
      const T* f = s.features + s.entries[k] * DC;
      T fd[DC];
      for (int d = 0; d < DC; ++d) fd[d] = f[d];
      const auto next = static_cast<int32_t>(k - s0 + 1);
      const V dx = mx - cx, half_ca_dx2 = (ca * dx * dx) * T(0.5), cb_dx = cb * dx;
      uint64_t inc_bits = 0, stop_bits = 0;
      for (int r = ra; r < rb; ++r) {
        const unsigned lb = static_cast<unsigned>(m >> (8 * r)) & 255u;
        if (!lb) continue;
        const T dy = my - (static_cast<T>(b.y0 + r) + T(0.5));
        const V sigma = half_ca_dx2 + (cc * dy * dy) * T(0.5) + cb_dx * dy;
        V al = op * exp_nonpos(-sigma);
        al = al < a_max ? al : zero + a_max;
        const M ok = (sigma >= T(0)) & (al >= a_min) & bit_lanes<M>(lb);
        const V tn = Tr[r] * (T(1) - al);
        const M inc = ok & (tn > t_min);
        const V w = inc ? al * Tr[r] : zero;
        Tr[r] = inc ? tn : Tr[r];
        lastr[r] = inc ? M{} + next : lastr[r];
        for (int d = 0; d < DC; ++d) acc[d][r] += w * fd[d];
        inc_bits |= uint64_t(lane_bits(inc)) << (8 * r);
        stop_bits |= uint64_t(lane_bits(ok & ~inc)) << (8 * r);
      }
      masks[k] = inc_bits;
      live &= ~stop_bits;
    }
    for (int r = 0; r < b.h_in; ++r) {
      for (int l = 0; l < b.w_in; ++l) {
        const int64_t pix = (b.cam * g.height + b.y0 + r) * g.width + b.x0 + l;
        const T t = Tr[r][l];
        t_final[pix] = t;
        last[pix] = static_cast<int32_t>(lastr[r][l]);
        for (int d = 0; d < DC; ++d) {
          const T bg = s.backgrounds ? s.backgrounds[b.cam * DC + d] * t : T(0);
          render[pix * DC + d] = acc[d][r][l] + bg;
        }
      }
    }
  });
}

template <typename T, int DC, bool ABS>
void backward_impl(const Splats<T>& s, const Grid& g, const T* t_final, const int32_t* last, const uint64_t* masks,
                   const T* grad_render, const T* grad_alpha, T* rows) {
  using V = typename Vec<T>::V;
  using M = typename Vec<T>::M;
  constexpr int64_t row = kRowExtra + DC;
  const T a_max = static_cast<T>(kAlphaMax);
  const int threads = detail::threads_for(g.threads, s.start[g.n_blocks()], kEntriesPerThread);
  detail::parallel_tasks(g.n_blocks(), threads, [] { return 0; }, [&](int&, int64_t bid) {
    const Block b = block_at(g, bid);
    const V zero = {}, lane_x = {0, 1, 2, 3, 4, 5, 6, 7};
    const V cx = lane_x + (static_cast<T>(b.x0) + T(0.5));
    V Tr[8], Sr[8], G[DC][8];
    int32_t walk = 0;
    for (int r = 0; r < 8; ++r) {
      Tr[r] = zero + T(1);
      Sr[r] = zero;
      for (int d = 0; d < DC; ++d) G[d][r] = zero;
      for (int l = 0; r < b.h_in && l < b.w_in; ++l) {
        const int64_t pix = (b.cam * g.height + b.y0 + r) * g.width + b.x0 + l;
        T bg_dot = -grad_alpha[pix];
        for (int d = 0; d < DC; ++d) {
          const T gr = grad_render[pix * DC + d];
          G[d][r][l] = gr;
          if (s.backgrounds) bg_dot += s.backgrounds[b.cam * DC + d] * gr;
        }
        Tr[r][l] = t_final[pix];
        Sr[r][l] = t_final[pix] * bg_dot;
        walk = std::max(walk, last[pix]);
      }
    }
    const int64_t s0 = s.start[bid], s1 = s.start[bid + 1];
    for (int64_t k = s0 + walk; k < s1; ++k) {  // entries behind every pixel's stop
      T* out = rows + s.gen_of_slot[k] * row;
      std::fill(out, out + row, T(0));
    }
    for (int64_t k = s0 + walk - 1; k >= s0; --k) {
      T* out = rows + s.gen_of_slot[k] * row;
      const uint64_t m = masks[k];
      if (!m) {  // composited nowhere: zero gradients, T and S unchanged
        std::fill(out, out + row, T(0));
        continue;
      }
      int ra, rb;
      row_range(m, ra, rb);
      const T* e = s.packed + kPacked * k;
      const T mx = e[0], my = e[1], ca = e[2], cb = e[3], cc = e[4], op = e[5];
      const T* f = s.features + s.entries[k] * DC;
      T fd[DC];
      for (int d = 0; d < DC; ++d) fd[d] = f[d];
      const V dx = mx - cx, half_ca_dx2 = (ca * dx * dx) * T(0.5), cb_dx = cb * dx;
      V a_va = zero, a_x = zero, a_y = zero, a_xx = zero, a_xy = zero, a_yy = zero, a_ax = zero, a_ay = zero;
      V a_f[DC];
      for (int d = 0; d < DC; ++d) a_f[d] = zero;
      for (int r = ra; r < rb; ++r) {
        const unsigned lb = static_cast<unsigned>(m >> (8 * r)) & 255u;
        if (!lb) continue;
        const M ok = bit_lanes<M>(lb);
        const T dy = my - (static_cast<T>(b.y0 + r) + T(0.5));
        const V sigma = half_ca_dx2 + (cc * dy * dy) * T(0.5) + cb_dx * dy;
        V al = op * exp_nonpos(-sigma);
        al = al < a_max ? al : zero + a_max;
        V q = fd[0] * G[0][r];
        for (int d = 1; d < DC; ++d) q += fd[d] * G[d][r];
        const V inv = T(1) / (T(1) - al);
        const V ti = ok ? Tr[r] * inv : Tr[r];
        const V wi = ok ? al * ti : zero;
        const V v = ok ? ti * q - Sr[r] * inv : zero;  // dL/dalpha
        Sr[r] += wi * q;
        Tr[r] = ti;
        const V va = (ok & (al < a_max)) ? v * al : zero;  // -dL/dsigma
        const V va_dx = va * dx;
        a_va += va;
        a_x += va_dx;
        a_y += va * dy;
        a_xx += va_dx * dx;
        a_xy += va_dx * dy;
        a_yy += va * (dy * dy);
        if constexpr (ABS) {
          const V gx = -(va_dx * ca + va * (cb * dy)), gy = -(va_dx * cb + va * (cc * dy));
          a_ax += gx < T(0) ? -gx : gx;
          a_ay += gy < T(0) ? -gy : gy;
        }
        for (int d = 0; d < DC; ++d) a_f[d] += wi * G[d][r];
      }
      const T sx = hsum(a_x), sy = hsum(a_y);
      out[0] = -(ca * sx + cb * sy);
      out[1] = -(cb * sx + cc * sy);
      out[2] = -hsum(a_xx) * T(0.5);
      out[3] = -hsum(a_xy);
      out[4] = -hsum(a_yy) * T(0.5);
      out[5] = hsum(a_va);
      out[6] = ABS ? hsum(a_ax) : T(0);
      out[7] = ABS ? hsum(a_ay) : T(0);
      for (int d = 0; d < DC; ++d) out[kRowExtra + d] = hsum(a_f[d]);
    }
  });
}

}  // namespace

template <typename T>
void composite_forward_rows8(const Splats<T>& s, const Grid& grid, T* render, T* t_final, int32_t* last,
                             uint64_t* masks) {
  if (s.n_ch == 3) forward_impl<T, 3>(s, grid, render, t_final, last, masks);
  else forward_impl<T, 4>(s, grid, render, t_final, last, masks);
}

template <typename T>
void composite_backward_rows8(const Splats<T>& s, const Grid& grid, const T* t_final, const int32_t* last,
                              const uint64_t* masks, const T* grad_render, const T* grad_alpha, bool absgrad,
                              T* rows) {
  if (s.n_ch == 3 && absgrad) backward_impl<T, 3, true>(s, grid, t_final, last, masks, grad_render, grad_alpha, rows);
  else if (s.n_ch == 3) backward_impl<T, 3, false>(s, grid, t_final, last, masks, grad_render, grad_alpha, rows);
  else if (absgrad) backward_impl<T, 4, true>(s, grid, t_final, last, masks, grad_render, grad_alpha, rows);
  else backward_impl<T, 4, false>(s, grid, t_final, last, masks, grad_render, grad_alpha, rows);
}

#define DYNSPLAT_INSTANTIATE(T)                                                                                \
  template void composite_forward_rows8<T>(const Splats<T>&, const Grid&, T*, T*, int32_t*, uint64_t*);        \
  template void composite_backward_rows8<T>(const Splats<T>&, const Grid&, const T*, const int32_t*,           \
                                            const uint64_t*, const T*, const T*, bool, T*);
DYNSPLAT_INSTANTIATE(float)
DYNSPLAT_INSTANTIATE(double)
#undef DYNSPLAT_INSTANTIATE

}  // namespace dynsplat
