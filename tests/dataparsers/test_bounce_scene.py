"""The ``bounce`` generator scene (issue 11's kind): a bouncing ball, a box making a quarter turn, a static pillar."""

from __future__ import annotations

import numpy as np

from dynsplat_ns.scenes.synthetic import (
    DNERF_CAMERA_ANGLE_X,
    SCENES,
    bounce_scene,
    focal_from_angle,
    look_at,
    render_rgba,
)


def _render(scene, t: float, size: int = 48) -> np.ndarray:
    c2w = look_at(np.array([2.8, -2.8, 1.6]))
    return render_rgba(scene, c2w, t, size, size, focal_from_angle(DNERF_CAMERA_ANGLE_X, size), supersample=1)


def test_ball_bounces_two_diameters_off_the_slab():
    (ball,) = bounce_scene().spheres
    slab_top = bounce_scene().box.hi[2]
    heights = ball.center(np.linspace(0.0, 1.0, 101))[:, 2]
    assert abs(heights.min() - ball.radius - slab_top) < 1e-9  # touches the slab
    assert abs((heights.max() - heights.min()) / (2 * ball.radius) - 2.05) < 0.05  # about two diameters
    assert abs(ball.center(0.25)[2] - heights.max()) < 1e-9 and abs(ball.center(0.5)[2] - heights.min()) < 1e-9


def test_box_turns_while_the_pillar_stays():
    scene = bounce_scene()
    turning, pillar = scene.extra_boxes
    assert turning.yaw(1.0) == np.pi / 2 and pillar.yaw(1.0) == 0.0
    a, b = _render(scene, 0.5), _render(scene, 0.75)  # the ball is at rest at t=0.5; at 0.75 it is up again
    blue = lambda img: (img[..., 2] > 0.5) & (img[..., 0] < 0.3) & (img[..., 3] > 0)  # noqa: E731
    assert (blue(a) != blue(b)).sum() > 5, "the box did not turn"
    gold = lambda img: (img[..., 0] > 0.5) & (img[..., 1] > 0.4) & (img[..., 2] < 0.3)  # noqa: E731
    assert gold(a).sum() > 10 and (gold(a) != gold(b)).sum() <= 0.1 * gold(a).sum(), "the pillar moved"


def test_static_control_and_motion_scale():
    still = bounce_scene(motion=False)
    assert np.array_equal(_render(still, 0.1), _render(still, 0.6))
    half = bounce_scene(motion_scale=0.5)
    assert half.extra_boxes[0].yaw_turns == 0.125 and half.spheres[0].amp_sin[2] == 0.45
    assert set(SCENES) == {"spheres", "bounce"}


def test_checker_texture_darkens_squares_of_the_slab_only():
    from dataclasses import replace

    from dynsplat_ns.scenes.synthetic import default_scene

    plain = default_scene(motion=False)
    textured = replace(plain, checker=0.6)
    a, b = _render(plain, 0.0), _render(textured, 0.0)
    assert np.array_equal(a[..., 3], b[..., 3])  # same geometry
    darker = (b[..., :3] < a[..., :3] - 0.05).all(-1)
    same = np.abs(b[..., :3] - a[..., :3]).max(-1) < 1e-6
    slab = (a[..., 3] > 0) & (np.abs(a[..., 0] - a[..., 1]) < 0.1)  # grey slab (the spheres are saturated colours)
    assert darker.sum() > 20 and darker[~slab].sum() == 0  # dark squares on the slab, nowhere else
    assert (same & slab).sum() > 20  # light squares keep the plain albedo
    ratio = b[..., :3][darker] / a[..., :3][darker]
    assert np.allclose(ratio, 0.4, atol=0.02)  # 1 - contrast
