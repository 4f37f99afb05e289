"""Time conventions: camera times and continuous frame interpolation."""

from __future__ import annotations

import pytest
import torch

from dynsplat_ns.time import camera_time, frame_interpolation


def test_camera_time_defaults_and_clamps():
    assert camera_time(None) == 0.0
    assert camera_time(torch.tensor([[0.25]])) == pytest.approx(0.25)
    assert camera_time(torch.tensor([[1.5]])) == 1.0
    with pytest.raises(ValueError, match="share one time"):
        camera_time(torch.tensor([[0.1], [0.2]]))


def test_frame_interpolation_hits_frames_and_blends_between():
    i0, i1, w = frame_interpolation(torch.tensor([0.0, 0.5, 1.0, 0.125]), 5)
    assert i0.tolist() == [0, 2, 3, 0]
    assert i1.tolist() == [1, 3, 4, 1]
    assert torch.allclose(w, torch.tensor([0.0, 0.0, 1.0, 0.5]))
    i0, i1, w = frame_interpolation(0.7, 1)
    assert int(i0) == int(i1) == 0 and float(w) == 0.0
