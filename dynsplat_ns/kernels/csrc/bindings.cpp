// Torch bindings of the compiled CPU kernels (projection_kernels.cpp, lists_kernels.cpp, composite_kernels.cpp,
// hexplane_kernels.cpp): tensor checks and allocation, dtype dispatch, thread count (torch.get_num_threads()).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <vector>

#include "composite_kernels.h"
#include "hexplane_kernels.h"
#include "lists_kernels.h"
#include "projection_kernels.h"

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
dynsplat::Splats<T> splats(const torch::Tensor& opacities, const torch::Tensor& features,
                           const torch::Tensor& backgrounds, const torch::Tensor& start, const torch::Tensor& entries,
                           const torch::Tensor& packed, const torch::Tensor& rows,
                           const torch::Tensor* gen_of_slot = nullptr) {
  TORCH_CHECK(packed.numel() == dynsplat::kPacked * entries.numel() && rows.numel() == entries.numel(),
              "dynsplat cpu kernels: packed [I, 8] and rows [I] must match entries [I]");
  TORCH_CHECK(rows.scalar_type() == torch::kInt32, "dynsplat cpu kernels: rows must be int32");
  return {opacities.data_ptr<T>(),
          features.data_ptr<T>(),
          features.size(1),
          backgrounds.numel() > 0 ? backgrounds.data_ptr<T>() : nullptr,
          start.data_ptr<int64_t>(),
          entries.data_ptr<int64_t>(),
          packed.data_ptr<T>(),
          rows.data_ptr<int32_t>(),
          gen_of_slot ? gen_of_slot->data_ptr<int64_t>() : nullptr};
}

}  // namespace

// A 1-D tensor that owns (moves) a vector, without a copy.
template <typename V>
torch::Tensor owning_tensor(std::vector<V>&& values) {
  auto* owned = new std::vector<V>(std::move(values));
  return torch::from_blob(
      owned->data(), {static_cast<int64_t>(owned->size())}, [owned](void*) { delete owned; },
      torch::TensorOptions().dtype(c10::CppTypeToScalarType<V>::value));
}

// Block lists (lists_kernels.h) of screen-space Gaussians means2d [CN, 2], conics [CN, 3], opacities [CN],
// depths [CN], radii [CN] int32: (vis [V], start [B + 1], entries [I], gen_first [V + 1], gen_of_slot [I],
// packed [I, 8], rows [I] int32).
std::vector<torch::Tensor> block_lists(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                       torch::Tensor depths, torch::Tensor radii, int64_t n_gauss, int64_t n_cams,
                                       int64_t width, int64_t height, int64_t block, int64_t blocks_x,
                                       int64_t blocks_y) {
  for (auto* t : {&means2d, &conics, &opacities, &depths, &radii}) check(*t, "list input");
  TORCH_CHECK(radii.scalar_type() == torch::kInt32, "dynsplat cpu kernels: radii must be int32");
  TORCH_CHECK(radii.numel() == n_gauss * n_cams && depths.numel() == radii.numel() &&
                  opacities.numel() == radii.numel() && means2d.numel() == 2 * radii.numel() &&
                  conics.numel() == 3 * radii.numel(),
              "dynsplat cpu kernels: list inputs must hold C * N Gaussians");
  const auto grid = make_grid(n_cams, width, height, block, blocks_x, blocks_y);
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "dynsplat_block_lists", [&] {
    auto lists = dynsplat::block_lists<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                                 opacities.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
                                                 radii.data_ptr<int32_t>(), n_gauss, grid);
    out = {owning_tensor(std::move(lists.vis)), owning_tensor(std::move(lists.start)),
           owning_tensor(std::move(lists.entries)), owning_tensor(std::move(lists.gen_first)),
           owning_tensor(std::move(lists.gen_of_slot)),
           owning_tensor(std::move(lists.packed)).view({-1, dynsplat::kPacked}), owning_tensor(std::move(lists.rows))};
  });
  return out;
}

template <typename T>
dynsplat::ProjectionInputs<T> projection_inputs(const torch::Tensor& means, const torch::Tensor& quats,
                                                const torch::Tensor& scales, const torch::Tensor& viewmats,
                                                const torch::Tensor& Ks, int64_t width, int64_t height, double eps2d,
                                                double near_plane, double far_plane) {
  return {means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), viewmats.data_ptr<T>(), Ks.data_ptr<T>(),
          means.size(0), viewmats.size(0), width, height, static_cast<T>(eps2d), static_cast<T>(near_plane),
          static_cast<T>(far_plane)};
}

void check_projection(const torch::Tensor& means, const torch::Tensor& quats, const torch::Tensor& scales,
                      const torch::Tensor& viewmats, const torch::Tensor& Ks) {
  for (auto* t : {&means, &quats, &scales, &viewmats, &Ks}) {
    check(*t, "projection input");
    TORCH_CHECK(t->scalar_type() == means.scalar_type(), "dynsplat cpu kernels: projection inputs share a dtype");
  }
  const int64_t n = means.size(0), c = viewmats.size(0);
  TORCH_CHECK(means.numel() == 3 * n && quats.numel() == 4 * n && scales.numel() == 3 * n &&
                  viewmats.numel() == 16 * c && Ks.numel() == 9 * c,
              "dynsplat cpu kernels: projection expects means [N, 3], quats [N, 4], scales [N, 3], viewmats "
              "[C, 4, 4], Ks [C, 3, 3]");
}

// EWA projection (projection_kernels.h): (radii [C, N] int32, means2d [C, N, 2], depths [C, N], conics [C, N, 3],
// compensations [C, N] or empty).
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                           torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                           double eps2d, double near_plane, double far_plane, bool calc_comp) {
  check_projection(means, quats, scales, viewmats, Ks);
  const int64_t n = means.size(0), c = viewmats.size(0);
  auto fopts = means.options();
  torch::Tensor radii = torch::empty({c, n}, fopts.dtype(torch::kInt32));
  torch::Tensor means2d = torch::empty({c, n, 2}, fopts), depths = torch::empty({c, n}, fopts);
  torch::Tensor conics = torch::empty({c, n, 3}, fopts);
  torch::Tensor comps = calc_comp ? torch::empty({c, n}, fopts) : torch::empty({0}, fopts);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "dynsplat_project_forward", [&] {
    dynsplat::project_forward<scalar_t>(
        projection_inputs<scalar_t>(means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane),
        static_cast<int>(at::get_num_threads()), radii.data_ptr<int32_t>(), means2d.data_ptr<scalar_t>(),
        depths.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), calc_comp ? comps.data_ptr<scalar_t>() : nullptr);
  });
  return {radii, means2d, depths, conics, comps};
}

// Backward of project_forward: (v_means [N, 3], v_quats [N, 4], v_scales [N, 3], v_viewmats [C, 4, 4] or empty).
// v_compensations may be empty (no compensation gradient).
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                            torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                            double eps2d, double near_plane, double far_plane,
                                            torch::Tensor v_means2d, torch::Tensor v_depths, torch::Tensor v_conics,
                                            torch::Tensor v_comps, bool want_viewmats) {
  check_projection(means, quats, scales, viewmats, Ks);
  const int64_t n = means.size(0), c = viewmats.size(0);
  for (auto* t : {&v_means2d, &v_depths, &v_conics, &v_comps}) {
    check(*t, "projection gradient");
    TORCH_CHECK(t->scalar_type() == means.scalar_type(), "dynsplat cpu kernels: gradients share the input dtype");
  }
  TORCH_CHECK(v_means2d.numel() == 2 * c * n && v_depths.numel() == c * n && v_conics.numel() == 3 * c * n &&
                  (v_comps.numel() == 0 || v_comps.numel() == c * n),
              "dynsplat cpu kernels: projection gradients must match the outputs");
  auto fopts = means.options();
  torch::Tensor v_means = torch::empty({n, 3}, fopts), v_quats = torch::empty({n, 4}, fopts);
  torch::Tensor v_scales = torch::empty({n, 3}, fopts);
  torch::Tensor v_view = want_viewmats ? torch::empty({c, 4, 4}, fopts) : torch::empty({0}, fopts);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "dynsplat_project_backward", [&] {
    dynsplat::project_backward<scalar_t>(
        projection_inputs<scalar_t>(means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane),
        v_means2d.data_ptr<scalar_t>(), v_depths.data_ptr<scalar_t>(), v_conics.data_ptr<scalar_t>(),
        v_comps.numel() ? v_comps.data_ptr<scalar_t>() : nullptr, static_cast<int>(at::get_num_threads()),
        v_means.data_ptr<scalar_t>(), v_quats.data_ptr<scalar_t>(), v_scales.data_ptr<scalar_t>(),
        want_viewmats ? v_view.data_ptr<scalar_t>() : nullptr);
  });
  return {v_means, v_quats, v_scales, v_view};
}

// Forward: (render [C, H, W, D] with background, t_final [C, H, W], last [C, H, W] int32, masks [I] int64 (the
// pixels that composited each list entry, for the backward; empty unless composite_kernels.h's rows8_fast)).
std::vector<torch::Tensor> composite_forward(torch::Tensor opacities, torch::Tensor features,
                                             torch::Tensor backgrounds, torch::Tensor start, torch::Tensor entries,
                                             torch::Tensor packed, torch::Tensor rows, int64_t n_cams, int64_t width,
                                             int64_t height, int64_t block, int64_t blocks_x, int64_t blocks_y) {
  for (auto* t : {&opacities, &features, &backgrounds, &start, &entries, &packed, &rows}) check(*t, "input");
  const auto grid = make_grid(n_cams, width, height, block, blocks_x, blocks_y);
  auto fopts = features.options();
  torch::Tensor render = torch::empty({n_cams, height, width, features.size(1)}, fopts);
  torch::Tensor t_final = torch::empty({n_cams, height, width}, fopts);
  torch::Tensor last = torch::empty({n_cams, height, width}, fopts.dtype(torch::kInt32));
  const bool fast = dynsplat::rows8_fast(grid, features.size(1));
  torch::Tensor masks = torch::empty({fast ? entries.numel() : 0}, fopts.dtype(torch::kInt64));
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "dynsplat_composite_forward", [&] {
    dynsplat::composite_forward<scalar_t>(
        splats<scalar_t>(opacities, features, backgrounds, start, entries, packed, rows), grid,
        render.data_ptr<scalar_t>(), t_final.data_ptr<scalar_t>(), last.data_ptr<int32_t>(),
        fast ? reinterpret_cast<uint64_t*>(masks.data_ptr<int64_t>()) : nullptr);
  });
  return {render, t_final, last, masks};
}

// Backward: (v_means2d [CN, 2], v_conics [CN, 3], v_opacities [CN], v_features [CN, D], v_abs [CN, 2] or empty).
std::vector<torch::Tensor> composite_backward(torch::Tensor opacities, torch::Tensor features,
                                              torch::Tensor backgrounds, torch::Tensor start, torch::Tensor entries,
                                              torch::Tensor packed, torch::Tensor rows, torch::Tensor vis,
                                              torch::Tensor gen_first,
                                              torch::Tensor gen_of_slot, torch::Tensor t_final, torch::Tensor last,
                                              torch::Tensor masks, torch::Tensor grad_render, torch::Tensor grad_alpha, int64_t n_cams,
                                              int64_t width, int64_t height, int64_t block, int64_t blocks_x,
                                              int64_t blocks_y, bool want_abs) {
  for (auto* t : {&opacities, &features, &backgrounds, &start, &entries, &packed, &rows, &vis, &gen_first,
                  &gen_of_slot, &t_final, &last, &masks, &grad_render, &grad_alpha})
    check(*t, "input");
  const auto grid = make_grid(n_cams, width, height, block, blocks_x, blocks_y);
  TORCH_CHECK(gen_of_slot.numel() == entries.numel(), "dynsplat cpu kernels: gen_of_slot [I] must match entries");
  TORCH_CHECK(!dynsplat::rows8_fast(grid, features.size(1)) || masks.numel() == entries.numel(),
              "dynsplat cpu kernels: masks [I] from composite_forward must match entries");
  const int64_t n_ch = features.size(1), n_flat = features.size(0);
  auto fopts = features.options();
  torch::Tensor grad_rows = torch::empty({entries.numel(), dynsplat::kRowExtra + n_ch}, fopts);
  torch::Tensor v_means = torch::zeros({n_flat, 2}, fopts), v_conics = torch::zeros({n_flat, 3}, fopts);
  torch::Tensor v_opac = torch::zeros({n_flat}, fopts), v_feat = torch::zeros({n_flat, n_ch}, fopts);
  torch::Tensor v_abs = want_abs ? torch::zeros({n_flat, 2}, fopts) : torch::empty({0}, fopts);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "dynsplat_composite_backward", [&] {
    dynsplat::composite_backward<scalar_t>(
        splats<scalar_t>(opacities, features, backgrounds, start, entries, packed, rows, &gen_of_slot), grid,
        t_final.data_ptr<scalar_t>(), last.data_ptr<int32_t>(),
        masks.numel() ? reinterpret_cast<const uint64_t*>(masks.data_ptr<int64_t>()) : nullptr,
        grad_render.data_ptr<scalar_t>(), grad_alpha.data_ptr<scalar_t>(), want_abs, grad_rows.data_ptr<scalar_t>());
    dynsplat::reduce_rows<scalar_t>(grad_rows.data_ptr<scalar_t>(), n_ch, vis.data_ptr<int64_t>(), vis.numel(),
                                    gen_first.data_ptr<int64_t>(), opacities.data_ptr<scalar_t>(), grid.threads, v_means.data_ptr<scalar_t>(),
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
  m.doc() = "dynsplat-ns compiled CPU kernels (projection, block lists and compositor, HexPlane lookup)";
  m.def("block_lists", &block_lists, "Front-to-back block lists (depth radix sort, support boxes, counting sort)");
  m.def("project_forward", &project_forward, "EWA projection of 3D Gaussians");
  m.def("project_backward", &project_backward, "EWA projection backward");
  m.def("composite_forward", &composite_forward, "Block compositing forward");
  m.def("composite_backward", &composite_backward, "Block compositing backward");
  m.def("hexplane_forward", &hexplane_forward, "HexPlane features (product of six bilinear plane samples per level)");
  m.def("hexplane_backward", &hexplane_backward, "HexPlane features backward (planes, coordinates)");
}
