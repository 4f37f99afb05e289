// Torch bindings of the compiled CPU kernels (composite_kernels.cpp, hexplane_kernels.cpp): tensor checks and
// allocation, dtype dispatch, thread count (torch.get_num_threads()), and the block lists (a counting sort,
// O(intersections)).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <vector>

#include "composite_kernels.h"
#include "hexplane_kernels.h"

namespace {

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "dynsplat cpu kernels: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "dynsplat cpu kernels: ", name, " must be contiguous");
}

dynsplat::Grid make_grid(int64_t n_cams, int64_t width, int64_t height, int64_t block, int64_t blocks_x,
                         int64_t blocks_y) {
  TORCH_CHECK(block >= 1 && block <= 16 && 16 % block == 0, "dynsplat cpu kernels: block must divide 16");
  return {n_cams, width, height, block, blocks_x, blocks_y, static_cast<int>(at::get_num_threads())};
}

template <typename T>
dynsplat::Splats<T> splats(const torch::Tensor& means2d, const torch::Tensor& conics, const torch::Tensor& opacities,
                           const torch::Tensor& features, const torch::Tensor& backgrounds,
                           const torch::Tensor& start, const torch::Tensor& entries) {
  return {means2d.data_ptr<T>(),
          conics.data_ptr<T>(),
          opacities.data_ptr<T>(),
          features.data_ptr<T>(),
          features.size(1),
          backgrounds.numel() > 0 ? backgrounds.data_ptr<T>() : nullptr,
          start.data_ptr<int64_t>(),
          entries.data_ptr<int64_t>()};
}

}  // namespace

// Block lists. vis: flat ids (cam * n_gauss + g) of the visible Gaussians, front to back; x0..y1: their pixel boxes
// [x0, x1) x [y0, y1) (clipped to the image). Returns (start [B + 1], entries [I], gen_first [V + 1],
// slot_of_gen [I]): entries[start[b] .. start[b + 1]) is block b's list, front to back (Gaussians are placed in depth
// order); Gaussian v's entries sit at slot_of_gen[gen_first[v] .. gen_first[v + 1]).
std::vector<torch::Tensor> build_lists(torch::Tensor vis, torch::Tensor x0, torch::Tensor x1, torch::Tensor y0,
                                       torch::Tensor y1, int64_t n_gauss, int64_t n_cams, int64_t block,
                                       int64_t blocks_x, int64_t blocks_y) {
  for (auto* t : {&vis, &x0, &x1, &y0, &y1}) {
    check(*t, "list input");
    TORCH_CHECK(t->scalar_type() == torch::kInt64, "dynsplat cpu kernels: list inputs must be int64");
  }
  const int64_t n_vis = vis.numel(), per_cam = blocks_x * blocks_y, n_blocks = n_cams * per_cam;
  const int64_t *pv = vis.data_ptr<int64_t>(), *px0 = x0.data_ptr<int64_t>(), *px1 = x1.data_ptr<int64_t>();
  const int64_t *py0 = y0.data_ptr<int64_t>(), *py1 = y1.data_ptr<int64_t>();
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor start = torch::zeros({n_blocks + 1}, opts), gen_first = torch::empty({n_vis + 1}, opts);
  int64_t *ps = start.data_ptr<int64_t>(), *pg = gen_first.data_ptr<int64_t>();
  auto span = [&](int64_t v, int64_t& bx0, int64_t& bx1, int64_t& by0, int64_t& by1) {
    bx0 = px0[v] / block;
    by0 = py0[v] / block;
    bx1 = px1[v] > px0[v] ? (px1[v] + block - 1) / block : bx0;
    by1 = py1[v] > py0[v] ? (py1[v] + block - 1) / block : by0;
    if (by1 == by0) bx1 = bx0;
    if (bx1 == bx0) by1 = by0;
  };
  int64_t total = 0;
  for (int64_t v = 0; v < n_vis; ++v) {
    int64_t bx0, bx1, by0, by1;
    span(v, bx0, bx1, by0, by1);
    pg[v] = total;
    const int64_t base = (pv[v] / n_gauss) * per_cam;
    for (int64_t by = by0; by < by1; ++by)
      for (int64_t bx = bx0; bx < bx1; ++bx) ++ps[base + by * blocks_x + bx + 1];
    total += (by1 - by0) * (bx1 - bx0);
  }
  pg[n_vis] = total;
  for (int64_t b = 0; b < n_blocks; ++b) ps[b + 1] += ps[b];
  torch::Tensor entries = torch::empty({total}, opts), slot_of_gen = torch::empty({total}, opts);
  int64_t *pe = entries.data_ptr<int64_t>(), *pslot = slot_of_gen.data_ptr<int64_t>();
  std::vector<int64_t> cursor(ps, ps + n_blocks);
  int64_t gen = 0;
  for (int64_t v = 0; v < n_vis; ++v) {
    int64_t bx0, bx1, by0, by1;
    span(v, bx0, bx1, by0, by1);
    const int64_t base = (pv[v] / n_gauss) * per_cam;
    for (int64_t by = by0; by < by1; ++by) {
      for (int64_t bx = bx0; bx < bx1; ++bx) {
        const int64_t slot = cursor[base + by * blocks_x + bx]++;
        pe[slot] = pv[v];
        pslot[gen++] = slot;
      }
    }
  }
  return {start, entries, gen_first, slot_of_gen};
}

// Forward: (render [C, H, W, D] with background, t_final [C, H, W], last [C, H, W] int32).
std::vector<torch::Tensor> composite_forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                             torch::Tensor features, torch::Tensor backgrounds, torch::Tensor start,
                                             torch::Tensor entries, int64_t n_cams, int64_t width, int64_t height,
                                             int64_t block, int64_t blocks_x, int64_t blocks_y) {
  for (auto* t : {&means2d, &conics, &opacities, &features, &backgrounds, &start, &entries}) check(*t, "input");
  const auto grid = make_grid(n_cams, width, height, block, blocks_x, blocks_y);
  auto fopts = means2d.options();
  torch::Tensor render = torch::empty({n_cams, height, width, features.size(1)}, fopts);
  torch::Tensor t_final = torch::empty({n_cams, height, width}, fopts);
  torch::Tensor last = torch::empty({n_cams, height, width}, fopts.dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "dynsplat_composite_forward", [&] {
    dynsplat::composite_forward<scalar_t>(
        splats<scalar_t>(means2d, conics, opacities, features, backgrounds, start, entries), grid,
        render.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(), last.data_ptr<int32_t>());
  });
  return {render, t_final, last};
}

// Backward: (v_means2d [CN, 2], v_conics [CN, 3], v_opacities [CN], v_features [CN, D], v_abs [CN, 2] or empty).
std::vector<torch::Tensor> composite_backward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                              torch::Tensor features, torch::Tensor backgrounds, torch::Tensor start,
                                              torch::Tensor entries, torch::Tensor vis, torch::Tensor gen_first,
                                              torch::Tensor slot_of_gen, torch::Tensor t_final, torch::Tensor last,
                                              torch::Tensor grad_render, torch::Tensor grad_alpha, int64_t n_cams,
                                              int64_t width, int64_t height, int64_t block, int64_t blocks_x,
                                              int64_t blocks_y, bool want_abs) {
  for (auto* t : {&means2d, &conics, &opacities, &features, &backgrounds, &start, &entries, &vis, &gen_first,
                  &slot_of_gen, &t_final, &last, &grad_render, &grad_alpha})
    check(*t, "input");
  const auto grid = make_grid(n_cams, width, height, block, blocks_x, blocks_y);
  const int64_t n_ch = features.size(1), n_flat = features.size(0);
  auto fopts = means2d.options();
  torch::Tensor rows = torch::zeros({entries.numel(), dynsplat::kRowExtra + n_ch}, fopts);
  torch::Tensor v_means = torch::zeros({n_flat, 2}, fopts), v_conics = torch::zeros({n_flat, 3}, fopts);
  torch::Tensor v_opac = torch::zeros({n_flat}, fopts), v_feat = torch::zeros({n_flat, n_ch}, fopts);
  torch::Tensor v_abs = want_abs ? torch::zeros({n_flat, 2}, fopts) : torch::empty({0}, fopts);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "dynsplat_composite_backward", [&] {
    dynsplat::composite_backward<scalar_t>(
        splats<scalar_t>(means2d, conics, opacities, features, backgrounds, start, entries), grid,
        t_final.data_ptr<scalar_t>(), last.data_ptr<int32_t>(), grad_render.data_ptr<scalar_t>(),
        grad_alpha.data_ptr<scalar_t>(), rows.data_ptr<scalar_t>());
    dynsplat::reduce_rows<scalar_t>(rows.data_ptr<scalar_t>(), n_ch, vis.data_ptr<int64_t>(), vis.numel(),
                                    gen_first.data_ptr<int64_t>(), slot_of_gen.data_ptr<int64_t>(),
                                    opacities.data_ptr<scalar_t>(), grid.threads, v_means.data_ptr<scalar_t>(),
                                    v_conics.data_ptr<scalar_t>(), v_opac.data_ptr<scalar_t>(),
                                    v_feat.data_ptr<scalar_t>(), want_abs ? v_abs.data_ptr<scalar_t>() : nullptr);
  });
  return {v_means, v_conics, v_opac, v_feat, v_abs};
}

template <typename T>
dynsplat::HexPlanes<T> hexplanes(const std::vector<torch::Tensor>& planes) {
  TORCH_CHECK(!planes.empty() && planes.size() % 6 == 0, "dynsplat cpu kernels: 6 planes per HexPlane level");
  dynsplat::HexPlanes<T> hp;
  hp.levels = static_cast<int64_t>(planes.size() / 6);
  hp.features = planes[0].size(2);
  for (const auto& plane : planes) {
    check(plane, "plane");
    TORCH_CHECK(plane.dim() == 3 && plane.size(2) == hp.features, "dynsplat cpu kernels: planes are [H, W, F]");
    hp.planes.push_back(plane.data_ptr<T>());
    hp.height.push_back(plane.size(0));
    hp.width.push_back(plane.size(1));
  }
  return hp;
}

// HexPlane features [N, levels * F] at coords [N, 4]; planes channel-last [H, W, F], 6 per level.
torch::Tensor hexplane_forward(torch::Tensor coords, std::vector<torch::Tensor> planes) {
  check(coords, "coords");
  TORCH_CHECK(coords.dim() == 2 && coords.size(1) == 4, "dynsplat cpu kernels: coords are [N, 4]");
  const int64_t n = coords.size(0), levels = static_cast<int64_t>(planes.size() / 6);
  torch::Tensor out = torch::empty({n, levels * planes.at(0).size(2)}, coords.options());
  AT_DISPATCH_FLOATING_TYPES(coords.scalar_type(), "dynsplat_hexplane_forward", [&] {
    dynsplat::hexplane_forward<scalar_t>(hexplanes<scalar_t>(planes), coords.data_ptr<scalar_t>(), n,
                                         static_cast<int>(at::get_num_threads()), out.data_ptr<scalar_t>());
  });
  return out;
}

// (plane gradients, channel-last, one per plane; coordinate gradients [N, 4] or empty).
std::vector<torch::Tensor> hexplane_backward(torch::Tensor coords, std::vector<torch::Tensor> planes,
                                             torch::Tensor grad_out, bool want_coords) {
  check(coords, "coords");
  check(grad_out, "grad_out");
  const int64_t n = coords.size(0);
  std::vector<torch::Tensor> out;
  for (const auto& plane : planes) out.push_back(torch::empty_like(plane));
  torch::Tensor grad_coords = want_coords ? torch::zeros_like(coords) : torch::empty({0}, coords.options());
  AT_DISPATCH_FLOATING_TYPES(coords.scalar_type(), "dynsplat_hexplane_backward", [&] {
    std::vector<scalar_t*> grads;
    for (auto& g : out) grads.push_back(g.data_ptr<scalar_t>());
    dynsplat::hexplane_backward<scalar_t>(hexplanes<scalar_t>(planes), coords.data_ptr<scalar_t>(), n,
                                          grad_out.data_ptr<scalar_t>(), static_cast<int>(at::get_num_threads()),
                                          grads.data(), want_coords ? grad_coords.data_ptr<scalar_t>() : nullptr);
  });
  out.push_back(grad_coords);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dynsplat-ns compiled CPU kernels (block compositor, HexPlane lookup)";
  m.def("build_lists", &build_lists, "Front-to-back block lists by counting sort");
  m.def("composite_forward", &composite_forward, "Block compositing forward");
  m.def("composite_backward", &composite_backward, "Block compositing backward");
  m.def("hexplane_forward", &hexplane_forward, "HexPlane features (product of six bilinear plane samples per level)");
  m.def("hexplane_backward", &hexplane_backward, "HexPlane features backward (planes, coordinates)");
}
