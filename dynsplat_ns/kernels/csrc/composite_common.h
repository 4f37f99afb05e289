// Helpers shared by the compiled compositor's generic loops (composite_kernels.cpp) and its 8 x 8 block fast path
// (composite_rows.cpp): the rules' constants, thread counts, the task loop and a vectorisable exp.

#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "composite_kernels.h"

namespace dynsplat {
namespace detail {

constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kAlphaMax = 0.999;
constexpr double kTMin = 1e-4;
// Fewest list entries (resp. Gaussians) per thread: small renders run on one thread, since waking and joining threads
// costs more than they save (and much more on a busy machine).
constexpr int64_t kEntriesPerThread = 16384;
constexpr int64_t kGaussiansPerThread = 8192;

inline int threads_for(int threads, int64_t work, int64_t per_thread) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, work / per_thread)));
}

// exp(x) for x <= 0 (clamped to [-87, 0]): Cephes' single-precision polynomial, ~1 ulp, vectorisable.
inline float exp_nonpos(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 0.0f ? 0.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline double exp_nonpos(double x) { return std::exp(x > 0.0 ? 0.0 : x); }

// Runs fn(scratch, task) for task in [0, n) on `threads` OpenMP threads, handing tasks out dynamically (block costs
// vary a lot); each thread makes its own scratch with make().
template <typename Make, typename F>
void parallel_tasks(int64_t n, int threads, const Make& make, const F& fn) {
  if (n <= 0) return;
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    auto scratch = make();
    for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(scratch, task);
  }
}

}  // namespace detail
}  // namespace dynsplat
