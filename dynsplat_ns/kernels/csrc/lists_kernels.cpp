// Front-to-back block lists of the compiled compositor, in one call: the visible Gaussians, sorted by depth (a stable
// LSD radix sort of the depths' bit patterns: ties keep the flat id order, as torch's stable argsort), their support
// boxes (gsplat's 16 px tile range intersected with the bounding box of the ellipse alpha >= 1/255, the formulas of
// dynsplat_ns/render/blocks.py's support_boxes in the same precision) and the per-block lists (a counting sort,
// O(intersections)), with each entry's Gaussian values and block rows packed for the compositor. Single-threaded:
// a few ms at 50k Gaussians.

#include "lists_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace dynsplat {
namespace {

constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kTile = 16.0;

// Unsigned keys ordered like the floats they come from (-0 as +0; no NaN).
inline uint32_t order_key(float x) {
  x = x == 0.0f ? 0.0f : x;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return (bits >> 31) ? ~bits : bits | 0x80000000u;
}

inline uint64_t order_key(double x) {
  x = x == 0.0 ? 0.0 : x;
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return (bits >> 63) ? ~bits : bits | 0x8000000000000000ull;
}

// Stable LSD radix sort of (key, value) pairs by key, 8 bits per pass (passes where every key has the same digit are
// skipped).
template <typename K>
void radix_sort(std::vector<K>& keys, std::vector<int64_t>& vals) {
  const size_t n = keys.size();
  std::vector<K> keys2(n);
  std::vector<int64_t> vals2(n);
  for (unsigned shift = 0; shift < 8 * sizeof(K); shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & 255u) + 1];
    if (std::any_of(count + 1, count + 257, [n](size_t c) { return c == n; })) continue;
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (size_t i = 0; i < n; ++i) {
      const size_t slot = count[(keys[i] >> shift) & 255u]++;
      keys2[slot] = keys[i];
      vals2[slot] = vals[i];
    }
    keys.swap(keys2);
    vals.swap(vals2);
  }
}

}  // namespace

template <typename T>
Lists<T> block_lists(const T* means2d, const T* conics, const T* opacities, const T* depths, const int32_t* radii,
                  int64_t n_gauss, const Grid& g) {
  using Key = decltype(order_key(T(0)));
  const int64_t n_flat = n_gauss * g.n_cams, per_cam = g.per_cam(), n_blocks = g.n_blocks(), block = g.block;
  Lists<T> out;
  std::vector<Key> keys;
  const T a_min = static_cast<T>(kAlphaMin);
  for (int64_t i = 0; i < n_flat; ++i) {
    if (radii[i] > 0 && opacities[i] >= a_min) {
      out.vis.push_back(i);
      keys.push_back(order_key(depths[i]));
    }
  }
  radix_sort(keys, out.vis);
  const int64_t n_vis = static_cast<int64_t>(out.vis.size());
  // Block spans [bx0, bx1) x [by0, by1) of each visible Gaussian's support box (empty: bx1 == bx0, by1 == by0), then
  // the box's rows [y0, y1).
  std::vector<int64_t> span(6 * n_vis);
  const T tile = static_cast<T>(kTile), half = T(0.5), width = static_cast<T>(g.width);
  const T height = static_cast<T>(g.height);
  for (int64_t v = 0; v < n_vis; ++v) {
    const int64_t i = out.vis[v];
    const T mx = means2d[2 * i], my = means2d[2 * i + 1];
    const T ca = conics[3 * i], cb = conics[3 * i + 1], cc = conics[3 * i + 2];
    const T tile_r = static_cast<T>(radii[i]) / tile;
    const T tx0 = std::max(std::floor(mx / tile - tile_r), T(0)) * tile;
    const T tx1 = std::max(std::ceil(mx / tile + tile_r), T(0)) * tile;
    const T ty0 = std::max(std::floor(my / tile - tile_r), T(0)) * tile;
    const T ty1 = std::max(std::ceil(my / tile + tile_r), T(0)) * tile;
    const T det = std::max(ca * cc - cb * cb, static_cast<T>(1e-30));
    const T level = T(2) * std::log(std::max(opacities[i] * T(255), T(1)));
    const T ex = std::sqrt(level * cc / det) * static_cast<T>(1.001) + static_cast<T>(1e-3);
    const T ey = std::sqrt(level * ca / det) * static_cast<T>(1.001) + static_cast<T>(1e-3);
    const int64_t x0 = static_cast<int64_t>(std::max(std::max(std::ceil(mx - half - ex), tx0), T(0)));
    const int64_t x1 = static_cast<int64_t>(std::min(std::min(std::floor(mx - half + ex) + T(1), tx1), width));
    const int64_t y0 = static_cast<int64_t>(std::max(std::max(std::ceil(my - half - ey), ty0), T(0)));
    const int64_t y1 = static_cast<int64_t>(std::min(std::min(std::floor(my - half + ey) + T(1), ty1), height));
    int64_t bx0 = x0 / block, by0 = y0 / block;
    int64_t bx1 = x1 > x0 ? (x1 + block - 1) / block : bx0, by1 = y1 > y0 ? (y1 + block - 1) / block : by0;
    if (by1 == by0) bx1 = bx0;
    if (bx1 == bx0) by1 = by0;
    int64_t* s = span.data() + 6 * v;
    s[0] = bx0;
    s[1] = bx1;
    s[2] = by0;
    s[3] = by1;
    s[4] = y0;
    s[5] = y1;
  }
  out.start.assign(n_blocks + 1, 0);
  out.gen_first.resize(n_vis + 1);
  int64_t* ps = out.start.data();
  int64_t total = 0;
  for (int64_t v = 0; v < n_vis; ++v) {
    const int64_t* s = span.data() + 6 * v;
    out.gen_first[v] = total;
    const int64_t base = (out.vis[v] / n_gauss) * per_cam;
    for (int64_t by = s[2]; by < s[3]; ++by)
      for (int64_t bx = s[0]; bx < s[1]; ++bx) ++ps[base + by * g.blocks_x + bx + 1];
    total += (s[3] - s[2]) * (s[1] - s[0]);
  }
  out.gen_first[n_vis] = total;
  for (int64_t b = 0; b < n_blocks; ++b) ps[b + 1] += ps[b];
  out.entries.resize(total);
  out.gen_of_slot.resize(total);
  out.packed.assign(total * kPacked, T(0));
  out.rows.resize(total);
  std::vector<int64_t> cursor(ps, ps + n_blocks);
  int64_t gen = 0;
  for (int64_t v = 0; v < n_vis; ++v) {
    const int64_t* s = span.data() + 6 * v;
    const int64_t i = out.vis[v], base = (i / n_gauss) * per_cam;
    const T record[6] = {means2d[2 * i], means2d[2 * i + 1], conics[3 * i], conics[3 * i + 1], conics[3 * i + 2],
                         opacities[i]};
    for (int64_t by = s[2]; by < s[3]; ++by) {
      const int64_t ly0 = std::max<int64_t>(s[4] - by * block, 0), ly1 = std::min<int64_t>(s[5] - by * block, block);
      for (int64_t bx = s[0]; bx < s[1]; ++bx) {
        const int64_t slot = cursor[base + by * g.blocks_x + bx]++;
        out.entries[slot] = i;
        out.gen_of_slot[slot] = gen++;
        std::copy(record, record + 6, out.packed.data() + kPacked * slot);
        out.rows[slot] = static_cast<int32_t>(ly0 | (ly1 << 8));
      }
    }
  }
  return out;
}

template Lists<float> block_lists<float>(const float*, const float*, const float*, const float*, const int32_t*,
                                         int64_t, const Grid&);
template Lists<double> block_lists<double>(const double*, const double*, const double*, const double*,
                                           const int32_t*, int64_t, const Grid&);

}  // namespace dynsplat
